package agent

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
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/inventory"
)

// Config is what one host's agent needs besides its connections.
type Config struct {
	// Host is this host's name in xenft.
	Host string
	// Heartbeat configures the beacon (the "heartbeat" section).
	Heartbeat detector.BeaconConfig
	// Checkpoint configures the executor (agent.checkpoint).
	Checkpoint executor.Config
	// Restarter configures restores and the self-fence (agent.restarter).
	Restarter restarter.Config
	// StateDir keeps what the agent must remember across restarts: the
	// newest leader term it obeyed (synced before it obeys a newer one).
	// Empty keeps it in memory only, for tests and benchmarks; `xenft agent`
	// always sets it (agent.state_dir).
	StateDir string
	// CommandWorkers bounds the commands served at once; 0 means 32.
	CommandWorkers int
	// Clock is what every part reads the time on; nil means the
	// machine's (tests pass a clockwork.FakeClock).
	Clock clock.Clock
}

// closeTimeout bounds the executor's Close at the end of Run: unpausing the
// domains a checkpoint left paused.
const closeTimeout = time.Minute

// Agent is one host's agent, built by New and run once by Run.
type Agent struct {
	host   string
	bus    *events.Bus
	lister *inventory.Lister
	beacon *detector.Beacon
	exec   *executor.Executor
	rest   *restarter.Restarter
	work   int
	log    hclog.Logger
}

// New builds the agent of cfg.Host over hv, answering on bus and keeping
// images in st. Nothing runs until Run.
func New(cfg Config, hv xen.Hypervisor, bus *events.Bus, st store.ImageStore, log hclog.Logger) (*Agent, error) {
	log = log.Named("agent").With("host", cfg.Host)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	guard, err := epochGuard(cfg.StateDir) // shared: a command of term N makes every older term stale here
	if err != nil {
		return nil, err
	}
	// The watcher asks for a listing begun after it read its command
	// generation (so it drives one a watch_interval); the beacon is
	// signalled after each and takes it, or lists itself when the watcher
	// has not for a while. A listing is bounded like any other xl call of
	// the restarter's.
	lister, err := inventory.NewLister(hv, cfg.Restarter.ToolstackTimeout)
	if err != nil {
		return nil, err
	}
	// MaxAge adds to the age of the list the beats carry, which the
	// supervisor's vanish rule needs under 2 s (detector.BeaconConfig).
	inv := inventory.Host{Driver: hv, Lister: lister, MaxAge: cfg.Heartbeat.InventoryInterval / 2}
	beacon, err := detector.NewBeacon(bus, cfg.Host, inv, cfg.Heartbeat, log, detector.WithClock(cfg.Clock))
	if err != nil {
		return nil, err
	}
	rest, err := restarter.New(restarter.Identity{Host: cfg.Host, Incarnation: beacon.Incarnation()}, hv, st, cfg.Restarter, guard, log, restarter.WithClock(cfg.Clock))
	if err != nil {
		return nil, err
	}
	rest.WatchThrough(lister)
	beacon.ReportFence(rest.FenceArmed)
	ex, err := executor.New(rest.HoldSaves(hv), st, cfg.Checkpoint, guard, log, executor.WithClock(cfg.Clock))
	if err != nil {
		return nil, err
	}
	work := cfg.CommandWorkers
	if work <= 0 {
		work = 32
	}
	return &Agent{host: cfg.Host, bus: bus, lister: lister, beacon: beacon, exec: ex, rest: rest, work: work, log: log}, nil
}

// Incarnation identifies this run of the agent in its beats: a host back
// with another incarnation has lost its domains.
func (a *Agent) Incarnation() string { return a.beacon.Incarnation() }

// FenceArmed reports whether the self-fence is armed (a lease renewal was
// acknowledged).
func (a *Agent) FenceArmed() bool { return a.rest.FenceArmed() }

// Run serves until ctx ends or a part fails; when one part stops, all do.
// Domains paused for a checkpoint are unpaused on the way out. The error
// joins those of the parts that failed (nil when ctx ended them).
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	handlers := maps.Clone(a.exec.Handlers())
	maps.Copy(handlers, a.rest.Handlers())
	parts := []struct {
		name string
		run  func(context.Context) error
	}{
		{"heartbeat beacon", a.beacon.Run},
		// Detectors probe a host whose beats stop before failing it; the
		// beacon's own answer says this agent is alive and on the bus.
		{"probe responder", a.beacon.AnswerProbes},
		{"restarter", func(ctx context.Context) error { return a.rest.Run(ctx, a.bus) }},
		{"command server", func(ctx context.Context) error { return a.bus.ServeCommands(ctx, a.host, handlers, a.work) }},
	}
	errs := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if err := p.run(ctx); err != nil && !errors.Is(err, events.ErrStopped) && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", p.name, err)
			}
		}()
	}
	a.log.Info("agent ready", "incarnation", a.beacon.Incarnation())
	wg.Wait()
	a.lister.Close() // its users have stopped
	st := a.lister.Stats()
	a.log.Debug("domain listings", "listings", st.Listings, "failed", st.Failures, "cached", st.Cached, "joined", st.Joined)
	cctx, ccancel := context.WithTimeout(context.Background(), closeTimeout)
	defer ccancel()
	a.exec.Close(cctx)
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
