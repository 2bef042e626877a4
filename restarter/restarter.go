package restarter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

// Hypervisor is what the restarter needs of a xen driver. Domain names and
// paths reach it only from requests their Validate accepted (no leading
// '-', no '/', absolute clean config paths). The production driver, xen.XL,
// execs xl with them as separate arguments, never through a shell
// (xen/xl_exec.go), and refuses a leading '-' or a NUL once more itself.
type Hypervisor interface {
	List(ctx context.Context) ([]xen.Domain, error)
	Pause(ctx context.Context, dom string) error
	Unpause(ctx context.Context, dom string) error
	Restore(ctx context.Context, path string, opts xen.RestoreOptions) error
	Create(ctx context.Context, cfgPath string) error
	Destroy(ctx context.Context, dom string) error
}

var _ Hypervisor = (*xen.Sim)(nil)
var _ Hypervisor = (*xen.XL)(nil)

// Identity names this agent: its host and its incarnation (the beacon's, so
// that the lease, the heartbeats and vm.failed ids agree).
type Identity struct {
	Host        string
	Incarnation string
}

// Restarter is the per-host restarter. Its handlers run concurrently (one
// goroutine per command); commands on one VM are serialised. Run owns the
// lease renewal, the fence and the watcher. All mutable state is under mu.
type Restarter struct {
	// clock tells the time of every lease, fence and timing decision
	// (WithClock); tests drive it to check the self-fence to the
	// millisecond.
	clock clock.Clock
	id    Identity
	hv    Hypervisor
	store store.ImageStore
	cfg   Config
	guard *events.EpochGuard
	log   hclog.Logger
	spare map[string]bool
	ran   atomic.Bool
	// armed mirrors fence.everRenewed for readers that must not take mu
	// (FenceArmed, the beacon's question before every beat).
	armed atomic.Bool
	// watchRounds counts the watcher's completed comparisons (tests wait
	// on it instead of sleeping).
	watchRounds atomic.Uint64
	// watchdogRounds counts the watchdog loop's decisions (pet or not).
	watchdogRounds atomic.Uint64
	// watchList, when set (WatchThrough), lists for the watcher; the
	// commands always list through hv.
	watchList WatchLister

	mu sync.Mutex
	// vmLock serialises the commands of one VM (a 1-slot semaphore each);
	// current is the op holding it, newest the newest epoch received.
	vmLock  map[string]chan struct{}
	current map[string]*op
	newest  map[string]events.Epoch
	// ops are the ops in flight, which a self-fence cancels.
	ops map[*op]struct{}
	// gen counts op starts and ends. busy[vm] counts the ops on vm in flight
	// (commands and holds); replacing[vm] those that may remove or replace
	// its domain (destroy, restore, cold start), and replaced[vm] is gen at
	// the last start or end of one. The watcher does not report a change it
	// cannot prove was not ours, and judges a held domain once the hold ends.
	gen       uint64
	busy      map[string]int
	replacing map[string]int
	replaced  map[string]uint64
	// started are the domains this agent restored or created, by VM: a
	// retried command finds its own work done instead of a foreign copy.
	started map[string]startedDomain
	// fenced domains were paused by a fence (action pause): never unpaused.
	fencedPaused map[string]int
	fence        fenceState
	// reports are vm.failed events waiting to be published.
	reports []pendingReport
}

type startedDomain struct {
	cold     bool
	group    string
	seq      uint64
	imageKey string
	domID    int
}

// op is one command in flight.
type op struct {
	verb   string
	vm     string
	epoch  events.Epoch
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a restarter for host id. guard is the agent's one epoch
// guard, shared with the checkpointer: a command of an old leader's term is
// refused whichever of the two it reaches.
func New(id Identity, hv Hypervisor, st store.ImageStore, cfg Config, guard *events.EpochGuard, log hclog.Logger, opts ...Option) (*Restarter, error) {
	if id.Host == "" {
		return nil, errors.New("restarter: host name is empty")
	}
	if guard == nil {
		return nil, errors.New("restarter: nil epoch guard (share the checkpointer's)")
	}
	if err := cfg.Validate("restart"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("restarter spool: %w", err)
	}
	// Fetches a crash interrupted: their restores were never answered and
	// the supervisor retries them under a new epoch.
	if old, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "*"+spoolSuffix)); len(old) > 0 {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	r := &Restarter{
		clock: clock.Real(),
		id:    id, hv: hv, store: st, cfg: cfg, guard: guard,
		log:    log.Named("restarter").With("host", id.Host),
		spare:  map[string]bool{},
		vmLock: map[string]chan struct{}{}, current: map[string]*op{}, newest: map[string]events.Epoch{},
		ops: map[*op]struct{}{}, busy: map[string]int{}, replacing: map[string]int{}, replaced: map[string]uint64{},
		started: map[string]startedDomain{}, fencedPaused: map[string]int{},
	}
	for _, o := range opts {
		o(r)
	}
	for _, s := range cfg.Fence.Spare {
		r.spare[s] = true
	}
	return r, nil
}

// Handlers returns the restarter's command handlers, keyed by verb.
func (r *Restarter) Handlers() map[string]command.Handler {
	return map[string]command.Handler{
		VerbRestore:   command.Typed(r.Restore),
		VerbDestroy:   command.Typed(r.Destroy),
		VerbUnpause:   command.Typed(r.Unpause),
		VerbColdStart: command.Typed(r.ColdStart),
		VerbList:      command.Typed(r.List),
		VerbPeek:      command.Typed(r.Peek),
	}
}

// refuse answers a request its Validate refused: bad_request, which the
// supervisor does not retry. The message is the checks' own line alone:
// the request's fields are what is wrong, so no "vm.restore of <vm>" may
// repeat them unquoted, and the sender's *command.Error names verb and host.
func refuse(err error) error { return command.NewError(command.CodeBadRequest, err) }

// staleFor refuses a command overtaken by a newer one for the same VM.
func staleFor(verb, vm string, e, newer events.Epoch) error {
	return command.NewError(command.CodeStaleEpoch,
		fmt.Errorf("%s of %s: epoch %d.%d is older than %d.%d already received for it", verb, vm, e.Term, e.Seq, newer.Term, newer.Seq))
}

// admit checks a command's epoch: the shared guard refuses an old term, and
// per VM an epoch older than the newest received is refused. The request
// has passed its Validate: vm is a name and e a leader's.
func (r *Restarter) admit(verb, vm string, e events.Epoch) error {
	if err := r.guard.Admit(e); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.newest[vm]; e.Less(n) {
		return staleFor(verb, vm, e, n)
	}
	r.newest[vm] = e
	return nil
}

// begin takes vm's slot for a command admitted with epoch e and registers
// it. A destroy cancels an older command running on the VM rather than wait
// for it; other commands wait their turn. A command overtaken meanwhile by
// a newer one for the VM is refused; with gated, so is one on a self-fenced
// host. The returned context ends when end is called, when the fence
// cancels the op, or after timeout.
func (r *Restarter) begin(ctx context.Context, verb, vm string, e events.Epoch, gated bool, timeout time.Duration) (*op, context.Context, error) {
	r.mu.Lock()
	slot := r.vmLock[vm]
	if slot == nil {
		slot = make(chan struct{}, 1)
		r.vmLock[vm] = slot
	}
	if cur := r.current[vm]; verb == VerbDestroy && cur != nil && cur.epoch.Less(e) {
		r.log.Info("destroy cancels an older command", "vm", vm, "verb", cur.verb, "epoch", epochString(cur.epoch))
		cur.cancel()
	}
	r.mu.Unlock()
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, command.NewError(command.CodeRetryable, fmt.Errorf("%s of %s: waiting for an earlier command: %w", verb, vm, ctx.Err()))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.newest[vm]; e.Less(n) {
		<-slot
		return nil, nil, staleFor(verb, vm, e, n)
	}
	if gated {
		if err := r.notReady(verb + " of " + vm); err != nil {
			<-slot
			return nil, nil, err
		}
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	o := &op{verb: verb, vm: vm, epoch: e, cancel: cancel, done: make(chan struct{})}
	r.ops[o] = struct{}{}
	r.current[vm] = o
	r.gen++
	r.busy[vm]++
	if replaces(verb) {
		r.replacing[vm]++
		r.replaced[vm] = r.gen
	}
	return o, octx, nil
}

// replaces says whether a command may remove or replace its VM's domain
// (unpause leaves the same domain alive).
func replaces(verb string) bool {
	return verb == VerbDestroy || verb == VerbRestore || verb == VerbColdStart
}

// end releases what begin took.
func (r *Restarter) end(o *op) {
	o.cancel()
	r.mu.Lock()
	delete(r.ops, o)
	if r.current[o.vm] == o {
		delete(r.current, o.vm)
	}
	r.gen++
	r.busy[o.vm]--
	if r.busy[o.vm] == 0 {
		delete(r.busy, o.vm)
	}
	if replaces(o.verb) {
		r.replaced[o.vm] = r.gen
		if r.replacing[o.vm]--; r.replacing[o.vm] <= 0 {
			delete(r.replacing, o.vm)
		}
	}
	slot := r.vmLock[o.vm]
	r.mu.Unlock()
	close(o.done)
	<-slot
}

// domain finds vm among the host's domains.
func (r *Restarter) domain(ctx context.Context, vm string) (xen.Domain, bool, error) {
	doms, err := r.hv.List(ctx)
	if err != nil {
		return xen.Domain{}, false, err
	}
	for _, d := range doms {
		if d.Name == vm {
			return d, true, nil
		}
	}
	return xen.Domain{}, false, nil
}

// classify maps a hypervisor error to a command error code; err already
// names the verb, VM and host.
func classify(err error) error {
	var ce *command.Error
	if errors.As(err, &ce) {
		return err
	}
	code := command.CodeRetryable
	switch {
	case errors.Is(err, xen.ErrDomainNotFound):
		code = command.CodeNotFound
	case errors.Is(err, xen.ErrBadImage):
		// The bytes matched the catalog's checksum, so the checkpoint
		// itself is unusable: the supervisor falls back to an older one.
		code = command.CodeCorrupt
	case errors.Is(err, xen.ErrDomainExists), errors.Is(err, xen.ErrNoMemory), errors.Is(err, xen.ErrDomainNotAlive):
		code = command.CodePermanent
	case errors.Is(err, xen.ErrBadArgument):
		code = command.CodeBadRequest
	}
	return command.NewError(code, err)
}

func epochString(e events.Epoch) string { return fmt.Sprintf("%d.%d", e.Term, e.Seq) }

func ms(d time.Duration) int64 { return d.Milliseconds() }
