package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xenft/xenft/events"
)

// An event acts on the cluster only if its publisher may tell it. The
// publisher is the identity the NATS subject names, which the server's
// per-role permissions bind to the credential that published it; the
// envelope's source is the publisher's own claim and decides nothing.

// rolesMayTell lists the roles whose events of each type the supervisor
// takes. A heartbeat detector suspects, fails and recovers hosts; a fault
// (fatal or degraded) also comes from a site's plug-in or an operator; a
// VM's failure only from the agent of the host it ran on; the catalog's
// changes only from a supervisor.
var rolesMayTell = map[events.Type][]string{
	events.TypeNodeSuspect:         {events.RoleDetector},
	events.TypeNodeFailed:          {events.RoleDetector},
	events.TypeNodeRecovered:       {events.RoleDetector},
	events.TypeNodeFault:           {events.RoleDetector, events.RoleSite, events.RoleOperator},
	events.TypeVMFailed:            {events.RoleAgent},
	events.TypeCheckpointCommitted: {events.RoleSupervisor},
	events.TypeCheckpointDeleted:   {events.RoleSupervisor},
}

// trustPolicy is supervisor.trusted_sources applied to the role table.
type trustPolicy struct {
	sources map[events.Publisher]bool
	roles   map[string]bool // "role/*" entries
}

func newTrustPolicy(entries []string) (trustPolicy, error) {
	p := trustPolicy{sources: map[events.Publisher]bool{}, roles: map[string]bool{}}
	for _, e := range entries {
		pub, err := events.ParsePublisher(e)
		if err != nil {
			return trustPolicy{}, err
		}
		if pub.Name == "*" {
			p.roles[pub.Role] = true
		} else {
			p.sources[pub] = true
		}
	}
	return p, nil
}

// listing says whether trusted_sources names anyone.
func (p trustPolicy) listing() bool { return len(p.sources)+len(p.roles) > 0 }

func (p trustPolicy) lists(pub events.Publisher) bool {
	return p.sources[pub] || p.roles[pub.Role]
}

// admit returns why pub may not tell an event of type t about host, or ""
// if it may. An anonymous publisher is taken only while trusted_sources is
// empty (a bus without per-role credentials, where every publisher is
// anonymous); a named one must have a role that may tell t and, for the
// node events that move VMs, be listed when trusted_sources lists anyone.
func (p trustPolicy) admit(t events.Type, pub events.Publisher, host string) string {
	if pub.Anonymous() {
		if p.listing() {
			return "anonymous publisher (supervisor.trusted_sources is set)"
		}
		return ""
	}
	roles := rolesMayTell[t]
	if !slices.Contains(roles, pub.Role) {
		return fmt.Sprintf("role %s may not tell %s (only %s)", pub.Role, t.Short(), strings.Join(roles, ", "))
	}
	if t == events.TypeVMFailed && pub.Name != host {
		return fmt.Sprintf("agent %s may not tell a VM on host %s failed", pub.Name, host)
	}
	if t.Kind() == "node" && p.listing() && !p.lists(pub) {
		return fmt.Sprintf("%s is not in supervisor.trusted_sources", pub)
	}
	return ""
}

// hostOf is the host an event the core takes is about ("" if none).
func hostOf(p events.Payload) string {
	switch d := p.(type) {
	case *events.VMFailed:
		return d.Host
	case *events.NodeSuspect, *events.NodeFailed, *events.NodeRecovered, *events.NodeFault:
		return d.EntityID()
	}
	return ""
}

// rejectEvery bounds supervisor.input_rejected to one event per publisher
// and type in this interval: a forger flooding the bus costs the stream a
// line every few seconds, not one per forgery (the counter counts them all).
const rejectEvery = 10 * time.Second

// rejectNotice remembers when each publisher and type was last reported.
type rejectNotice struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (r *rejectNotice) due(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[key]; ok && now.Sub(t) < rejectEvery {
		return false
	}
	if r.last == nil {
		r.last = map[string]time.Time{}
	}
	r.last[key] = now
	return true
}

// reject reports an event refused for its publisher: counted and logged
// (rate-limited) as untrusted_source, and told to monitors as
// supervisor.input_rejected. Nothing else happens: the event is
// acknowledged and never reaches the core.
func (sh *shell) reject(ctx context.Context, ev events.Event, pub events.Publisher, host, reason string) {
	s := sh.s
	s.bus.Ignored().Ignore(sh.log, events.IgnoredUntrustedSource, ev.Type.Short(),
		"event", ev.ID, "publisher", pub.String(), "claimed_source", ev.Source, "host", host, "reason", reason)
	now := s.clock.Now()
	if !s.rejects.due(pub.String()+" "+string(ev.Type), now) {
		return
	}
	notice, err := events.New("xenft/supervisor/"+s.cfg.ID, now, events.SupervisorInputRejected{
		Supervisor: s.cfg.ID, RejectedType: ev.Type.Short(), EventID: ev.ID, Host: host, Publisher: pub.String(),
		ClaimedSource: truncate(ev.Source, 1024), Reason: reason})
	if err != nil {
		sh.log.Warn("cannot build input_rejected", "error", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, s.bus.RequestTimeout())
	defer cancel()
	if err := s.bus.Publish(pctx, notice); err != nil && ctx.Err() == nil {
		sh.log.Warn("cannot publish input_rejected", "error", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
