package supervisor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/inventory"
)

// DESIGN "a fence needs evidence, not a slow write": an agent that cannot
// get its lease into the xenft_hosts bucket (here the bucket is gone, as
// when its stream has no leader) but reaches the leading supervisor, which
// holds it alive, keeps its guests: the leader's grants renew its lease.
// When the leader goes too, nothing vouches for the host any more and it
// fences itself within its window, as before.
func TestLeaderGrantsKeepAHostWhoseLeaseBucketStalls(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, _ := store.NewDir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	sim := &xen.Sim{Host: "n1"}
	cfgPath := filepath.Join(t.TempDir(), "vm1.cfg")
	if err := os.WriteFile(cfgPath, []byte("name = \"vm1\"\nmemory = 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sim.Create(ctx, cfgPath); err != nil {
		t.Fatal(err)
	}
	agentBus := eventstest.Bus(t, s)
	logs := &eventstest.LogBuffer{}
	log := logs.Logger(t, hclog.Info).Named("n1")
	has := func(s string) bool { return len(logs.Lines(s)) > 0 }
	beacon, err := detector.NewBeacon(agentBus, "n1", inventory.Host{Driver: sim},
		detector.BeaconConfig{Interval: 200 * time.Millisecond, InventoryInterval: 200 * time.Millisecond, InventoryTimeout: time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := restarter.DefaultConfig()
	rcfg.SpoolDir = t.TempDir()
	rcfg.Fence = restarter.FenceConfig{RenewInterval: 100 * time.Millisecond, SelfTimeout: 1500 * time.Millisecond,
		ActionTimeout: 300 * time.Millisecond, Action: restarter.FenceDestroy}
	rest, err := restarter.New(restarter.Identity{Host: "n1", Incarnation: beacon.Incarnation()}, sim, st, rcfg, &events.EpochGuard{}, log)
	if err != nil {
		t.Fatal(err)
	}
	beacon.ReportFence(rest.FenceArmed)
	wg.Add(2)
	go func() { defer wg.Done(); _ = beacon.Run(ctx) }()
	go func() { defer wg.Done(); _ = rest.Run(ctx, agentBus) }()

	supCtx, stopSup := context.WithCancel(ctx)
	cfg := supervisor.DefaultConfig()
	cfg.ID = "s1"
	cfg.CheckpointInterval = 0
	sup, err := supervisor.New(ctx, bus, st, cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	supDone := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); defer close(supDone); _ = sup.Run(supCtx) }()

	eventstest.Eventually(t, 20*time.Second, func() bool { return !rest.FenceStatus().LastGrant.IsZero() },
		"the agent was never granted its lease")
	if err := bus.JetStream().DeleteKeyValue(ctx, bus.Names().Hosts()); err != nil {
		t.Fatal(err)
	}
	// 30 failed bucket renewals, 100 ms apart: over two and a half fence
	// windows (1.5 s − 0.3 s) with nothing stored.
	eventstest.Eventually(t, 20*time.Second, func() bool { return has("failed_renewals=30") },
		"the agent's bucket renewals did not fail")
	if has("SELF-FENCE") {
		t.Fatalf("a host the leader holds alive fenced itself:\n%s", strings.Join(logs.Lines("SELF-FENCE"), "\n"))
	}
	if doms, _ := sim.List(ctx); !hasDomain(doms, "vm1") {
		t.Fatalf("vm1 is gone: %v", doms)
	}

	stopSup()
	<-supDone
	eventstest.Eventually(t, 10*time.Second, func() bool {
		doms, _ := sim.List(ctx)
		return !hasDomain(doms, "vm1")
	}, "with neither the bucket nor a leader, the agent kept its guest")
	if !has("SELF-FENCE: no lease renewal acknowledged for") {
		t.Fatal("no self-fence logged")
	}
}

func hasDomain(doms []xen.Domain, name string) bool {
	for _, d := range doms {
		if d.Name == name {
			return true
		}
	}
	return false
}
