package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/supervisor/core"
)

// consumerName is the durable consumer of the events the core needs. Every
// supervisor uses the same one; only the leader reads it. Its name is
// events', so per-role permissions can keep every other role off it.
const consumerName = events.SupervisorConsumer

// beatFeedEvery is how often a host's heartbeat reaches the core when nothing
// in it changed: far more often than fence_self_timeout requires, far less
// than every beat.
const beatFeedEvery = 2 * time.Second

// beatFeedInterval is beatFeedEvery, or a quarter of fence_self_timeout when
// that is shorter: the core takes a gap of fence_self_timeout between two
// beats it is fed for a host that may have fenced itself, so with a short
// timeout (3 s) a feed every 2 s of beats sent every second made healthy
// hosts look silent now and then (e2e).
func beatFeedInterval(selfTimeout time.Duration) time.Duration {
	if selfTimeout > 0 && selfTimeout/4 < beatFeedEvery {
		return selfTimeout / 4
	}
	return beatFeedEvery
}

// startSources starts the goroutines that feed the loop, counted in wg; they
// stop when ctx ends.
func (sh *shell) startSources(ctx context.Context, wg *sync.WaitGroup) {
	// The inventory and the catalog first, so events about known VMs and
	// checkpoints find them.
	sh.feedInventory(ctx)
	sh.feedCatalog(ctx)
	for _, f := range []func(context.Context){sh.consumeEvents, sh.feedBeats, sh.watchInventory, sh.watchLeases, sh.tick} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
}

// consumeEvents feeds node, VM and checkpoint events from the durable
// consumer, acknowledging each only after the core applied it and the state
// was persisted. A new durable starts a minute back: older history is about
// hosts the heartbeats describe better now.
func (sh *shell) consumeEvents(ctx context.Context) {
	subj := sh.s.bus.Subjects()
	filters := []string{subj.EventsOfKind("node"), subj.EventsOfType(events.TypeVMFailed),
		subj.EventsOfType(events.TypeCheckpointCommitted), subj.EventsOfType(events.TypeCheckpointDeleted)}
	for ctx.Err() == nil {
		// Pipelined: a burst of failures reaches the core in one batch
		// instead of one recorded event at a time (placing restores on
		// hosts whose failure is still queued); each event is still acked
		// only after the state it produced is recorded.
		err := sh.s.bus.ConsumePipelined(ctx, events.ConsumeConfig{Durable: consumerName, Filters: filters, StartAt: sh.s.clock.Now().Add(-time.Minute)}, 256,
			func(ctx context.Context, ev events.Event, m events.Meta) events.Await {
				in, ok := sh.translate(ctx, ev, m.Publisher)
				if !ok {
					return func() error { return nil }
				}
				it := item{in: in, done: make(chan outcome, 1), about: []any{"event", ev.ID, "source", ev.Source, "publisher", m.Publisher.String()}}
				select {
				case sh.inputs <- it:
				case <-ctx.Done():
					return ctx.Err
				}
				return func() error {
					select {
					case o := <-it.done:
						return o.persist
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			})
		if err != nil && !errors.Is(err, events.ErrStopped) {
			sh.log.Warn("event consumer failed, restarting", "error", err)
			clock.Sleep(ctx, sh.s.clock, time.Second)
		}
	}
}

// translate turns an event into the core's input; ok is false for events the
// core does not take (and for the core's own outputs), and for those whose
// publisher may not tell them (trust.go), which are reported.
func (sh *shell) translate(ctx context.Context, ev events.Event, pub events.Publisher) (core.Input, bool) {
	now := sh.s.clock.Now()
	p, err := ev.Payload()
	if err != nil {
		sh.s.bus.Ignored().Ignore(sh.log, events.IgnoredInvalidEvent, ev.Type.Short(), "event", ev.ID, "source", ev.Source, "error", err)
		return nil, false
	}
	if _, taken := rolesMayTell[ev.Type]; taken {
		host := hostOf(p)
		if reason := sh.s.trust.admit(ev.Type, pub, host); reason != "" {
			sh.reject(ctx, ev, pub, host, reason)
			return nil, false
		}
	}
	switch d := p.(type) {
	case *events.NodeSuspect:
		return core.NodeSuspect{At: now, Host: d.Host, LastBeat: d.LastBeat}, true
	case *events.NodeFailed:
		return core.NodeFailed{At: now, Host: d.Host, Incarnation: d.Incarnation, LastBeat: d.LastBeat, LastSeq: d.LastSeq,
			LastLease: sh.leases.last(d.Host), Reason: d.Reason}, true
	case *events.NodeRecovered:
		return core.NodeRecovered{At: now, Host: d.Host, Incarnation: d.Incarnation, NewIncarnation: d.NewIncarnation, LastBeat: d.LastBeat, LastSeq: d.LastSeq}, true
	case *events.NodeFault:
		return core.NodeFault{At: now, Host: d.Host, Severity: core.Severity(d.Severity), Reason: d.Reason}, true
	case *events.VMFailed:
		return core.VMFailed{At: now, VM: d.VM, Host: d.Host, Reason: d.Reason}, true
	case *events.CheckpointCommitted:
		vms := make([]string, len(d.Images))
		for i, im := range d.Images {
			vms[i] = im.VM
		}
		return core.CheckpointCommitted{At: now, Group: d.Group, Seq: d.Seq, VMs: vms}, true
	case *events.CheckpointDeleted:
		return core.CheckpointDeleted{At: now, Group: d.Group, Seq: d.Seq}, true
	}
	return nil, false
}

// feedBeats turns heartbeats into HostBeat inputs: at once for a new
// incarnation, else every beatFeedEvery (a domain list changes the core's
// view within that).
func (sh *shell) feedBeats(ctx context.Context) {
	msgs := make(chan *nats.Msg, 4096)
	sub, err := sh.s.bus.Conn().ChanSubscribe(sh.s.bus.Subjects().AllHeartbeats(), msgs)
	if err != nil {
		sh.log.Error("cannot subscribe to heartbeats", "error", err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	type last struct {
		at      time.Time
		inc     string
		unarmed bool
	}

	every := beatFeedInterval(sh.s.cfg.Policy.FenceSelfTimeout)
	seen := map[string]last{}
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			// The head is validated on every beat (cheap); the whole beat,
			// with its inventory, is decoded only when it is fed.
			head, err := detector.DecodeHeartbeat(m.Data)
			switch {
			case err != nil:
			case m.Subject != sh.s.bus.Subjects().Heartbeat(head.Host):
				// The subject is what a permission binds to the host's
				// identity; the body is the publisher's claim.
				err = fmt.Errorf("host %q published on %s", head.Host, m.Subject)
			case m.Reply != "":
				err = fmt.Errorf("a beat with reply subject %s (a JetStream consumer's delivery?)", m.Reply)
			}
			if err != nil {
				sh.s.bus.Ignored().Ignore(sh.log, events.IgnoredInvalidHeartbeat, "heartbeat", "subject", m.Subject, "error", err)
				continue
			}
			now := sh.s.clock.Now()
			prev := seen[head.Host]
			if prev.inc == head.Incarnation && now.Sub(prev.at) < every && !prev.unarmed {
				// An unarmed host's beats are all fed: the one that
				// says its fence is armed must not wait.
				continue
			}
			var hb detector.Heartbeat
			if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Inventory == nil {
				// An absent inventory is unknown, not "no domains": the
				// core must never read it as a host that runs nothing.
				continue
			}
			doms := make([]string, 0, len(hb.Inventory.Domains))
			for _, d := range hb.Inventory.Domains {
				doms = append(doms, d.Name)
			}
			seen[head.Host] = last{at: now, inc: head.Incarnation, unarmed: hb.FenceUnarmed}
			_ = sh.feed(ctx, core.HostBeat{At: now, Host: head.Host, Incarnation: head.Incarnation, Seq: head.Seq,
				FreeMiB: int64(hb.Inventory.FreeMemoryMiB), Domains: doms, FenceUnarmed: hb.FenceUnarmed}, false)
		}
	}
}

// feedInventory registers every VM of the inventory with the core. The
// registered host is not passed: where a VM runs, the core learns from the
// hosts' heartbeats (a domain seen on a host is adopted there), which stays
// true after restarts move it and never trusts a stale registration.
func (sh *shell) feedInventory(ctx context.Context) {
	vms, err := sh.s.inventory.VMs(ctx)
	if err != nil {
		sh.log.Warn("inventory incomplete", "error", err)
	}
	for _, v := range vms {
		_ = sh.feed(ctx, core.VMRegistered{At: sh.s.clock.Now(), Config: v.VMConfig}, true)
	}
}

// watchInventory follows registrations and removals (xenft vm add/remove).
// A watch started again (after a failover) replays every registration, so
// none made meanwhile is missed.
func (sh *shell) watchInventory(ctx context.Context) {
	opts := []jetstream.WatchOpt{jetstream.UpdatesOnly()} // feedInventory read the rest
	sh.keepWatching(ctx, "inventory", func(ctx context.Context) error {
		w, err := sh.s.inventory.vms.WatchAll(ctx, opts...)
		if err != nil {
			return err
		}
		opts = nil
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return nil
			case e, ok := <-w.Updates():
				if !ok {
					return errWatchClosed
				}
				if e == nil {
					continue
				}
				if e.Operation() != jetstream.KeyValuePut {
					_ = sh.feed(ctx, core.VMUnregistered{At: sh.s.clock.Now(), VM: e.Key()}, false)
					continue
				}
				var v VMSpec
				if err := json.Unmarshal(e.Value(), &v); err != nil {
					sh.s.bus.Ignored().Ignore(sh.log, events.IgnoredInvalidInput, "vm registration", "key", e.Key(), "error", err)
					continue
				}
				_ = sh.feed(ctx, core.VMRegistered{At: sh.s.clock.Now(), Config: v.VMConfig}, false)
			}
		}
	})
}

// feedCatalog tells the core every committed checkpoint the catalog holds.
func (sh *shell) feedCatalog(ctx context.Context) {
	groups, err := sh.s.catalog.Groups(ctx)
	if err != nil {
		sh.log.Warn("catalog unreadable", "error", err)
		return
	}
	for _, g := range groups {
		recs, err := sh.s.catalog.Committed(ctx, g)
		if err != nil {
			continue
		}
		for i := len(recs) - 1; i >= 0; i-- {
			_ = sh.feed(ctx, core.CheckpointCommitted{At: sh.s.clock.Now(), Group: g, Seq: recs[i].Seq, VMs: memberNames(recs[i])}, true)
		}
	}
}

func memberNames(r checkpointer.Record) []string {
	out := make([]string, len(r.Members))
	for i, m := range r.Members {
		out[i] = m.VM
	}
	return out
}

// tick feeds the time every second: retries and self-fence deadlines fire on
// ticks.
func (sh *shell) tick(ctx context.Context) {
	t := sh.s.clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.Chan():
			_ = sh.feed(ctx, core.Tick{At: now}, false)
		}
	}
}
