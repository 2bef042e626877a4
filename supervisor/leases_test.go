package supervisor_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/inventory"
)

// A host whose beats stop while its agent goes on renewing its fence lease has
// not fenced itself: the leader must push the self-fence deadline back with
// every renewal it sees (and wait for the agent's own self-timeout when that
// is the longer), or it would restore the host's VMs elsewhere while they
// still run there.
func TestRenewingLeaseHoldsTheSelfFenceDeadlineOfAHostWithoutBeats(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, _ := store.NewDir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// n1 beats (with vm1 in its inventory) until its beacon is stopped.
	sim := &xen.Sim{Host: "n1"}
	cfgPath := filepath.Join(t.TempDir(), "vm1.cfg")
	if err := os.WriteFile(cfgPath, []byte("name = \"vm1\"\nmemory = 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sim.Create(ctx, cfgPath); err != nil {
		t.Fatal(err)
	}
	beacon, err := detector.NewBeacon(eventstest.Bus(t, s), "n1", inventory.Host{Driver: sim},
		detector.BeaconConfig{Interval: 200 * time.Millisecond, InventoryInterval: 200 * time.Millisecond, InventoryTimeout: time.Second},
		eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	beaconCtx, stopBeacon := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); _ = beacon.Run(beaconCtx) }()

	// Its agent renews its lease as restarter does, announcing a
	// self-timeout of 30 s where the supervisor's policy says 20 s.
	hosts, err := bus.KV(ctx, bus.Names().Hosts())
	if err != nil {
		t.Fatal(err)
	}
	const agentSelfTimeout = 30 * time.Second
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			b, _ := json.Marshal(protocol.HostLease{Host: "n1", Incarnation: "i1", RenewedAt: time.Now().UTC(),
				RenewIntervalMs: 200, SelfTimeoutMs: agentSelfTimeout.Milliseconds()})
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = hosts.Put(pctx, "n1", b)
			pcancel()
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()

	cfg := supervisor.DefaultConfig()
	cfg.ID = "s1"
	cfg.CheckpointInterval = 0
	sup, err := supervisor.New(ctx, bus, st, cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Inventory().PutVM(ctx, supervisor.VMSpec{VMConfig: core.VMConfig{Name: "vm1", MemoryMiB: 4, Policy: core.PolicyRestore}}); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = sup.Run(ctx) }()

	stateKV, err := bus.KV(ctx, bus.Names().State())
	if err != nil {
		t.Fatal(err)
	}
	host := func() core.Host {
		st, err := supervisor.LoadState(ctx, stateKV)
		if err != nil || st == nil || st.Hosts["n1"] == nil {
			return core.Host{}
		}
		return *st.Hosts["n1"]
	}
	eventstest.Eventually(t, 20*time.Second, func() bool {
		h := host()
		return h.State == core.HostHealthy && h.SelfTimeout == agentSelfTimeout
	}, "the leader never learned n1 and its agent's self-timeout: %+v", host())

	// The beats stop; a detector says n1 failed.
	stopBeacon()
	ev, err := events.New("detector/test", time.Now(), &events.NodeFailed{Host: "n1", Incarnation: "i1", Phi: 9,
		LastBeat: time.Now().Add(-3 * time.Second), LastSeq: 1, Detector: "test", Reason: "phi"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	// Counted from the last beat alone the deadline would be last beat +
	// 20 s + 5 s; the renewals (each fed at most a second late) and the
	// agent's 30 s must carry it past last beat + 35 s, and keep it moving.
	var first time.Time
	eventstest.Eventually(t, 20*time.Second, func() bool {
		h := host()
		if h.State != core.HostFailed || h.FenceDeadline.IsZero() {
			return false
		}
		if first.IsZero() {
			first = h.FenceDeadline
		}
		return h.FenceDeadline.Sub(h.LastBeat) > agentSelfTimeout+cfg.Policy.FenceMargin && h.FenceDeadline.After(first)
	}, "n1's self-fence deadline did not follow its lease renewals: %+v", host())
}
