// Package events is xenft's event contract and its bus.
//
// The contract: every event is a CloudEvents 1.0 envelope in JSON structured
// mode (Event) whose type is one of the Types below, with a typed payload
// (NodeFailed, CheckpointCommitted, ...). Every type has a JSON Schema, embedded
// from schema/ (docs/schema links to it), and Decode checks an event against it
// on receipt: a malformed, oversized or unknown event is returned as an error
// matching ErrTooLarge, ErrMalformed, ErrUnknownType or ErrInvalid, never a
// panic, so a consumer can log it, count it and move on.
//
// Each event is published on <prefix>.events.<kind>.<name>.<id>, where id is
// the entity the event is about (a host, a VM, a group, a supervisor), and kept
// in the JetStream stream XENFT_EVENTS.
//
// The bus: Connect joins a NATS server (one xenft runs, package embedded, or
// an external one; InProcess reaches an embedded one without a socket) as an
// identity (As: role/name; its replies come to InboxPrefix, the only inboxes
// its credential may read; package events/auth gives each role its
// permissions). Supervisors and servers create the stream, key-value buckets
// and object store idempotently (EnsureResources), every other role waits for
// them (AwaitResources); an operation the server's permissions refuse fails at
// once with ErrPermissionDenied. The bus offers
// Publish (JetStream, de-duplicated by event id), Consume (durable, explicit
// ack) and Tail (ephemeral, from a point in time). Tail owns its recovery: it
// remembers the last stream sequence it delivered and, when its reader fails
// or stalls across a server failover, reads again from the next one.
//
// Commands: ServeCommands answers one host's commands on
// <prefix>.cmd.<host>.<verb> and Command sends one and waits for the answer;
// EpochGuard is the agents' refusal of an older leader term; a message a
// JetStream consumer delivered (FromConsumer) is never taken for a command,
// as permissions cannot stop such deliveries (nats-server#8274). The protocol
// they carry (handlers, the reply envelope, the error codes that decide a
// retry) is package events/command, which imports nothing of the project.
//
// Every input the bus's consumers, tails and command server ignore (an invalid
// event, a refused command) is counted by reason in the Bus's IgnoredInputs
// (Bus.Ignored), where the roles built on the bus count what they ignore too,
// and logged at most once per reason every IgnoreLogEvery with the number of
// lines left out: one set of counters per role for the metrics to export.
//
// Bus is safe for concurrent use. This package imports no other package of
// the project but internal/clock and events/command.
//
// Where the bus's side of access control lives: publisher.go (identities,
// InboxPrefix), resources.go (who creates the stream and buckets),
// denied.go (refusals reported at once), delivery.go (FromConsumer).
package events
