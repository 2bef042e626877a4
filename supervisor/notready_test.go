package supervisor_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
)

// A host whose agent fenced itself refuses restores until the leader has
// reconciled it, and says so in its lease (awaiting_reconcile). The leader
// must pass that on to the core, which then sends the host no restores, and
// pass on at once that it ended, or the host would sit idle (or the VMs
// waiting for it) for the lease feed's throttle.
func TestLeaseAwaitingReconcileHoldsTheHostOutOfPlacementUntilItEnds(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, _ := store.NewDir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// n1 beats, so that the core knows it, and renews its lease as a
	// fenced agent does until the test says it was reconciled. No agent
	// answers vm.list: the reconcile fails at once (no responders).
	var awaiting atomic.Bool
	awaiting.Store(true)
	hosts, err := bus.KV(ctx, bus.Names().Hosts())
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for seq := uint64(1); ; seq++ {
			now := time.Now().UTC()
			hb, _ := json.Marshal(detector.Heartbeat{V: detector.HeartbeatVersion, Host: "n1", Incarnation: "i1", Seq: seq,
				Sent: now, IntervalMs: 200, Inventory: &detector.Inventory{At: now, Domains: []detector.DomainSummary{}, FreeMemoryMiB: 4096}})
			_ = bus.Conn().Publish(bus.Subjects().Heartbeat("n1"), hb)
			lease, _ := json.Marshal(protocol.HostLease{Host: "n1", Incarnation: "i1", RenewedAt: now, RenewIntervalMs: 200,
				SelfTimeoutMs: 20_000, FenceGeneration: 1, AwaitingReconcile: awaiting.Load()})
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = hosts.Put(pctx, "n1", lease)
			pcancel()
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()

	runSupervisor(t, ctx, &wg, bus, st)

	stateKV, err := bus.KV(ctx, bus.Names().State())
	if err != nil {
		t.Fatal(err)
	}
	// last is the host as last read, printed through a pointer so that a
	// failure shows it as it was at the deadline.
	var last core.Host
	host := func() core.Host {
		last = core.Host{}
		if st, err := supervisor.LoadState(ctx, stateKV); err == nil && st != nil && st.Hosts["n1"] != nil {
			last = *st.Hosts["n1"]
		}
		return last
	}
	eventstest.Eventually(t, 20*time.Second, func() bool {
		h := host()
		return h.State == core.HostHealthy && !h.AwaitingSince.IsZero() && h.NotReadyUntil.After(h.AwaitingSince)
	}, "the core never learned that n1 awaits reconciliation: %+v", &last)

	// Reconciled: the next renewal says so, and the core takes the host
	// back within a renewal or two.
	awaiting.Store(false)
	eventstest.Eventually(t, 2*time.Second, func() bool {
		h := host()
		return h.AwaitingSince.IsZero() && h.NotReadyUntil.IsZero()
	}, "n1 still held out after its lease said it was reconciled: %+v", &last)
}
