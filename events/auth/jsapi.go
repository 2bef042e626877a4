package auth

// Subjects of the JetStream API a permission names. Each grants one call on
// one stream; none grants a stream's creation, deletion or purge except
// where a role needs it (the supervisor, the server).

const jsAPI = "$JS.API."

func streamInfo(stream string) string { return jsAPI + "STREAM.INFO." + stream }

// directGetLast reads the last message on subject ("$KV.<bucket>.<key>",
// "$O.<bucket>.M.<name>"): a key-value Get, an object's info.
func directGetLast(stream, subject string) string {
	return jsAPI + "DIRECT.GET." + stream + "." + subject
}

func msgGet(stream string) string { return jsAPI + "STREAM.MSG.GET." + stream }

// Calls on a consumer named name (a token, or "*" for any) of stream.
func consumerCreate(stream, name string) []string {
	// A create names its filter after the consumer when it has one.
	return []string{jsAPI + "CONSUMER.CREATE." + stream + "." + name, jsAPI + "CONSUMER.CREATE." + stream + "." + name + ".>"}
}
func consumerInfo(stream, name string) string { return jsAPI + "CONSUMER.INFO." + stream + "." + name }
func consumerDelete(stream, name string) string {
	return jsAPI + "CONSUMER.DELETE." + stream + "." + name
}
func consumerNext(stream, name string) string {
	return jsAPI + "CONSUMER.MSG.NEXT." + stream + "." + name
}

// ackOf and flowControlOf are the subjects a client publishes to
// acknowledge a consumer's messages and answer its flow control.
func ackOf(stream, consumer string) string { return "$JS.ACK." + stream + "." + consumer + ".>" }
func flowControlOf(stream string) string   { return "$JS.FC." + stream + ".>" }

func kvStream(bucket string) string  { return "KV_" + bucket }
func objStream(bucket string) string { return "OBJ_" + bucket }

// kvKey is the subject of one key (or ">" for every key) of a bucket.
func kvKey(bucket, key string) string { return "$KV." + bucket + "." + key }
