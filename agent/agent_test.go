package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/agent"
	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

// TestAnAgentRunsEveryPartAndStopsThemAll runs one agent on a sim host
// against a real embedded server: it beats, answers a detector's probe,
// arms its self-fence and answers a command; when its context ends, Run
// returns nil and none of its goroutines is left.
func TestAnAgentRunsEveryPartAndStopsThemAll(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sim := &xen.Sim{Host: "n1"}
	cfgPath := filepath.Join(t.TempDir(), "vm1.cfg")
	if err := os.WriteFile(cfgPath, []byte("name = \"vm1\"\nmemory = 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sim.Create(context.Background(), cfgPath); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "")
	cfg.Heartbeat.Interval = 100 * time.Millisecond
	ag, err := agent.New(cfg, sim, bus, st, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}

	var beats atomic.Int64
	sub, err := bus.Conn().Subscribe(bus.Subjects().Heartbeat("n1"), func(m *nats.Msg) {
		if hb, err := detector.DecodeHeartbeat(m.Data); err == nil && hb.Incarnation == ag.Incarnation() {
			beats.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventstest.Eventually(t, 10*time.Second, func() bool { return beats.Load() >= 3 }, "no beats from the agent")
	eventstest.Eventually(t, 10*time.Second, ag.FenceArmed, "the self-fence never armed")

	var reply detector.ProbeReply
	eventstest.Eventually(t, 10*time.Second, func() bool {
		m, err := bus.Conn().Request(bus.Subjects().Probe("n1"), nil, time.Second)
		if err != nil {
			return false
		}
		reply, err = detector.DecodeProbeReply(m.Data)
		return err == nil
	}, "the agent does not answer probes")
	if reply.Incarnation != ag.Incarnation() {
		t.Fatalf("probe answered by incarnation %q, want %q", reply.Incarnation, ag.Incarnation())
	}

	var list protocol.ListReply
	if err := bus.Command(ctx, "n1", protocol.VerbList, protocol.ListRequest{}, &list, 10*time.Second); err != nil {
		t.Fatalf("vm.list: %v", err)
	}
	if len(list.Domains) != 1 || list.Domains[0].Name != "vm1" || list.Incarnation != ag.Incarnation() {
		t.Fatalf("vm.list answered %+v, want vm1 on incarnation %s", list, ag.Incarnation())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after its context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30 s after its context ended")
	}
	done <- nil // for the deferred receive
	eventstest.NoGoroutines(t, 10*time.Second, "xenft/agent.", "xenft/detector.(*Beacon)", "xenft/restarter.(*Restarter)", "xenft/checkpointer/executor.")
}

func jsonInto(b []byte, v any) bool { return json.Unmarshal(b, v) == nil }

// testConfig is host n1's agent with the default parts, its spools in
// temporary directories and its state in stateDir ("" for none).
func testConfig(t *testing.T, stateDir string) agent.Config {
	cfg := agent.Config{Host: "n1", Heartbeat: detector.DefaultBeaconConfig(), StateDir: stateDir,
		Checkpoint: executor.DefaultConfig(), Restarter: restarter.DefaultConfig()}
	cfg.Checkpoint.SpoolDir = t.TempDir()
	cfg.Restarter.SpoolDir = t.TempDir()
	return cfg
}
