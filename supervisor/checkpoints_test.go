package supervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/inventory"
)

// simAgents starts one checkpoint executor per host over a sim, answering on
// the bus until the test ends, and boots vm<i> on host n<i>.
func simAgents(t *testing.T, s *embedded.Server, st store.ImageStore, hosts int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := 1; i <= hosts; i++ {
		host := fmt.Sprintf("n%d", i)
		sim := &xen.Sim{Host: host}
		cfg := filepath.Join(t.TempDir(), "vm.cfg")
		_ = os.WriteFile(cfg, []byte(fmt.Sprintf("name = \"vm%d\"\nmemory = 4\n", i)), 0o644)
		if err := sim.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		ecfg := executor.DefaultConfig()
		ecfg.SpoolDir = t.TempDir()
		ex, err := executor.New(sim, st, ecfg, &events.EpochGuard{}, eventstest.Logger(t, hclog.Warn))
		if err != nil {
			t.Fatal(err)
		}
		b := eventstest.Bus(t, s)
		beacon, err := detector.NewBeacon(b, host, inventory.Host{Driver: sim}, detector.BeaconConfig{Interval: 200 * time.Millisecond, InventoryInterval: 200 * time.Millisecond, InventoryTimeout: time.Second}, eventstest.Logger(t, hclog.Warn))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); _ = b.ServeCommands(ctx, host, ex.Handlers(), 8) }()
		go func() { defer wg.Done(); _ = beacon.Run(ctx) }()
	}
}

func TestLeaderCheckpointsGroupsOnScheduleAndOnDemand(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, _ := store.NewDir(t.TempDir())
	simAgents(t, s, st, 2)
	ctx := context.Background()

	// No supervisor yet: a request says so at once.
	if _, err := supervisor.RequestCheckpoint(ctx, bus, "mpi", true, 5*time.Second); !errors.Is(err, supervisor.ErrNoLeader) {
		t.Fatalf("request without a leader: %v", err)
	}

	cfg := supervisor.DefaultConfig()
	cfg.ID = "s1"
	cfg.CheckpointInterval = 0 // on demand, except for groups with settings
	sup, err := supervisor.New(ctx, bus, st, cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	inv := sup.Inventory()
	for i := 1; i <= 2; i++ {
		if err := inv.PutVM(ctx, supervisor.VMSpec{VMConfig: core.VMConfig{Name: fmt.Sprintf("vm%d", i), Group: "mpi", MemoryMiB: 4, Policy: core.PolicyRestore}, Host: fmt.Sprintf("n%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.PutGroup(ctx, supervisor.GroupSettings{Name: "mpi", CheckpointInterval: supervisor.Duration(time.Second), Retain: 2}); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(rctx) }()
	defer func() { stop(); <-done }()

	kv, _ := bus.KV(ctx, bus.Names().Checkpoints())
	cat := checkpointer.NewCatalog(kv)
	// On schedule: the group gets checkpoints every second, two kept.
	defer func() {
		if t.Failed() {
			skv, _ := bus.KV(ctx, bus.Names().State())
			if st, err := supervisor.LoadState(ctx, skv); err == nil && st != nil {
				b, _ := json.Marshal(st)
				t.Logf("core state: %s", b)
			}
		}
	}()
	eventstest.Eventually(t, 20*time.Second, func() bool {
		recs, _ := cat.Committed(ctx, "mpi")
		return len(recs) == 2 && recs[0].Seq >= 3
	}, "no scheduled checkpoints with retention")

	// On demand, waiting for the result.
	var rep supervisor.CheckpointReply
	eventstest.Eventually(t, 10*time.Second, func() bool {
		rep, err = supervisor.RequestCheckpoint(ctx, bus, "mpi", true, 30*time.Second)
		return err == nil
	}, "on-demand checkpoint failed: %v", err)
	if rep.Record == nil || rep.Record.State != checkpointer.Committed || len(rep.Record.Members) != 2 {
		t.Fatalf("reply = %+v", rep)
	}
	if _, err := supervisor.RequestCheckpoint(ctx, bus, "nosuch", true, 5*time.Second); err == nil {
		t.Fatal("checkpoint of an unknown group accepted")
	}
}
