package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/inventory"
)

// hostAgent is everything that runs in dom0 of one host: the heartbeat
// beacon (and its answer to the detectors' probes), the checkpoint executor, the restarter (with its self-fence lease
// and VM-died watcher) and the command server that answers both. `xenft
// agent` runs one; `xenft up` runs one per simulated host.
type hostAgent struct {
	host   string
	hv     xen.Hypervisor
	bus    *events.Bus
	lister *inventory.Lister
	beacon *detector.Beacon
	exec   *executor.Executor
	rest   *restarter.Restarter
	log    hclog.Logger
}

func newHostAgent(cfg Config, hv xen.Hypervisor, bus *events.Bus, st store.ImageStore, log hclog.Logger) (*hostAgent, error) {
	host := cfg.Agent.Host
	log = log.Named("agent").With("host", host)
	guard := &events.EpochGuard{} // shared: a command of term N makes every older term stale here
	// One listing of the domains serves the VM watcher and the beacon: on
	// a real dom0 each `xl list` is an exec that takes the toolstack's
	// lock, and the two listing apart kept a small dom0 busy. The watcher
	// asks for a listing begun after it read its command generation (so it
	// drives one a watch_interval); the beacon is signalled after each and
	// takes it, or lists itself when the watcher has not for a while. A
	// listing is bounded like any other xl call of the restarter's.
	lister, err := inventory.NewLister(hv, cfg.Agent.Restarter.ToolstackTimeout)
	if err != nil {
		return nil, err
	}
	// MaxAge adds to the age of the list the beats carry, which the
	// supervisor's vanish rule needs under 2 s (detector.BeaconConfig).
	inv := inventory.Host{Driver: hv, Lister: lister, MaxAge: cfg.Heartbeat.InventoryInterval / 2}
	beacon, err := detector.NewBeacon(bus, host, inv, cfg.Heartbeat, log)
	if err != nil {
		return nil, err
	}
	rest, err := restarter.New(restarter.Identity{Host: host, Incarnation: beacon.Incarnation()}, hv, st, cfg.Agent.Restarter, guard, log)
	if err != nil {
		return nil, err
	}
	rest.WatchThrough(lister)
	// Beats say whether the self-fence is armed: until it is, a supervisor
	// must not count this host as self-fenced (restarter/fence.go, rule 0).
	beacon.ReportFence(rest.FenceArmed)
	// A capture suspends the guest while it is saved: the restarter's
	// watcher must not take that for a failure.
	ex, err := executor.New(rest.HoldSaves(hv), st, cfg.Agent.Checkpoint, guard, log)
	if err != nil {
		return nil, err
	}
	return &hostAgent{host: host, hv: hv, bus: bus, lister: lister, beacon: beacon, exec: ex, rest: rest, log: log}, nil
}

// run serves until ctx ends or a part fails; when one part stops, all do.
// Domains paused for a checkpoint are unpaused on the way out.
func (a *hostAgent) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	handlers := maps.Clone(a.exec.Handlers())
	maps.Copy(handlers, a.rest.Handlers())
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for name, f := range map[string]func(context.Context) error{
		"heartbeat beacon": a.beacon.Run,
		// Detectors probe a host whose beats stop before failing it; the
		// beacon's own answer says this agent is alive and on the bus.
		"probe responder": a.beacon.AnswerProbes,
		"restarter":       func(ctx context.Context) error { return a.rest.Run(ctx, a.bus) },
		"command server":  func(ctx context.Context) error { return a.bus.ServeCommands(ctx, a.host, handlers, 32) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if err := f(ctx); err != nil && !errors.Is(err, events.ErrStopped) && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	a.log.Info("agent ready", "incarnation", a.beacon.Incarnation())
	wg.Wait()
	a.lister.Close() // its users have stopped
	st := a.lister.Stats()
	a.log.Debug("domain listings", "listings", st.Listings, "failed", st.Failures, "cached", st.Cached, "joined", st.Joined)
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	a.exec.Close(cctx)
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}
