package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/agent"
	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
	"github.com/xenft/xenft/xen"
)

// cluster is one measured world: an embedded NATS server with JetStream, a
// supervisor, and simulated hosts each running the agent composition of
// package agent (beacon and probe answers, checkpoint executor, restarter, command
// server) on its own in-process connection, so a host can be cut off alone.
// No detector runs: the bench publishes node.failed itself (see doc.go).
type cluster struct {
	dir  string
	srv  *embedded.Server
	bus  *events.Bus // the bench's own connection: inventory, injection, tail
	st   store.ImageStore
	log  hclog.Logger
	cost time.Duration // sleep before every sim restore

	wg    sync.WaitGroup // agents and supervisor
	stop  context.CancelFunc
	hosts []*simHost
}

// simHost is one simulated Xen host and its agent.
type simHost struct {
	name        string
	sim         *xen.Sim
	hv          *costlySim
	bus         *events.Bus
	incarnation string
	cancel      context.CancelFunc
	done        chan struct{}
	down        bool
}

// costlySim is the sim driver with a restore that takes at least cost, as a
// real `xl restore` does (shared/xen-lab: 1.26-1.52 s for a 128 MiB PV guest
// under nested Xen). Everything else is the sim's.
type costlySim struct {
	*xen.Sim
	cost time.Duration
}

func (c *costlySim) Restore(ctx context.Context, path string, opts xen.RestoreOptions) error {
	if c.cost > 0 {
		t := time.NewTimer(c.cost)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return c.Sim.Restore(ctx, path, opts)
}

// shape is the size of a cluster.
type shape struct {
	hosts, vmsPerHost int
	vmMiB             int
}

func hostName(i int) string   { return fmt.Sprintf("h%03d", i) }
func vmName(h, j int) string  { return fmt.Sprintf("h%03d-vm%02d", h, j) }
func (s shape) totalVMs() int { return s.hosts * s.vmsPerHost }

// newCluster starts the server, the hosts with their domains, registers every
// VM (policy restore, each VM its own group) and starts the supervisor.
func newCluster(ctx context.Context, dir string, sh shape, cost time.Duration, log hclog.Logger) (*cluster, error) {
	scfg := embedded.DefaultConfig()
	scfg.Port, scfg.DataDir, scfg.Name = -1, filepath.Join(dir, "nats"), "bench-restart"
	srv, err := embedded.Start(scfg, log, 15*time.Second)
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, srv: srv, log: log, cost: cost}
	if c.bus, err = c.connect("bench"); err != nil {
		srv.Shutdown()
		return nil, err
	}
	if err := c.bus.EnsureResources(ctx); err != nil {
		c.close()
		return nil, err
	}
	if c.st, err = store.NewDir(filepath.Join(dir, "images")); err != nil {
		c.close()
		return nil, err
	}
	actx, stop := context.WithCancel(context.Background())
	c.stop = stop
	for i := 1; i <= sh.hosts; i++ {
		if err := c.startHost(actx, ctx, i, sh); err != nil {
			c.close()
			return nil, fmt.Errorf("host %s: %w", hostName(i), err)
		}
	}
	if err := c.register(ctx, sh); err != nil {
		c.close()
		return nil, err
	}
	if err := c.startSupervisor(actx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *cluster) connect(name string) (*events.Bus, error) {
	b := events.DefaultBusConfig()
	b.ClientName = name
	b.RequestTimeout = 30 * time.Second
	return events.Connect(b, c.log, events.InProcess(c.srv))
}

// startHost boots host i's domains in its sim and runs its agent until actx
// ends or the host is crashed.
func (c *cluster) startHost(actx, ctx context.Context, i int, sh shape) error {
	name := hostName(i)
	// Room for its own VMs and the share of a failed host's VMs it may
	// receive, with the sim's default dom0 reservation.
	sim := &xen.Sim{Host: name, TotalMemoryMiB: uint64(2048 + 4*sh.vmsPerHost*sh.vmMiB)}
	hv := &costlySim{Sim: sim, cost: c.cost}
	hdir := filepath.Join(c.dir, "hosts", name)
	if err := os.MkdirAll(filepath.Join(hdir, "cfg"), 0o750); err != nil {
		return err
	}
	for j := 0; j < sh.vmsPerHost; j++ {
		vm := vmName(i, j)
		cfg := filepath.Join(hdir, "cfg", vm+".cfg")
		body := fmt.Sprintf("name = %q\ntype = \"pv\"\nmemory = %d\nvcpus = 1\n", vm, sh.vmMiB)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			return err
		}
		if err := sim.Create(ctx, cfg); err != nil {
			return err
		}
	}
	bus, err := c.connect("bench-" + name)
	if err != nil {
		return err
	}
	// What `xenft agent` runs (package agent), on this host's sim.
	acfg := agent.Config{Host: name, Heartbeat: detector.DefaultBeaconConfig(),
		Checkpoint: executor.DefaultConfig(), Restarter: restarter.DefaultConfig()}
	acfg.Restarter.SpoolDir = filepath.Join(hdir, "restore")
	acfg.Checkpoint.SpoolDir = filepath.Join(hdir, "spool")
	ag, err := agent.New(acfg, hv, bus, c.st, c.log)
	if err != nil {
		bus.Close()
		return err
	}
	hctx, cancel := context.WithCancel(actx)
	h := &simHost{name: name, sim: sim, hv: hv, bus: bus, incarnation: ag.Incarnation(), cancel: cancel, done: make(chan struct{})}
	c.hosts = append(c.hosts, h)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(h.done)
		defer bus.Close()
		if err := ag.Run(hctx); err != nil && hctx.Err() == nil {
			c.log.Warn("agent stopped", "host", name, "error", err)
		}
	}()
	return nil
}

// register puts every VM in the inventory: policy restore, no group (each VM
// rolls back alone, so 10 failed hosts mean exactly their VMs restored).
func (c *cluster) register(ctx context.Context, sh shape) error {
	vms, err := c.bus.KV(ctx, c.bus.Names().VMs())
	if err != nil {
		return err
	}
	groups, err := c.bus.KV(ctx, c.bus.Names().Groups())
	if err != nil {
		return err
	}
	inv := supervisor.NewInventory(vms, groups)
	return forEach(ctx, sh.totalVMs(), 16, func(ctx context.Context, k int) error {
		h, j := k/sh.vmsPerHost+1, k%sh.vmsPerHost
		return inv.PutVM(ctx, supervisor.VMSpec{VMConfig: core.VMConfig{Name: vmName(h, j), MemoryMiB: int64(sh.vmMiB), Policy: core.PolicyRestore}, Host: hostName(h)})
	})
}

// startSupervisor runs one supervisor. Fencing is by a fence command that
// always succeeds (/bin/true): the crashed hosts are gone for certain, and
// what is measured is the supervisor's path, not the self-fence wait
// (fence_self_timeout + fence_margin, 15 s by default) it would otherwise add
// by design. Checkpoints only on demand.
func (c *cluster) startSupervisor(actx context.Context) error {
	bus, err := c.connect("bench-supervisor")
	if err != nil {
		return err
	}
	cfg := supervisor.DefaultConfig()
	cfg.ID = "sup-bench"
	cfg.CheckpointInterval = 0
	cfg.FenceCommand = []string{"/bin/true"}
	sup, err := supervisor.New(actx, bus, c.st, cfg, c.log)
	if err != nil {
		bus.Close()
		return err
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); defer bus.Close(); _ = sup.Run(actx) }()
	return nil
}

// crash stops a host's agent and destroys its domains, as when the machine
// loses power.
func (c *cluster) crash(ctx context.Context, h *simHost) error {
	h.cancel()
	h.bus.Close()
	<-h.done
	h.down = true
	doms, err := h.sim.List(ctx)
	if err != nil {
		return err
	}
	for _, d := range doms {
		if err := h.sim.Destroy(ctx, d.Name); err != nil {
			return err
		}
	}
	return nil
}

// census counts, over the live hosts, where each VM runs; running counts only
// unpaused domains.
func (c *cluster) census(ctx context.Context) (copies map[string]int, running int, err error) {
	copies = map[string]int{}
	for _, h := range c.hosts {
		if h.down {
			continue
		}
		doms, err := h.sim.List(ctx)
		if err != nil {
			return nil, 0, err
		}
		for _, d := range doms {
			copies[d.Name]++
			if d.State == xen.StateRunning {
				running++
			}
		}
	}
	return copies, running, nil
}

func (c *cluster) close() {
	if c.stop != nil {
		c.stop()
	}
	c.wg.Wait()
	if c.bus != nil {
		c.bus.Close()
	}
	c.srv.Shutdown()
}

// forEach runs f(0..n-1) with at most par at once; the first error wins.
func forEach(ctx context.Context, n, par int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, par)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for k := 0; k < n && ctx.Err() == nil; k++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(ctx, k); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}
