package supervisor

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/supervisor/core"
)

// Lease grants (restarter/grant.go is the agent's side). An agent asks the
// leader every renew interval, over core NATS, to count it alive; a grant
// is a lease renewal that does not wait on a JetStream quorum write, so a
// stalled xenft_hosts bucket does not make reachable hosts fence themselves.
// The agent counts a grant from when it sent the request. What makes that
// safe:
//
//  1. A grant is recorded in the lease book before the reply leaves, and
//     never given for a host the core holds failed or fenced. The gate's
//     mutex orders each grant against the loop's application of the inputs
//     that fail a host: a node.failed is stamped with the book's newest
//     renewal (bucket or grant) under the gate, applied, and the host closed
//     before the next grant is decided. So the self-fence deadline of a
//     host failed by silence (last renewal + self_timeout + margin) is never
//     earlier than a grant the agent counts.
//  2. Only a supervisor that surely still holds its leader lease grants
//     (Elector.Holds: two thirds of the TTL after its newest successful
//     write), so every grant of an old leader precedes the next leader's
//     term. A new leader does not know them: for a host that fails in its
//     term while the loaded state held it alive, the deadline counts from
//     no earlier than the term's start (the floor).
type grantGate struct {
	mu     sync.Mutex
	leases *leaseBook
	floor  time.Time
	open   map[string]bool // hosts the core holds healthy, suspect or rejoining
}

func newGrantGate(leases *leaseBook, floor time.Time) *grantGate {
	return &grantGate{leases: leases, floor: floor, open: map[string]bool{}}
}

// apply applies in to st under the gate. A node.failed is stamped with the
// newest renewal the book knows of, or the term's floor for a host that was
// alive in this term's state; a host that the input fails is closed at once.
func (g *grantGate) apply(st *core.State, in core.Input) ([]core.Action, error) {
	var host string
	switch x := in.(type) {
	case core.NodeFailed:
		host = x.Host
	case core.NodeFault:
		host = x.Host
	default:
		return core.Apply(st, in)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if nf, ok := in.(core.NodeFailed); ok {
		last := g.leases.last(host)
		if h := st.Hosts[host]; h != nil && h.State != core.HostFailed && h.State != core.HostFenced && g.floor.After(last) {
			last = g.floor
		}
		nf.LastLease = last
		in = nf
	}
	acts, err := core.Apply(st, in)
	g.openIf(st, host)
	return acts, err
}

// refresh reopens and closes every host as st holds it (after a batch).
func (g *grantGate) refresh(st *core.State) {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.open)
	for name := range st.Hosts {
		g.openIf(st, name)
	}
}

func (g *grantGate) openIf(st *core.State, host string) {
	h := st.Hosts[host]
	g.open[host] = h != nil && (h.State == core.HostHealthy || h.State == core.HostSuspect || h.State == core.HostRejoining)
}

// grant decides one request at now; holds is whether this supervisor
// surely still holds its lease.
func (g *grantGate) grant(host string, now time.Time, holds bool) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case !holds:
		return false, "this supervisor's leader lease may have expired"
	case !g.open[host]:
		return false, fmt.Sprintf("host %s is failed, fenced or unknown in the leader's state", host)
	}
	g.leases.renewed(host, now)
	return true, ""
}

// serveGrants answers lease grant requests until the returned stop is
// called. Only the leader's shell runs it.
func (sh *shell) serveGrants() (stop func()) {
	subject := sh.s.bus.Subjects().Supervisor(protocol.GrantSubjectVerb + ".*")
	prefix := strings.TrimSuffix(subject, "*")
	sub, err := sh.s.bus.Conn().Subscribe(subject, func(m *nats.Msg) {
		if sh.s.replayed(m) {
			return
		}
		var req protocol.GrantRequest
		rep := protocol.GrantReply{Term: sh.term}
		switch {
		case json.Unmarshal(m.Data, &req) != nil || req.Host == "":
			rep.Reason = "malformed grant request"
		case prefix+events.EscapeToken(req.Host) != m.Subject:
			// An agent asks on its own host's subject only (the subject
			// is what a permission can bind to an identity).
			rep.Reason = fmt.Sprintf("host %q asked on %s", req.Host, m.Subject)
		default:
			now := sh.s.clock.Now()
			rep.Granted, rep.Reason = sh.gate.grant(req.Host, now, sh.s.elector.Holds(now))
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		sh.log.Error("cannot serve lease grants; agents rely on the hosts bucket alone", "error", err)
		return func() {}
	}
	return func() { _ = sub.Unsubscribe() }
}
