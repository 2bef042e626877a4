package events

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// FromConsumer reports whether m was delivered by a JetStream consumer
// rather than published by a client: a consumer's deliveries carry its
// acknowledgement subject as their reply.
//
// Why it matters: a credential that may create consumers (a monitor or an
// operator reading events, an operator listing a bucket) can create a push
// consumer whose deliver subject is any subject at all, and the server
// delivers the stream's messages there without checking the creator's
// publish permissions (nats-server#8274), as long as some connection
// subscribes to exactly that subject (the leader does to
// <prefix>.supervisor.op and .checkpoint, a beacon to its probe subject).
// So a request could arrive that no permitted publisher sent, with bytes an
// operator stored as its node.fault. Receivers of commands, requests and
// probes ignore such deliveries; heartbeats, which carry no reply at all,
// are refused when they carry one. No client can set such a reply itself:
// the server refuses a publish with a $JS.ACK reply.
func FromConsumer(m *nats.Msg) bool { return strings.HasPrefix(m.Reply, "$JS.ACK.") }
