package supervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/inventory"
)

// A fatal node.fault for a host that still beats, with no fence command
// configured (issue 12): the host's own agent destroys its domains, which is
// its fence (node.fenced, method agent); only then is its VM restored
// elsewhere, with its group; the state says the host is fenced, with the
// fault, and it stays so while it beats. No fence_failed claims a wait.
func TestFatalFaultOnABeatingHostIsFencedByItsAgent(t *testing.T) {
	c := newFaultCluster(t)
	c.publish(t, &events.NodeFault{Host: "n2", Severity: events.SeverityFatal, Reason: "IPMI SEL: uncorrectable ECC error, DIMM A2", Detector: "test"})

	rolled := c.waitEvent(t, 30*time.Second, func(e events.Event) bool { return e.Type == events.TypeGroupRolledBack })
	fenced := c.find(func(e events.Event) bool { return e.Type == events.TypeNodeFenced })
	if fenced < 0 {
		t.Fatalf("no node.fenced before the group rolled back:\n%s", c.dump())
	}
	nf, _ := events.DataAs[events.NodeFenced](c.event(fenced))
	if nf.Host != "n2" || nf.Method != events.FenceAgent {
		t.Fatalf("node.fenced %+v, want n2 fenced by its agent", nf)
	}
	restarting := c.find(func(e events.Event) bool { return e.Type == events.TypeVMRestarting && e.EntityID() == "mpi-1" })
	if restarting < 0 || restarting < fenced || rolled < fenced {
		t.Fatalf("mpi-1 restarted before n2 was fenced (fenced #%d, restarting #%d):\n%s", fenced, restarting, c.dump())
	}
	if i := c.find(func(e events.Event) bool { return e.Type == events.TypeSupervisorFenceFailed }); i >= 0 {
		t.Fatalf("fence_failed although the agent fenced its host: %s", c.event(i).Data)
	}
	c.checkOneCopy(t, "mpi-0", "mpi-1")
	if c.runs("n2", "mpi-1") {
		t.Fatal("mpi-1 still runs on n2")
	}

	// The state says so, and n2 stays fenced with its fault while it beats.
	h := c.host(t)
	at := time.Now()
	eventstest.Eventually(t, 10*time.Second, func() bool { h = c.host(t); return h.LastBeat.After(at) },
		"n2's beats no longer reach the supervisor: %+v", &h)
	if h.State != core.HostFenced || h.Fault != core.SeverityFatal || !strings.Contains(h.FaultReason, "ECC") {
		t.Fatalf("n2 after its fatal fault, beating: %s with fault %q (%q), want fenced with the fault", h.State, h.Fault, h.FaultReason)
	}
}

// The same fault when the host's agent does not answer (its command server
// is gone; it still beats and renews its lease), and no fence command is
// configured: nothing fences the host while it beats, fence_failed says
// exactly that and claims no wait, and nothing is restored. Once the host
// goes silent (the machine dies) its self-fence deadline fences it and its
// VM is restored elsewhere.
func TestFatalFaultOnAHostWhoseAgentDoesNotAnswer(t *testing.T) {
	c := newFaultCluster(t)
	n2 := c.hosts["n2"]
	n2.stopCommands()
	c.publish(t, &events.NodeFault{Host: "n2", Severity: events.SeverityFatal, Reason: "PSU failure", Detector: "test"})

	i := c.waitEvent(t, 30*time.Second, func(e events.Event) bool { return e.Type == events.TypeSupervisorFenceFailed })
	ff, _ := events.DataAs[events.SupervisorFenceFailed](c.event(i))
	for _, want := range []string{"no fence command configured (supervisor.fence_command)",
		"n2 still beats, so no self-fence deadline applies",
		"fenced when its agent confirms its VMs destroyed", "by its self-fence deadline once it goes silent"} {
		if !strings.Contains(ff.Error, want) {
			t.Errorf("fence_failed %q does not say %q", ff.Error, want)
		}
	}
	if ff.Host != "n2" || strings.Contains(ff.Error, "waiting for") {
		t.Errorf("fence_failed %+v", ff)
	}
	// It beats on, unfenced, and mpi-1 waits: its copy still runs there.
	h := c.host(t)
	at := time.Now()
	eventstest.Eventually(t, 10*time.Second, func() bool { h = c.host(t); return h.LastBeat.After(at) },
		"n2's beats no longer reach the supervisor: %+v", &h)
	if h.State != core.HostFailed || h.Fault != core.SeverityFatal {
		t.Fatalf("n2: %s, fault %q; want failed with the fault", h.State, h.Fault)
	}
	if j := c.find(func(e events.Event) bool {
		return e.Type == events.TypeNodeFenced || (e.Type == events.TypeVMRestarting && e.EntityID() == "mpi-1")
	}); j >= 0 {
		t.Fatalf("n2 fenced, or mpi-1 restarted, while n2's agent beats and cannot confirm: %s %s", c.event(j).Type, c.event(j).Data)
	}
	if !c.runs("n2", "mpi-1") {
		t.Fatal("mpi-1 no longer runs on n2")
	}

	// The machine dies: beats and renewals stop, its domains with it. A
	// detector says so; the self-fence deadline then fences it.
	last := n2.powerOff(t)
	c.publish(t, &events.NodeFailed{Host: "n2", Incarnation: n2.incarnation, Phi: 9, LastBeat: last, LastSeq: 1, Detector: "test", Reason: events.FailedByPhi})
	c.waitEvent(t, 30*time.Second, func(e events.Event) bool { return e.Type == events.TypeGroupRolledBack })
	fenced := c.find(func(e events.Event) bool { return e.Type == events.TypeNodeFenced })
	if nf, _ := events.DataAs[events.NodeFenced](c.event(max(fenced, 0))); fenced < 0 || nf.Host != "n2" || nf.Method != events.FenceSelf {
		t.Fatalf("n2 not fenced by its self-fence deadline:\n%s", c.dump())
	}
	c.checkOneCopy(t, "mpi-0", "mpi-1")
}

// faultCluster is an embedded server, three simulated hosts each running the
// parts of package agent (beacon, checkpoint executor, restarter, command
// server; composed here, not by agent.New, so that a test can stop a host's
// command server alone) on its own connection, and a supervisor with no
// fence command. Group mpi: mpi-0 on n1, mpi-1 on n2, with a committed
// checkpoint; n3 is spare. Every event is recorded from the start.
type faultCluster struct {
	server  *embedded.Server
	ignored func() map[string]uint64
	// publishers are the buses publishAs opened, one per identity.
	publishers map[events.Publisher]*events.Bus

	bus   *events.Bus
	state func() (*core.State, error)
	hosts map[string]*faultHost

	mu     sync.Mutex
	events []events.Event
}

type faultHost struct {
	name, incarnation string
	sim               *xen.Sim
	stopCmds, stop    context.CancelFunc
	done              chan struct{}
	lastBeat          func() time.Time
}

// Short self-fence timings, so that the silent host's deadline comes within
// seconds: the agents' and the supervisor's agree.
const (
	faultSelfTimeout = 5 * time.Second
	faultMargin      = time.Second
)

func newFaultCluster(t *testing.T) *faultCluster {
	t.Helper()
	return newFaultClusterTrusting(t, nil)
}

// newFaultClusterTrusting is newFaultCluster whose supervisor takes node
// events only from the identities trusted lists (supervisor.trusted_sources;
// nil trusts every role that may tell them). Every part publishes as its
// own identity, as the daemons do.
func newFaultClusterTrusting(t *testing.T, trusted []string) *faultCluster {
	t.Helper()
	s := eventstest.Server(t)
	bus := eventstest.BusAs(t, s, events.RoleSupervisor, "s1")
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	c := &faultCluster{server: s, bus: bus, hosts: map[string]*faultHost{}, publishers: map[events.Publisher]*events.Bus{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = bus.Tail(ctx, events.TailConfig{Since: time.Now().Add(-time.Minute)}, func(_ context.Context, ev events.Event, _ events.Meta) error {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
			return nil
		})
	}()
	for _, name := range []string{"n1", "n2", "n3"} {
		c.hosts[name] = startFaultHost(t, ctx, s, st, name)
	}
	for _, vm := range []struct{ name, host string }{{"mpi-0", "n1"}, {"mpi-1", "n2"}} {
		cfg := filepath.Join(t.TempDir(), vm.name+".cfg")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("name = %q\nmemory = 4\n", vm.name)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.hosts[vm.host].sim.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}

	cfg := supervisor.DefaultConfig()
	cfg.ID = "s1"
	cfg.CheckpointInterval = 0
	cfg.FenceCommand = nil
	cfg.Policy.FenceSelfTimeout, cfg.Policy.FenceMargin = faultSelfTimeout, faultMargin
	cfg.TrustedSources = trusted
	sup, err := supervisor.New(ctx, bus, st, cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range []struct{ name, host string }{{"mpi-0", "n1"}, {"mpi-1", "n2"}} {
		spec := supervisor.VMSpec{VMConfig: core.VMConfig{Name: vm.name, Group: "mpi", MemoryMiB: 4, Policy: core.PolicyRestore}, Host: vm.host}
		if err := sup.Inventory().PutVM(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = sup.Run(ctx) }()
	stateKV, err := bus.KV(ctx, bus.Names().State())
	if err != nil {
		t.Fatal(err)
	}
	c.state = func() (*core.State, error) { return supervisor.LoadState(ctx, stateKV) }
	c.ignored = sup.Ignored

	// The supervisor knows every host and VM, and mpi has a checkpoint
	// committed and known to the core.
	var rerr error
	eventstest.Eventually(t, 30*time.Second, func() bool {
		_, rerr = supervisor.RequestCheckpoint(ctx, bus, "mpi", true, 20*time.Second)
		return rerr == nil
	}, "no checkpoint of mpi: %v", &rerr)
	eventstest.Eventually(t, 20*time.Second, func() bool {
		st, err := c.state()
		if err != nil || st == nil || len(st.Hosts) != 3 || st.Groups["mpi"] == nil || len(st.Groups["mpi"].Checkpoints) == 0 {
			return false
		}
		for _, h := range st.Hosts {
			if h.State != core.HostHealthy {
				return false
			}
		}
		return st.VMs["mpi-0"].State == core.VMRunning && st.VMs["mpi-1"].State == core.VMRunning
	}, "the supervisor never saw the cluster whole")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("events:\n%s", c.dump())
			if st, err := c.state(); err == nil {
				b, _ := json.Marshal(st)
				t.Logf("core state: %s", b)
			}
		}
	})
	return c
}

func startFaultHost(t *testing.T, ctx context.Context, s *embedded.Server, st store.ImageStore, name string) *faultHost {
	t.Helper()
	log := eventstest.Logger(t, hclog.Warn).Named(name)
	sim := &xen.Sim{Host: name}
	bus := eventstest.BusAs(t, s, events.RoleAgent, name)
	guard := &events.EpochGuard{}
	beacon, err := detector.NewBeacon(bus, name, inventory.Host{Driver: sim},
		detector.BeaconConfig{Interval: 200 * time.Millisecond, InventoryInterval: 200 * time.Millisecond, InventoryTimeout: time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := restarter.DefaultConfig()
	rcfg.SpoolDir = t.TempDir()
	rcfg.Fence.RenewInterval, rcfg.Fence.SelfTimeout, rcfg.Fence.ActionTimeout = time.Second, faultSelfTimeout, 2*time.Second
	rest, err := restarter.New(restarter.Identity{Host: name, Incarnation: beacon.Incarnation()}, sim, st, rcfg, guard, log)
	if err != nil {
		t.Fatal(err)
	}
	ecfg := executor.DefaultConfig()
	ecfg.SpoolDir = t.TempDir()
	ex, err := executor.New(rest.HoldSaves(sim), st, ecfg, guard, log)
	if err != nil {
		t.Fatal(err)
	}
	handlers := maps.Clone(ex.Handlers())
	maps.Copy(handlers, rest.Handlers())

	hctx, stop := context.WithCancel(ctx)
	cctx, stopCmds := context.WithCancel(hctx)
	h := &faultHost{name: name, incarnation: beacon.Incarnation(), sim: sim, stopCmds: stopCmds, stop: stop, done: make(chan struct{})}
	var parts sync.WaitGroup
	for _, run := range []func() error{
		func() error { return beacon.Run(hctx) },
		func() error { return rest.Run(hctx, bus) },
		func() error { return bus.ServeCommands(cctx, name, handlers, 8) },
	} {
		parts.Add(1)
		go func() {
			defer parts.Done()
			if err := run(); err != nil && hctx.Err() == nil && !errors.Is(err, events.ErrStopped) && !errors.Is(err, context.Canceled) {
				log.Warn("agent part stopped", "error", err)
			}
		}()
	}
	go func() {
		defer close(h.done)
		parts.Wait()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		ex.Close(cctx)
	}()
	t.Cleanup(func() { stop(); <-h.done })
	return h
}

// stopCommands makes the agent unreachable for commands; it beats and
// renews its lease on.
func (h *faultHost) stopCommands() { h.stopCmds() }

// powerOff stops the whole agent and destroys its domains, as when the
// machine loses power; it returns a time no earlier than its last beat.
func (h *faultHost) powerOff(t *testing.T) time.Time {
	t.Helper()
	h.stop()
	<-h.done
	last := time.Now()
	ctx := context.Background()
	doms, err := h.sim.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		if err := h.sim.Destroy(ctx, d.Name); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// publish publishes p as a trusted heartbeat detector would.
func (c *faultCluster) publish(t *testing.T, p events.Payload) {
	t.Helper()
	c.publishAs(t, events.Publisher{Role: events.RoleDetector, Name: "det-test"}, "xenft/detector/det-test", p)
}

// publishAs publishes p as the identity pub (the subject's last tokens),
// with source as the envelope's claim.
func (c *faultCluster) publishAs(t *testing.T, pub events.Publisher, source string, p events.Payload) {
	t.Helper()
	ev, err := events.New(source, time.Now(), p)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := c.publishers[pub]
	if !ok {
		if pub.Anonymous() {
			b = eventstest.Bus(t, c.server)
		} else {
			b = eventstest.BusAs(t, c.server, pub.Role, pub.Name)
		}
		c.publishers[pub] = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits for an event that matches and returns its index.
func (c *faultCluster) waitEvent(t *testing.T, timeout time.Duration, match func(events.Event) bool) int {
	t.Helper()
	i := -1
	eventstest.Eventually(t, timeout, func() bool { i = c.find(match); return i >= 0 }, "the event never came:\n%s", c)
	return i
}

// find returns the index of the first recorded event that matches, or -1.
func (c *faultCluster) find(match func(events.Event) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.IndexFunc(c.events, match)
}

func (c *faultCluster) event(i int) events.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[i]
}

func (c *faultCluster) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for i, e := range c.events {
		if e.Type != events.TypeCheckpointStarted {
			fmt.Fprintf(&b, "  #%d %s %s %s\n", i, e.Type.Short(), e.Subject, e.Data)
		}
	}
	return b.String()
}

func (c *faultCluster) String() string { return c.dump() }

// host is n2 as the supervisor's persisted state has it.
func (c *faultCluster) host(t *testing.T) core.Host {
	t.Helper()
	st, err := c.state()
	if err != nil || st == nil || st.Hosts["n2"] == nil {
		t.Fatalf("no state of n2: %v", err)
	}
	return *st.Hosts["n2"]
}

// runs reports whether vm runs (unpaused) on host.
func (c *faultCluster) runs(host, vm string) bool {
	doms, _ := c.hosts[host].sim.List(context.Background())
	return slices.ContainsFunc(doms, func(d xen.Domain) bool { return d.Name == vm && d.State == xen.StateRunning })
}

// checkOneCopy: each VM runs on exactly one host, where the state says.
func (c *faultCluster) checkOneCopy(t *testing.T, vms ...string) {
	t.Helper()
	st, err := c.state()
	if err != nil || st == nil {
		t.Fatalf("state: %v", err)
	}
	for _, vm := range vms {
		var on []string
		for _, name := range slices.Sorted(maps.Keys(c.hosts)) {
			if c.runs(name, vm) {
				on = append(on, name)
			}
		}
		if len(on) != 1 || st.VMs[vm].Host != on[0] || st.VMs[vm].State != core.VMRunning {
			t.Errorf("%s runs on %v; the state says %s on %q", vm, on, st.VMs[vm].State, st.VMs[vm].Host)
		}
	}
}
