package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/supervisor/core"
)

// leaseFeedEvery is how often a host's lease renewal reaches the core: a
// failed host's self-fence deadline is fence_self_timeout + fence_margin
// after its newest renewal, so a renewal that arrives up to this late only
// pushes it back a little less.
const leaseFeedEvery = time.Second

// leaseBook remembers when each host's agent was last seen renewing its fence
// lease, so a node.failed handed to the core carries it: the self-fence
// deadline counts from it even when the renewal came before the verdict.
type leaseBook struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newLeaseBook() *leaseBook { return &leaseBook{seen: map[string]time.Time{}} }

func (b *leaseBook) renewed(host string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if at.After(b.seen[host]) {
		b.seen[host] = at
	}
}

func (b *leaseBook) last(host string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[host]
}

// watchLeases watches the agents' leases in xenft_hosts.
//
// Every renewal is evidence that the agent is on the bus and has not fenced
// itself: it is recorded in the lease book and fed to the core (at most every
// leaseFeedEvery per host), so a host whose beats stopped but whose agent
// renews is not counted as self-fenced (two live copies otherwise). A renewal
// read live counts from when it was read, which is after the agent sent it;
// one stored before the watch began counts from when the server stored it.
//
// An agent that fenced itself (it lost the bus) refuses restores until a
// leader has looked at it: it marks its lease awaiting_reconcile, and this
// sends it vm.list under the current term. The core learns what runs there
// from its beats, and from the lease that the host takes no restores yet: a
// renewal whose awaiting_reconcile changed is fed at once, not throttled, so
// that the core sends the host work as soon as it is reconciled.
func (sh *shell) watchLeases(ctx context.Context) {
	lf := &leaseFeed{sh: sh, asked: map[string]time.Time{}, fed: map[string]time.Time{}, awaiting: map[string]bool{},
		warned: map[string]int64{}, fedInc: map[string]string{}}
	sh.keepWatching(ctx, "host leases", func(ctx context.Context) error {
		kv, err := sh.s.bus.KV(ctx, sh.s.bus.Names().Hosts())
		if err != nil {
			return err
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = w.Stop() }()
		live := false // past the stored values: updates are renewals as they happen
		quiet := sh.s.clock.NewTicker(leaseWatchQuiet)
		defer quiet.Stop()
		lastUpdate := sh.s.clock.Now()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-quiet.Chan():
				if sh.s.clock.Since(lastUpdate) >= leaseWatchQuiet {
					sh.reconcileFromBucket(ctx, kv, lf.asked)
				}
			case e, ok := <-w.Updates():
				lastUpdate = sh.s.clock.Now()
				switch {
				case !ok:
					return errWatchClosed
				case e == nil:
					live = true
				case e.Operation() == jetstream.KeyValuePut:
					lf.take(ctx, e, live)
				}
			}
		}
	})
}

// leaseFeed turns the lease watch's entries into the core's
// HostLeaseRenewed inputs, throttled per host, and reconciles the hosts that
// await it. Its maps are per host and live as long as the watch's restarts.
type leaseFeed struct {
	sh       *shell
	asked    map[string]time.Time // when vm.list was last sent
	fed      map[string]time.Time // when a renewal was last fed
	awaiting map[string]bool      // awaiting_reconcile as last fed
	warned   map[string]int64     // the mismatched self-timeout warned about
	fedInc   map[string]string    // the incarnation of the renewal last fed
}

// take handles one stored lease; live says the watch is past the values
// stored before it began (a stored one counts from when the server stored
// it).
func (lf *leaseFeed) take(ctx context.Context, e jetstream.KeyValueEntry, live bool) {
	sh := lf.sh
	var lease protocol.HostLease
	if json.Unmarshal(e.Value(), &lease) != nil || lease.Host == "" || lease.SelfTimeoutMs < 0 {
		return
	}
	now := sh.s.clock.Now()
	at := now
	if !live && e.Created().Before(now) {
		at = e.Created()
	}
	sh.leases.renewed(lease.Host, at)
	sh.obeyed(lease.Host, lease.ObeyedTerm)
	selfTimeout := time.Duration(lease.SelfTimeoutMs) * time.Millisecond
	if p := sh.s.cfg.Policy.FenceSelfTimeout; selfTimeout != p && lf.warned[lease.Host] != lease.SelfTimeoutMs {
		lf.warned[lease.Host] = lease.SelfTimeoutMs
		sh.log.Warn("agent's fence.self_timeout differs from supervisor.policy.fence_self_timeout; waiting for the longer before restarting its VMs elsewhere",
			"host", lease.Host, "agent", selfTimeout, "policy", p)
	}
	// A new incarnation's first renewal arms its self-fence in the core:
	// fed at once, like a change of awaiting.
	changed := lease.AwaitingReconcile != lf.awaiting[lease.Host] || lease.Incarnation != lf.fedInc[lease.Host]
	if now.Sub(lf.fed[lease.Host]) >= leaseFeedEvery || changed {
		lf.fed[lease.Host], lf.awaiting[lease.Host], lf.fedInc[lease.Host] = now, lease.AwaitingReconcile, lease.Incarnation
		_ = sh.feed(ctx, core.HostLeaseRenewed{At: now, Host: lease.Host, Incarnation: lease.Incarnation, RenewedAt: at, SelfTimeout: selfTimeout,
			AwaitingReconcile: lease.AwaitingReconcile}, false)
	}
	if lease.AwaitingReconcile {
		sh.reconcile(ctx, lease.Host, lf.asked)
	}
}

// leaseWatchQuiet: every agent renews its lease every second, so a lease
// watch without an update for this long is stalled, or there is nothing to
// watch.
const leaseWatchQuiet = 2 * time.Second

// reconcileFromBucket reads the hosts bucket directly and reconciles every
// host awaiting it. The lease watch can stall without an error: after the
// server leading the bucket died, nats.go's ordered consumer delivered
// nothing for 10 s (e2e), while every host, having fenced itself, refused
// restores until reconciled and every VM's restore attempts ran out.
func (sh *shell) reconcileFromBucket(ctx context.Context, kv jetstream.KeyValue, asked map[string]time.Time) {
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	keys, err := kv.ListKeys(lctx)
	if err != nil {
		return
	}
	var awaiting []string
	for key := range keys.Keys() {
		e, err := kv.Get(lctx, key)
		if err != nil {
			continue
		}
		var lease protocol.HostLease
		if json.Unmarshal(e.Value(), &lease) == nil && lease.Host != "" && lease.AwaitingReconcile {
			awaiting = append(awaiting, lease.Host)
		}
	}
	for _, host := range awaiting {
		sh.reconcile(ctx, host, asked)
	}
}

// errWatchClosed is a key-value watch that ended without being stopped.
var errWatchClosed = errors.New("watch closed")

// keepWatching runs watch until ctx ends, and again a second after each time
// it stops early. A watch is opened once per leadership, and a leader elected
// during a JetStream failover may find the bucket without a leader for
// seconds: giving up then left the leases unwatched for the whole term, so
// no self-fenced host was ever reconciled and, after an outage that fenced
// every host, every VM was refused everywhere until declared unrecoverable
// (e2e, the leader of the hosts bucket killed).
func (sh *shell) keepWatching(ctx context.Context, what string, watch func(context.Context) error) {
	for {
		err := watch(ctx)
		if ctx.Err() != nil {
			return
		}
		sh.log.Warn("watch stopped; starting it again", "watch", what, "error", err)
		clock.Sleep(ctx, sh.s.clock, time.Second)
	}
}

// reconcile sends a self-fenced host vm.list under the current term, which
// ends its fence (restarter/fence.go, the latch).
func (sh *shell) reconcile(ctx context.Context, host string, asked map[string]time.Time) {
	// The lease is renewed every second; ask again only if the previous
	// answer did not clear the mark.
	if sh.s.clock.Since(asked[host]) < 5*time.Second {
		return
	}
	asked[host] = sh.s.clock.Now()
	// Synchronous: a listing takes milliseconds and reconciles are rare; the
	// watch buffers updates meanwhile.
	var rep protocol.ListReply
	err := sh.s.bus.Command(ctx, host, protocol.VerbList, protocol.ListRequest{Epoch: events.Epoch{Term: sh.term}}, &rep, 10*time.Second)
	if err != nil {
		sh.log.Warn("reconcile of a self-fenced host failed", "host", host, "error", err)
		return
	}
	sh.log.Info("reconciled a self-fenced host", "host", host, "domains", len(rep.Domains))
}
