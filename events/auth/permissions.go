package auth

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/xenft/xenft/events"
)

// ResponseWindow is how long after a request an identity that answers
// requests (an agent its commands and probes, a supervisor the CLI's
// requests and the agents' lease grants) may still publish the answer to
// its reply subject. It is longer than any command may take: a checkpoint
// save's default timeout is 10 minutes.
const ResponseWindow = time.Hour

// Permissions returns what identity id may publish and subscribe to on the
// bus of prefix: the least each role needs (the table in docs/security.md).
// Every identity subscribes to its own inboxes only (events.InboxPrefix),
// publishes events only under its own role and name (the last two tokens of
// an event's subject), and never under the anonymous publisher. It is a
// pure function of its arguments.
func Permissions(prefix string, id events.Publisher) (*server.Permissions, error) {
	if !events.ValidPrefix(prefix) {
		return nil, fmt.Errorf("prefix %q: must be 1-32 letters, digits, '_' or '-'", prefix)
	}
	if !events.ValidName(id.Name) {
		return nil, fmt.Errorf("%s/%s: the name must be %s", id.Role, id.Name, events.NameRule)
	}
	r := newRules(prefix, id)
	switch id.Role {
	case events.RoleSupervisor:
		r.supervisor()
	case events.RoleDetector:
		r.detector()
	case events.RoleAgent:
		r.agent()
	case events.RoleSite:
		r.site()
	case events.RoleMonitor:
		r.monitor()
	case events.RoleOperator:
		r.operator()
	case events.RoleServer:
		r.server()
	default:
		return nil, fmt.Errorf("%s/%s: role %q is not one of %v", id.Role, id.Name, id.Role, events.Roles)
	}
	return r.permissions(), nil
}

// rules collects one identity's permissions.
type rules struct {
	id    events.Publisher
	self  string // the identity's name as a subject token
	p     string // the prefix
	subj  events.Subjects
	names events.Names

	pub, pubDeny, sub, subDeny []string
	responds                   bool
}

func newRules(prefix string, id events.Publisher) *rules {
	r := &rules{id: id, self: events.EscapeToken(id.Name), p: prefix, subj: events.Subjects{Prefix: prefix}, names: events.NamesFor(prefix)}
	// Its own inboxes: replies to its requests, JetStream's answers and
	// acknowledgements, the messages of its consumers.
	r.sub = append(r.sub, events.InboxPrefix(id)+".>")
	// No one publishes as the anonymous publisher, which only a bus
	// without per-role credentials has.
	r.pubDeny = append(r.pubDeny, r.p+".events.*.*.*."+events.RoleAnonymous+".>")
	return r
}

func (r *rules) publish(subjects ...string)   { r.pub = append(r.pub, subjects...) }
func (r *rules) subscribe(subjects ...string) { r.sub = append(r.sub, subjects...) }

// publishedBy lists the event types each role publishes: no identity may
// publish another type, even under its own name (an agent's node.failed).
var publishedBy = map[string][]events.Type{
	events.RoleSupervisor: {
		events.TypeNodeFenced, events.TypeNodeQuarantined, events.TypeNodeMaintenance,
		events.TypeCheckpointStarted, events.TypeCheckpointCommitted, events.TypeCheckpointAborted, events.TypeCheckpointDeleted,
		events.TypeVMRestarting, events.TypeVMRestarted, events.TypeVMRestartFailed, events.TypeVMUnrecoverable,
		events.TypeGroupRolledBack,
		events.TypeSupervisorLeader, events.TypeSupervisorRestartsPaused, events.TypeSupervisorRestartsResumed,
		events.TypeSupervisorFenceFailed, events.TypeSupervisorDrainFailed, events.TypeSupervisorInputRejected,
	},
	// Heartbeat transitions, and the plug-ins' faults.
	events.RoleDetector: {events.TypeNodeSuspect, events.TypeNodeFailed, events.TypeNodeRecovered, events.TypeNodeFault},
	events.RoleAgent:    {events.TypeVMFailed},
	events.RoleSite:     {events.TypeNodeFault},
	// xenft event publish: a fault is the one event the supervisor takes
	// from an operator.
	events.RoleOperator: {events.TypeNodeFault},
}

// PublishedBy returns the event types role may publish.
func PublishedBy(role string) []events.Type { return slices.Clone(publishedBy[role]) }

// ownEvents lets the identity publish its role's event types about any
// entity, under its own role and name only.
func (r *rules) ownEvents() {
	for _, t := range publishedBy[r.id.Role] {
		r.publish(r.p + ".events." + t.Kind() + "." + t.Name() + ".*." + events.EscapeToken(r.id.Role) + "." + r.self)
	}
}

// awaitStream lets the identity see that the event stream exists
// (events.Bus.AwaitResources).
func (r *rules) awaitStream() { r.publish(streamInfo(r.names.Stream())) }

// readEvents lets the identity read the event stream through readers of
// its own (events tail: a pull consumer it creates, pulls from and
// deletes), but not the supervisors' durable consumer, and subscribe to
// the events as they are published.
func (r *rules) readEvents() {
	s := r.names.Stream()
	r.publish(streamInfo(s), msgGet(s), consumerNext(s, "*"), consumerDelete(s, "*"))
	r.publish(consumerCreate(s, "*")...)
	sc := events.SupervisorConsumer
	r.pubDeny = append(r.pubDeny, consumerNext(s, sc), consumerDelete(s, sc), consumerInfo(s, sc),
		jsAPI+"CONSUMER.DURABLE.CREATE."+s+".>")
	r.pubDeny = append(r.pubDeny, consumerCreate(s, sc)...)
	r.subscribe(r.subj.AllEvents())
}

// readBucket lets the identity open bucket and get any key.
func (r *rules) readBucket(bucket string) {
	s := kvStream(bucket)
	r.publish(streamInfo(s), directGetLast(s, kvKey(bucket, ">")))
}

// listBucket lets the identity watch and list bucket's keys: an ordered
// push consumer of its own, delivered to its inbox.
func (r *rules) listBucket(bucket string) {
	s := kvStream(bucket)
	r.publish(consumerCreate(s, "*")...)
	r.publish(consumerDelete(s, "*"), flowControlOf(s))
}

// writeBucket lets the identity put, create, update and delete every key of
// bucket.
func (r *rules) writeBucket(bucket string) { r.publish(kvKey(bucket, ">")) }

// readImages lets the identity open and read checkpoint images: an
// object's info (a direct get), then its chunks one get from the stream's
// leader after another (store.LeaderChunks: a damaged replica must not
// answer); no consumer.
func (r *rules) readImages() {
	b := r.names.Images()
	s := objStream(b)
	r.publish(streamInfo(s), msgGet(s), directGetLast(s, "$O."+b+".M.>"))
}

// writeImages lets the identity upload images. The object store has one
// subject per object's chunks ($O.<bucket>.C.<random id>) and info
// ($O.<bucket>.M.<name>): no subject names the host, so an identity that
// may upload may also overwrite another's object info (docs/security.md).
func (r *rules) writeImages() {
	b := r.names.Images()
	r.publish("$O."+b+".C.>", "$O."+b+".M.>")
}

// supervisor decides and drives: it commands every agent, owns the leader
// lease, its state and the catalog, creates the stream and buckets, reads
// everything and answers the CLI's and the agents' requests.
func (r *rules) supervisor() {
	r.ownEvents()
	r.publish(r.p + ".cmd.>")
	r.createResources()
	s, sc := r.names.Stream(), events.SupervisorConsumer
	r.publish(consumerCreate(s, sc)...)
	r.publish(consumerInfo(s, sc), consumerNext(s, sc), ackOf(s, sc))
	for _, b := range r.kvBuckets() {
		r.readBucket(b)
		if b != r.names.Leader() { // the lease is read by key, never listed
			r.listBucket(b)
		}
	}
	for _, b := range []string{r.names.VMs(), r.names.Groups(), r.names.Checkpoints(), r.names.Leader(), r.names.State()} {
		r.writeBucket(b)
	}
	// The outbox drops a sent entry's history.
	r.publish(jsAPI + "STREAM.PURGE." + kvStream(r.names.State()))
	r.readImages()
	r.writeImages()
	// Retention lists the images (a consumer of the objects' infos), and
	// it and aborts delete them: an object's info, then its chunks.
	obj := objStream(r.names.Images())
	r.publish(consumerCreate(obj, "*")...)
	r.publish(consumerDelete(obj, "*"), flowControlOf(obj), jsAPI+"STREAM.PURGE."+obj)
	r.subscribe(r.subj.AllHeartbeats(), r.subj.Supervisor("checkpoint"), r.subj.Supervisor("op"), r.subj.Supervisor("hostlease.*"))
	r.responds = true
}

// detector reads heartbeats, probes silent hosts and publishes node events.
func (r *rules) detector() {
	r.ownEvents()
	r.publish(r.p + ".hb.probe.*")
	r.awaitStream()
	r.subscribe(r.subj.AllHeartbeats())
}

// agent is one host: its own heartbeat, lease, events and lease grant
// requests; its own commands and probes; image uploads and downloads.
func (r *rules) agent() {
	host := r.id.Name
	r.ownEvents()
	r.publish(r.subj.Heartbeat(host))
	// A key is its name as is: an FQDN's dots make it several tokens.
	r.publish(kvKey(r.names.Hosts(), host), streamInfo(kvStream(r.names.Hosts())))
	r.publish(r.subj.Supervisor("hostlease." + r.self))
	r.awaitStream()
	r.readImages()
	r.writeImages()
	r.subscribe(r.subj.HostCommands(host), r.subj.Probe(host))
	r.responds = true
}

// site is a plug-in detector publishing node.fault itself.
func (r *rules) site() {
	r.ownEvents()
	r.awaitStream()
}

// monitor only reads events.
func (r *rules) monitor() { r.readEvents() }

// operator is the CLI: status, events tail, event publish (node.fault),
// vm/group registration, checkpoint now/list/show/verify and the requests
// to the leader.
func (r *rules) operator() {
	r.readEvents()
	r.ownEvents()
	r.publish(r.subj.Supervisor("checkpoint"), r.subj.Supervisor("op"))
	r.publish(r.p + ".cmd.*." + events.VerbPeek)
	for _, b := range []string{r.names.VMs(), r.names.Groups(), r.names.Checkpoints(), r.names.State()} {
		r.readBucket(b)
		r.listBucket(b)
	}
	r.readBucket(r.names.Leader())
	r.writeBucket(r.names.VMs())
	r.writeBucket(r.names.Groups())
	r.readImages()
}

// server is a server's own connection: it creates the stream, buckets and
// object store (xenft server, xenft up). Servers reach each other over
// routes, which TLS authenticates (server.cluster.tls), not over this.
func (r *rules) server() { r.createResources() }

// createResources lets the identity create and update the stream, the
// buckets and the object store (events.Bus.EnsureResources).
func (r *rules) createResources() {
	streams := []string{r.names.Stream(), objStream(r.names.Images())}
	for _, b := range r.kvBuckets() {
		streams = append(streams, kvStream(b))
	}
	for _, s := range streams {
		r.publish(streamInfo(s), jsAPI+"STREAM.CREATE."+s, jsAPI+"STREAM.UPDATE."+s)
	}
	// Creating a bucket reads the account's JetStream limits first.
	r.publish(jsAPI + "INFO")
}

func (r *rules) kvBuckets() []string {
	n := r.names
	return []string{n.Hosts(), n.VMs(), n.Groups(), n.Checkpoints(), n.Leader(), n.State()}
}

func (r *rules) permissions() *server.Permissions {
	p := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: dedup(r.pub), Deny: dedup(r.pubDeny)},
		Subscribe: &server.SubjectPermission{Allow: dedup(r.sub), Deny: dedup(r.subDeny)},
	}
	if r.responds {
		p.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: ResponseWindow}
	}
	return p
}

func dedup(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
