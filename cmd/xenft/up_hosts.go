package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/agent"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
	"github.com/xenft/xenft/xen"
)

// demo is one `xenft up`: its hosts come and go; mu guards hosts.
type demo struct {
	a       *app
	o       upOptions
	cfg     Config
	srv     *embedded.Server
	creds   *upCreds // nil with --insecure
	bus     *events.Bus
	st      store.ImageStore
	log     hclog.Logger
	out     io.Writer
	started time.Time
	rec     *recorder
	sup     *supervisor.Supervisor // set by startRoles, for the summary
	mon     *detector.Monitor

	mu    sync.Mutex
	hosts map[string]*simHost
}

// simHost is one simulated Xen host with its agent on its own connection.
type simHost struct {
	name   string
	sim    *xen.Sim
	bus    *events.Bus
	cancel context.CancelFunc
	done   chan struct{}
}

type demoVM struct {
	spec supervisor.VMSpec
	host string
	mib  int
}

// demoVMs: an MPI job of three VMs spread over three hosts, a web server and
// a database (priority 10: restarted first).
func demoVMs(hosts int) []demoVM {
	on := func(i int) string { return fmt.Sprintf("n%d", i%hosts+1) }
	vm := func(name, group, host string, mib, prio int) demoVM {
		return demoVM{spec: supervisor.VMSpec{VMConfig: core.VMConfig{Name: name, Group: group, MemoryMiB: int64(mib), Priority: prio, Policy: core.PolicyRestore}, Host: host}, host: host, mib: mib}
	}
	return []demoVM{
		vm("mpi-0", "mpi", on(0), 64, 0),
		vm("mpi-1", "mpi", on(1), 64, 0),
		vm("mpi-2", "mpi", on(2), 64, 0),
		vm("web", "", on(3), 32, 0),
		vm("db", "", on(4), 48, 10),
	}
}

// startHost boots (or reboots, with an empty hypervisor) a simulated host
// and runs its agent; with initial, the demo VMs placed on it boot too.
func (d *demo) startHost(ctx context.Context, wg *sync.WaitGroup, name string, initial bool) error {
	sim := &xen.Sim{Host: name, TotalMemoryMiB: 2048, Dom0MemoryMiB: 512}
	dir := filepath.Join(d.o.dataDir, "hosts", name)
	if initial {
		for _, v := range demoVMs(d.o.hosts) {
			if v.host == name {
				if err := bootSimDomains(ctx, sim, []string{fmt.Sprintf("%s:%d", v.spec.Name, v.mib)}, filepath.Join(dir, "cfg")); err != nil {
					return err
				}
			}
		}
	}
	bus, err := d.connect("xenft-up-"+name, events.Publisher{Role: events.RoleAgent, Name: name})
	if err != nil {
		return err
	}
	cfg := d.cfg
	cfg.Agent.Host, cfg.Agent.Driver = name, "sim"
	cfg.Agent.StateDir = filepath.Join(dir, "state")
	cfg.Agent.Checkpoint.SpoolDir = filepath.Join(dir, "spool")
	cfg.Agent.Restarter.SpoolDir = filepath.Join(dir, "restore")
	cfg.Agent.Restarter.Fence.SelfTimeout = demoSelfFence
	cfg.Agent.Restarter.Fence.ActionTimeout = demoActionTimeout
	cfg.Agent.Restarter.Fence.RenewInterval = 500 * time.Millisecond
	cfg.Heartbeat.Interval = time.Second
	ag, err := agent.New(agentConfig(cfg), sim, bus, d.st, d.log)
	if err != nil {
		bus.Close()
		return err
	}
	hctx, cancel := context.WithCancel(ctx)
	h := &simHost{name: name, sim: sim, bus: bus, cancel: cancel, done: make(chan struct{})}
	d.mu.Lock()
	d.hosts[name] = h
	d.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(h.done)
		defer bus.Close()
		if err := ag.Run(hctx); err != nil && hctx.Err() == nil {
			d.log.Warn("agent stopped", "host", name, "error", err)
		}
	}()
	return nil
}

// crash kills a host: its agent stops and every domain on it is gone, as
// when a machine loses power.
func (d *demo) crash(h *simHost) {
	h.cancel()
	h.bus.Close()
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	doms, _ := h.sim.List(ctx)
	for _, dom := range doms {
		_ = h.sim.Destroy(ctx, dom.Name)
	}
}

// partition cuts a host off the bus while its domains keep running: its
// agent must fence itself (destroy them) before the supervisor restarts them
// elsewhere.
func (d *demo) partition(h *simHost) {
	h.bus.Close() // the agent keeps running, without a bus
}

// chaos injects a fault every chaosEvery and brings the host back (empty, a
// new incarnation) half an interval later.
func (d *demo) chaos(ctx context.Context, wg *sync.WaitGroup) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	t := time.NewTicker(d.o.chaosEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		victim := d.pickVictim(r)
		if victim == nil {
			continue
		}
		kind := "crash"
		if d.o.partition && r.IntN(2) == 0 {
			kind = "partition"
		}
		d.rec.fault(kind, victim.name, d.vmsOn(victim))
		if kind == "crash" {
			d.crash(victim)
		} else {
			d.partition(victim)
		}
		// The host returns after a while: rebooted (crash) or reconnected
		// (partition heals); either way a new agent, a new incarnation.
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.o.chaosEvery / 2):
		}
		if kind == "partition" {
			victim.cancel()
			<-victim.done
		}
		if err := d.startHost(ctx, wg, victim.name, false); err != nil && ctx.Err() == nil {
			d.log.Warn("host did not come back", "host", victim.name, "error", err)
		}
		d.rec.note("host %s back (new incarnation)", victim.name)
	}
}

// pickVictim chooses a live host that runs at least one domain.
func (d *demo) pickVictim(r *rand.Rand) *simHost {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for n, h := range d.hosts {
		if len(d.vmsOnLocked(h)) > 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return d.hosts[names[r.IntN(len(names))]]
}

func (d *demo) vmsOn(h *simHost) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vmsOnLocked(h)
}

func (d *demo) vmsOnLocked(h *simHost) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	doms, _ := h.sim.List(ctx)
	var out []string
	for _, dom := range doms {
		out = append(out, dom.Name)
	}
	return out
}
