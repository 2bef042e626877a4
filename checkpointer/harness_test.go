package checkpointer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/xentest"
)

func TestMain(m *testing.M) { os.Exit(xentest.RunWithFakeXL(m)) }

// recorder wraps a host's hypervisor: it logs the order of captures and
// unpauses across all hosts, remembers each member's progress at capture, and
// injects failures.
type recorder struct {
	xen.Hypervisor
	host  string
	order *orderLog
	// progress reads a domain's workload counter (sim: directly; fake xl:
	// from xl list -l via the sim state).
	progress func(vm string) (uint64, error)

	mu       sync.Mutex
	failSave map[string]error
	captured map[string]uint64
}

type orderLog struct {
	n   atomic.Int64
	mu  sync.Mutex
	ops []op
}

type op struct {
	seq  int64
	kind string // "captured", "unpause"
	vm   string
}

func (l *orderLog) add(kind, vm string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op{l.n.Add(1), kind, vm})
}

func (l *orderLog) snapshot() []op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]op(nil), l.ops...)
}

func (r *recorder) Save(ctx context.Context, dom, path string, opts xen.SaveOptions) error {
	r.mu.Lock()
	fail := r.failSave[dom]
	r.mu.Unlock()
	if fail != nil {
		return fail
	}
	if err := r.Hypervisor.Save(ctx, dom, path, opts); err != nil {
		return err
	}
	// The domain is left paused: its counter is frozen at the image's value.
	p, err := r.progress(dom)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.captured[dom] = p
	r.mu.Unlock()
	r.order.add("captured", dom)
	return nil
}

func (r *recorder) Unpause(ctx context.Context, dom string) error {
	r.order.add("unpause", dom)
	return r.Hypervisor.Unpause(ctx, dom)
}

func (r *recorder) capturedProgress(vm string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.captured[vm]
}

// cluster is N hosts, each an agent (executor answering commands on the real
// embedded bus) over its own hypervisor, sharing one directory image store,
// and a coordinator.
type cluster struct {
	t       *testing.T
	bus     *events.Bus
	store   *store.Dir
	storeAt string
	hosts   map[string]*recorder
	execs   map[string]*executor.Executor
	order   *orderLog
	catalog *checkpointer.Catalog
	coord   *checkpointer.Coordinator
	cfgDir  string
}

type clusterOptions struct {
	hosts    int
	useXL    bool // the production xl driver exec'ing the fake xl
	maxPause time.Duration
	hook     string // the agents' snapshot hook
}

func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	srv := eventstest.Server(t)
	bus := eventstest.Bus(t, srv)
	storeAt := t.TempDir()
	st, err := store.NewDir(storeAt)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := bus.KV(context.Background(), bus.Names().Checkpoints())
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bus: bus, store: st, storeAt: storeAt, hosts: map[string]*recorder{}, execs: map[string]*executor.Executor{},
		order: &orderLog{}, catalog: checkpointer.NewCatalog(kv), cfgDir: t.TempDir()}
	log := eventstest.Logger(t, hclog.Warn)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := 1; i <= o.hosts; i++ {
		host := fmt.Sprintf("n%d", i)
		var hv xen.Hypervisor
		var progress func(string) (uint64, error)
		if o.useXL {
			xl := xentest.NewFakeHost(t, host, "FAKEXL_SUSPEND_TIMEOUT=2s").XL
			hv = xl
			progress = func(vm string) (uint64, error) { return xentest.Progress(xl, vm) }
		} else {
			sim := &xen.Sim{Host: host}
			hv = sim
			progress = sim.Progress
		}
		rec := &recorder{Hypervisor: hv, host: host, order: c.order, progress: progress, failSave: map[string]error{}, captured: map[string]uint64{}}
		cfg := executor.DefaultConfig()
		cfg.SpoolDir = t.TempDir()
		if o.maxPause > 0 {
			cfg.MaxPause = o.maxPause
		}
		cfg.SnapshotHook = o.hook
		ex, err := executor.New(rec, st, cfg, &events.EpochGuard{}, log.Named(host))
		if err != nil {
			t.Fatal(err)
		}
		agentBus := eventstest.Bus(t, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = agentBus.ServeCommands(ctx, host, ex.Handlers(), 8)
		}()
		c.hosts[host] = rec
		c.execs[host] = ex
	}
	// Wait until every agent answers (an abort of nothing is a no-op).
	for host := range c.hosts {
		eventstest.Eventually(t, 5*time.Second, func() bool {
			return bus.Command(context.Background(), host, checkpointer.VerbAbort, checkpointer.AbortRequest{Group: "x", VM: "x"}, nil, 200*time.Millisecond) == nil
		}, "agent %s not answering", host)
	}
	cfg := checkpointer.DefaultCoordinatorConfig()
	cfg.PauseTimeout = 20 * time.Second
	c.coord = checkpointer.NewCoordinator("test-sup", bus, bus, c.catalog, st, cfg, log)
	return c
}

// startVM boots a domain of memMiB on host from a generated xl config.
func (c *cluster) startVM(host, vm string, memMiB int) {
	c.t.Helper()
	if err := c.hosts[host].Create(context.Background(), xentest.WriteConfig(c.t, c.cfgDir, vm, memMiB)); err != nil {
		c.t.Fatalf("create %s on %s: %v", vm, host, err)
	}
}

// state returns the domain's state on host.
func (c *cluster) state(host, vm string) xen.State {
	c.t.Helper()
	doms, err := c.hosts[host].List(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, d := range doms {
		if d.Name == vm {
			return d.State
		}
	}
	return ""
}

var errInjected = errors.New("injected: xl save failed (No space left on device)")
