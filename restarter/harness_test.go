package restarter_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/xentest"
)

func TestMain(m *testing.M) { os.Exit(xentest.RunWithFakeXL(m)) }

// connect connects a client to srv and creates nothing.
func connect(t testing.TB, srv *eventstest.Restartable, name string) *events.Bus {
	t.Helper()
	cfg := events.DefaultBusConfig()
	cfg.URLs = []string{srv.URL()}
	cfg.ClientName = name
	cfg.RequestTimeout = 2 * time.Second
	b, err := events.Connect(cfg, eventstest.Logger(t, hclog.Error))
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(b.Close)
	return b
}

// bus connects a client (a supervisor, an agent: each its own connection)
// and makes sure the stream and buckets exist.
func bus(t testing.TB, srv *eventstest.Restartable, name string) *events.Bus {
	t.Helper()
	b := connect(t, srv, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.EnsureResources(ctx); err != nil {
		t.Fatalf("ensure resources: %v", err)
	}
	return b
}

// env is a bus, the supervisor's connection to it, a directory image
// store and a directory of xl configs.
type env struct {
	t        *testing.T
	srv      *eventstest.Restartable
	sup      *events.Bus
	store    *store.Dir
	storeDir string
	cfgDir   string
	epoch    uint64 // sequence of the epochs the test's "supervisor" issues
	term     uint64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := eventstest.NewRestartable(t)
	dir := t.TempDir()
	st, err := store.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, sup: bus(t, srv, "supervisor"), store: st, storeDir: dir, cfgDir: t.TempDir(), term: 1}
}

// next is a fresh epoch of the current term.
func (e *env) next() events.Epoch {
	e.epoch++
	return events.Epoch{Term: e.term, Seq: e.epoch}
}

// writeCfg writes an xl config for vm of memMiB.
func (e *env) writeCfg(vm string, memMiB int) string {
	e.t.Helper()
	return xentest.WriteConfig(e.t, e.cfgDir, vm, memMiB)
}

// driver is one simulated host's hypervisor, either the sim itself or the
// production xl driver running the fake xl over its own state.
type driver struct {
	name string
	new  func(t *testing.T, host string) (restarter.Hypervisor, func(vm string) (uint64, error))
}

var (
	simDriver = driver{"sim", func(t *testing.T, host string) (restarter.Hypervisor, func(string) (uint64, error)) {
		s := &xen.Sim{Host: host}
		return s, s.Progress
	}}
	xlDriver = driver{"xl", func(t *testing.T, host string) (restarter.Hypervisor, func(string) (uint64, error)) {
		x := xentest.NewFakeHost(t, host).XL
		return x, func(vm string) (uint64, error) { return xentest.Progress(x, vm) }
	}}
	drivers = []driver{simDriver, xlDriver}
)

// agent is one host's restarter (and, when asked, checkpointer) serving
// commands over its own bus connection.
type agent struct {
	t        *testing.T
	host     string
	hv       *recorder
	progress func(vm string) (uint64, error)
	r        *restarter.Restarter
	cfg      restarter.Config
	guard    *events.EpochGuard
	bus      *events.Bus
	stop     func()
}

type agentOptions struct {
	driver       driver
	fence        restarter.FenceConfig // zero: a fence that will not fire in a test
	checkpointer bool                  // serve the checkpoint verbs too, sharing the guard
	noRun        bool                  // handlers only: no lease, fence or watcher (armed as if renewed)
	unarmed      bool                  // create no bucket, nor wait for the first renewal to arm the fence
	logs         *eventstest.LogBuffer // also receives the agent's log lines
	shared       *sharedListing        // the watcher lists through it, as in the agent
	clock        clockwork.Clock       // nil: the machine's
}

// testConfig has short intervals; its fence waits a minute unless a test
// sets one.
func testConfig(t *testing.T, o agentOptions) restarter.Config {
	cfg := restarter.DefaultConfig()
	cfg.SpoolDir = t.TempDir()
	cfg.RestoreTimeout = 30 * time.Second
	cfg.ToolstackTimeout = 20 * time.Second
	cfg.WatchInterval = 50 * time.Millisecond
	cfg.Fence = restarter.FenceConfig{RenewInterval: 100 * time.Millisecond, SelfTimeout: time.Minute, ActionTimeout: 10 * time.Second, Action: restarter.FenceDestroy}
	if o.fence.SelfTimeout != 0 {
		cfg.Fence = o.fence
	}
	return cfg
}

func (e *env) agent(host string, o agentOptions) *agent {
	e.t.Helper()
	t := e.t
	if o.driver.new == nil {
		o.driver = simDriver
	}
	hv, progress := o.driver.new(t, host)
	rec := &recorder{Hypervisor: hv, destroyed: map[string]time.Time{}}
	cfg := testConfig(t, o)
	guard := &events.EpochGuard{}
	log := eventstest.Logger(t, hclog.Warn).Named(host)
	if o.logs != nil {
		log = o.logs.Logger(t, hclog.Warn).Named(host)
	}
	var opts []restarter.Option
	if o.clock != nil {
		opts = append(opts, restarter.WithClock(o.clock))
	}
	r, err := restarter.New(restarter.Identity{Host: host, Incarnation: "inc-" + host}, rec, e.store, cfg, guard, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if o.shared != nil {
		o.shared.start(t, rec)
		r.WatchThrough(o.shared.lister)
	}
	handlers := r.Handlers()
	if o.checkpointer {
		ccfg := executor.DefaultConfig()
		ccfg.SpoolDir = t.TempDir()
		ex, err := executor.New(rec, e.store, ccfg, guard, log)
		if err != nil {
			t.Fatal(err)
		}
		for verb, h := range ex.Handlers() {
			handlers[verb] = h
		}
	}
	var b *events.Bus
	if o.unarmed {
		b = connect(t, e.srv, "agent-"+host) // the test decides when the buckets exist
	} else {
		b = bus(t, e.srv, "agent-"+host)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.ServeCommands(ctx, host, handlers, 16) }()
	if o.noRun {
		r.ArmWithoutLease()
	} else {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx, b) }()
	}
	var once sync.Once
	a := &agent{t: t, host: host, hv: rec, progress: progress, r: r, cfg: cfg, guard: guard, bus: b,
		stop: func() { once.Do(func() { cancel(); wg.Wait() }) }}
	t.Cleanup(func() {
		a.stop()
		eventstest.NoGoroutines(t, 5*time.Second, "restarter.(*Restarter)")
	})
	// Generous: at a load average of 20 (make e2e beside a CPU hog and
	// other tests) 5 s was not enough for a race-built agent to subscribe.
	eventstest.Eventually(t, 20*time.Second, func() bool {
		return e.sup.Command(context.Background(), host, restarter.VerbList, restarter.ListRequest{}, nil, time.Second) == nil
	}, "agent %s not answering", host)
	if !o.noRun && !o.unarmed {
		// Restores, cold starts and unpauses wait for the fence to arm.
		eventstest.Eventually(t, 10*time.Second, r.FenceArmed, "the self-fence of %s never armed", host)
	}
	return a
}

// waitWatchRounds waits until a's watcher has compared n more listings.
func (a *agent) waitWatchRounds(n uint64) {
	a.t.Helper()
	target := a.r.WatchRounds() + n
	eventstest.Eventually(a.t, 10*time.Second, func() bool { return a.r.WatchRounds() >= target }, "watcher of %s stalled", a.host)
}

// send sends verb to host and returns the reply or the command error.
func send[Rep any](e *env, host, verb string, req any) (Rep, error) {
	var rep Rep
	err := e.sup.Command(context.Background(), host, verb, req, &rep, 30*time.Second)
	return rep, err
}

// codeOf is the command error code of err, or "" for success or another
// kind of error.
func codeOf(err error) string {
	var ce *command.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}

// domains lists a's domains by name.
func (a *agent) domains() map[string]xen.Domain {
	a.t.Helper()
	doms, err := a.hv.List(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	out := map[string]xen.Domain{}
	for _, d := range doms {
		out[d.Name] = d
	}
	return out
}

// spoolFiles is what a's restore spool holds.
func (a *agent) spoolFiles() []string {
	a.t.Helper()
	ents, err := os.ReadDir(a.cfg.SpoolDir)
	if err != nil {
		a.t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// checkpoint is one member's committed image, as the catalog records it.
type checkpoint struct {
	vm, group string
	seq       uint64
	info      store.Info
	progress  uint64 // the workload counter in the image
}

func (c checkpoint) request(e events.Epoch) restarter.RestoreRequest {
	return restarter.RestoreRequest{VM: c.vm, Group: c.group, Seq: c.seq, ImageKey: c.info.Key, Size: c.info.Size, SHA256: c.info.SHA256, Epoch: e}
}

// makeCheckpoint boots vm on a source host of driver d, lets it run until
// its counter passes minProgress, saves it with `save -p` (its counter
// stops at the image's value), stores the image and destroys the source:
// the host that ran it is gone.
func (e *env) makeCheckpoint(d driver, vm, group string, seq uint64, minProgress uint64) checkpoint {
	e.t.Helper()
	ctx := context.Background()
	hv, progress := d.new(e.t, "src")
	src := hv.(xen.Hypervisor)
	if err := src.Create(ctx, e.writeCfg(vm, 64)); err != nil {
		e.t.Fatal(err)
	}
	eventstest.Eventually(e.t, 10*time.Second, func() bool {
		p, err := progress(vm)
		return err == nil && p >= minProgress
	}, "%s does not progress", vm)
	img := filepath.Join(e.t.TempDir(), vm+".img")
	if err := src.Save(ctx, vm, img, xen.SaveOptions{Mode: xen.SaveLeavePaused}); err != nil {
		e.t.Fatal(err)
	}
	saved, err := progress(vm)
	if err != nil {
		e.t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	info, err := e.store.Put(ctx, store.ImageKey(group, seq, vm), f)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := src.Destroy(ctx, vm); err != nil {
		e.t.Fatal(err)
	}
	return checkpoint{vm: vm, group: group, seq: seq, info: info, progress: saved}
}

// vmFailed returns the vm.failed events about vm in the stream.
func (e *env) vmFailed(vm string) []events.VMFailed {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := e.sup
	subj := b.Subjects().Event(events.TypeVMFailed, vm)
	st, err := b.JetStream().Stream(ctx, b.Names().Stream())
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		e.t.Fatal(err)
	}
	want := int(info.State.Subjects[subj])
	if want == 0 {
		return nil
	}
	cons, err := b.JetStream().OrderedConsumer(ctx, b.Names().Stream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []events.VMFailed
	for len(out) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			e.t.Fatalf("read vm.failed of %s: %v", vm, err)
		}
		ev, err := events.Decode(msg.Data())
		if err != nil {
			e.t.Fatalf("stream holds an invalid event: %v", err)
		}
		p, err := events.DataAs[events.VMFailed](ev)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// recorder wraps a host's hypervisor: it remembers when each domain was
// destroyed and can hold restores until their context ends.
type recorder struct {
	restarter.Hypervisor
	mu           sync.Mutex
	unnamed      map[int]bool // domain ids listed without a name, as real xl lists one being built or torn down
	destroyed    map[string]time.Time
	holdRestores bool
	entered      chan struct{} // receives when a held restore starts
	restoreCtx   chan error    // receives each held restore's context error
	breakDestroy string        // "hang": until the context ends; "fail": at once
	brokenCalls  int           // destroys refused by breakDestroy
}

// plantUnnamed makes List show a domain without a name (xl's "(null)").
func (r *recorder) plantUnnamed(id int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unnamed == nil {
		r.unnamed = map[int]bool{}
	}
	r.unnamed[id] = true
}

func (r *recorder) removeUnnamed(id int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.unnamed, id)
}

func (r *recorder) List(ctx context.Context) ([]xen.Domain, error) {
	doms, err := r.Hypervisor.List(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.unnamed {
		doms = append(doms, xen.Domain{ID: id, State: xen.StatePaused, Flags: "--p---"})
	}
	return doms, nil
}

func (r *recorder) Destroy(ctx context.Context, dom string) error {
	r.mu.Lock()
	if id, err := strconv.Atoi(dom); err == nil && r.unnamed[id] {
		delete(r.unnamed, id)
		r.destroyed[dom] = time.Now()
		r.mu.Unlock()
		return nil
	}
	broken := r.breakDestroy
	if broken != "" {
		r.brokenCalls++
	}
	r.mu.Unlock()
	switch broken {
	case "hang":
		<-ctx.Done()
		return fmt.Errorf("xl destroy %s: hung: %w", dom, ctx.Err())
	case "fail":
		return fmt.Errorf("xl destroy %s: libxl: error: the toolstack is broken", dom)
	}
	err := r.Hypervisor.Destroy(ctx, dom)
	if err == nil {
		r.mu.Lock()
		r.destroyed[dom] = time.Now()
		r.mu.Unlock()
	}
	return err
}

func (r *recorder) destroyedAt(dom string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.destroyed[dom]
	return at, ok
}

func (r *recorder) Restore(ctx context.Context, path string, opts xen.RestoreOptions) error {
	r.mu.Lock()
	hold, entered, ch := r.holdRestores, r.entered, r.restoreCtx
	r.mu.Unlock()
	if hold {
		entered <- struct{}{}
		<-ctx.Done()
		ch <- ctx.Err()
		return fmt.Errorf("held restore of %s: %w", path, ctx.Err())
	}
	return r.Hypervisor.Restore(ctx, path, opts)
}

// Save is for the checkpointer sharing this hypervisor.
func (r *recorder) Save(ctx context.Context, dom, path string, opts xen.SaveOptions) error {
	return r.Hypervisor.(xen.Hypervisor).Save(ctx, dom, path, opts)
}
