package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

// Hypervisor is what the per-host checkpointer needs of a xen driver.
type Hypervisor interface {
	Pause(ctx context.Context, dom string) error
	Unpause(ctx context.Context, dom string) error
	Save(ctx context.Context, dom, path string, opts xen.SaveOptions) error
}

// Config is the checkpointer part of the agent's configuration.
type Config struct {
	// SpoolDir is where the toolstack writes an image before it is streamed
	// into the store (xl writes through a temporary file, not a pipe).
	SpoolDir string `mapstructure:"spool_dir"`
	// MaxPause unpauses a member on the agent's own authority if the
	// coordinator neither saved nor resumed it in time: no VM stays frozen
	// because a coordinator vanished.
	MaxPause time.Duration `mapstructure:"max_pause"`
	// SaveTimeout bounds one upload of an image into the store.
	SaveTimeout time.Duration `mapstructure:"save_timeout"`
	// SnapshotHook, if set, runs after a member is paused, with XENFT_DOMAIN,
	// XENFT_GROUP, XENFT_CHECKPOINT_SEQ and XENFT_CHECKPOINT_ID in its
	// environment; the first line it prints is recorded as the disk snapshot
	// reference. A failure aborts the checkpoint.
	SnapshotHook string `mapstructure:"snapshot_hook"`
	// HookTimeout bounds the snapshot hook.
	HookTimeout time.Duration `mapstructure:"hook_timeout"`
}

// DefaultConfig: a minute of pause is far beyond a healthy group's
// checkpoint (seconds) yet short enough that a lost coordinator costs little.
func DefaultConfig() Config {
	return Config{
		SpoolDir:    "/var/lib/xenft/spool",
		MaxPause:    time.Minute,
		SaveTimeout: 10 * time.Minute,
		HookTimeout: 30 * time.Second,
	}
}

// Validate names the offending key under section.
func (c Config) Validate(section string) error {
	var errs []error
	if c.SpoolDir == "" {
		errs = append(errs, fmt.Errorf("%s.spool_dir: required", section))
	}
	if c.MaxPause < time.Second {
		errs = append(errs, fmt.Errorf("%s.max_pause: must be at least 1s, got %s", section, c.MaxPause))
	}
	if c.SaveTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.save_timeout: must be positive, got %s", section, c.SaveTimeout))
	}
	if c.SnapshotHook != "" && c.HookTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.hook_timeout: must be positive when snapshot_hook is set", section))
	}
	return errors.Join(errs...)
}

// Executor is the per-host checkpointer: it answers the checkpoint verbs for
// the domains of one host. It keeps, per domain, the capture it holds (which
// checkpoint, the spooled image, whether the domain is still paused by it,
// and a max-pause timer); that state is owned by mu.
type Executor struct {
	clock clock.Clock
	hv    Hypervisor
	store store.ImageStore
	cfg   Config
	log   hclog.Logger
	epoch *events.EpochGuard

	mu       sync.Mutex
	captures map[string]*capture // by domain
	// aborted remembers aborts of checkpoints this host had not seen yet:
	// an abort can overtake its capture (each command runs in its own
	// goroutine), and that capture must then be refused, not left paused.
	aborted map[abortKey]time.Time
}

type abortKey struct {
	vm, group string
	seq       uint64
}

// abortMemory is how long an early abort is remembered; far longer than a
// request can be in flight, and the map is pruned on every abort.
const abortMemory = 10 * time.Minute

type capture struct {
	group string
	seq   uint64
	spool string
	// pausedAt is when the save began: the guest stops at the suspend.
	pausedAt time.Time
	paused   bool
	timer    clock.Timer
	// expired is set when max_pause unpaused the domain before the
	// coordinator resumed it: the cut may be broken, the checkpoint must
	// abort, and every later verb for it fails.
	expired   bool
	uploading bool
	// done is closed when the save and hook of Capture have finished;
	// aborted asks Capture to undo them when they do.
	done    chan struct{}
	aborted bool
}

func (c *capture) is(group string, seq uint64) bool { return c.group == group && c.seq == seq }

// New returns an executor; guard is shared with the host's restarter.
func New(hv Hypervisor, st store.ImageStore, cfg Config, guard *events.EpochGuard, log hclog.Logger, opts ...Option) (*Executor, error) {
	if err := os.MkdirAll(cfg.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("checkpointer spool: %w", err)
	}
	// Images left in the spool by a crash belong to checkpoints the
	// coordinator has aborted since (their upload can no longer happen).
	if old, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "*.img")); len(old) > 0 {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	x := &Executor{clock: clock.Real(), hv: hv, store: st, cfg: cfg, epoch: guard, log: log.Named("checkpointer"), captures: map[string]*capture{}, aborted: map[abortKey]time.Time{}}
	for _, o := range opts {
		o(x)
	}
	return x, nil
}

// Handlers returns the executor's command handlers, keyed by verb.
func (x *Executor) Handlers() map[string]command.Handler {
	return map[string]command.Handler{
		checkpointer.VerbCapture: command.Typed(x.Capture),
		checkpointer.VerbResume:  command.Typed(x.Resume),
		checkpointer.VerbUpload:  command.Typed(x.Upload),
		checkpointer.VerbAbort:   command.Typed(x.Abort),
	}
}

// Capture saves the member into the spool, leaving it paused, runs the disk
// snapshot hook, and arms the max-pause timer (or resumes at once when asked
// to resume early).
func (x *Executor) Capture(ctx context.Context, r checkpointer.CaptureRequest) (checkpointer.CaptureReply, error) {
	if err := r.Validate(); err != nil {
		return checkpointer.CaptureReply{}, command.NewError(command.CodeBadRequest, err)
	}
	spool, err := x.spoolPath(r)
	if err != nil {
		return checkpointer.CaptureReply{}, err
	}
	if err := x.epoch.Admit(r.Epoch); err != nil {
		return checkpointer.CaptureReply{}, err
	}
	c := &capture{group: r.Group, seq: r.Seq, spool: spool, done: make(chan struct{})}
	defer close(c.done)
	x.mu.Lock()
	if _, gone := x.aborted[abortKey{r.VM, r.Group, r.Seq}]; gone {
		x.mu.Unlock()
		return checkpointer.CaptureReply{}, command.NewError(command.CodePermanent, fmt.Errorf("%s: checkpoint %s/%d was aborted", r.VM, r.Group, r.Seq))
	}
	if old, ok := x.captures[r.VM]; ok {
		if old.paused || old.uploading {
			x.mu.Unlock()
			return checkpointer.CaptureReply{}, command.NewError(command.CodeRetryable,
				fmt.Errorf("%s is held by checkpoint %s/%d", r.VM, old.group, old.seq))
		}
		_ = os.Remove(old.spool) // an older capture never uploaded: superseded
	}
	x.captures[r.VM] = c
	x.mu.Unlock()

	start := x.clock.Now()
	if err := x.hv.Save(ctx, r.VM, c.spool, xen.SaveOptions{Mode: xen.SaveLeavePaused}); err != nil {
		x.drop(r.VM, c)
		return checkpointer.CaptureReply{}, classify(err)
	}
	maxPause := x.cfg.MaxPause
	if r.MaxPauseMs > 0 {
		maxPause = time.Duration(r.MaxPauseMs) * time.Millisecond
	}
	x.mu.Lock()
	c.pausedAt, c.paused = start, true
	c.timer = x.clock.AfterFunc(maxPause, func() { x.expire(r.VM, c, maxPause) })
	aborted := c.aborted
	x.mu.Unlock()
	if aborted { // the coordinator gave up while we saved
		x.abort(context.WithoutCancel(ctx), r.VM, c)
		return checkpointer.CaptureReply{}, command.NewError(command.CodePermanent, fmt.Errorf("%s: checkpoint %s/%d aborted during capture", r.VM, r.Group, r.Seq))
	}
	rep := checkpointer.CaptureReply{CaptureMs: x.clock.Since(start).Milliseconds()}

	snap, err := x.runHook(ctx, r)
	x.mu.Lock()
	if err == nil && c.aborted {
		err = errors.New("checkpoint aborted during the snapshot hook")
	}
	x.mu.Unlock()
	if err != nil {
		x.abort(context.WithoutCancel(ctx), r.VM, c)
		return checkpointer.CaptureReply{}, command.NewError(command.CodePermanent, fmt.Errorf("snapshot hook for %s: %w", r.VM, err))
	}
	rep.DiskSnapshot = snap
	if r.ResumeEarly {
		d, err := x.resume(ctx, r.VM, c)
		if err != nil {
			return checkpointer.CaptureReply{}, err
		}
		rep.PausedMs = d.Milliseconds()
	}
	x.log.Debug("captured", "vm", r.VM, "group", r.Group, "seq", r.Seq, "ms", rep.CaptureMs)
	return rep, nil
}

// spoolPath is where a capture's image is saved: <spool>/<vm>-<group>-<seq>.img.
// Validate refused any name that could make it leave the spool; it is
// checked again where the path is made, because xl save writes as root
// wherever it is told.
func (x *Executor) spoolPath(r checkpointer.CaptureRequest) (string, error) {
	name := fmt.Sprintf("%s-%s-%d.img", r.VM, r.Group, r.Seq)
	if strings.ContainsRune(name, filepath.Separator) || !filepath.IsLocal(name) {
		return "", command.NewError(command.CodeBadRequest, fmt.Errorf("spool name %q is not a file name", name))
	}
	return filepath.Join(x.cfg.SpoolDir, name), nil
}

// expire unpauses a member the coordinator did not resume in time.
func (x *Executor) expire(vm string, c *capture, after time.Duration) {
	x.mu.Lock()
	if x.captures[vm] != c || !c.paused {
		x.mu.Unlock()
		return
	}
	c.expired, c.paused = true, false
	x.mu.Unlock()
	x.log.Warn("max pause reached, unpausing on our own", "vm", vm, "group", c.group, "seq", c.seq, "after", after)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := x.hv.Unpause(ctx, vm); err != nil {
		x.log.Error("unpause after max pause failed", "vm", vm, "error", err)
	}
}

// held returns the capture of vm for checkpoint group/seq, or an error.
func (x *Executor) held(vm, group string, seq uint64) (*capture, error) {
	c, ok := x.captures[vm]
	if !ok || !c.is(group, seq) {
		return nil, command.NewError(command.CodePermanent, fmt.Errorf("%s holds no capture of checkpoint %s/%d", vm, group, seq))
	}
	if c.expired {
		return nil, command.NewError(command.CodePermanent, fmt.Errorf("%s: max pause expired during checkpoint %s/%d", vm, group, seq))
	}
	return c, nil
}

// Resume unpauses a captured member.
func (x *Executor) Resume(ctx context.Context, r checkpointer.ResumeRequest) (checkpointer.ResumeReply, error) {
	if err := r.Validate(); err != nil {
		return checkpointer.ResumeReply{}, command.NewError(command.CodeBadRequest, err)
	}
	if err := x.epoch.Admit(r.Epoch); err != nil {
		return checkpointer.ResumeReply{}, err
	}
	x.mu.Lock()
	c, err := x.held(r.VM, r.Group, r.Seq)
	x.mu.Unlock()
	if err != nil {
		return checkpointer.ResumeReply{}, err
	}
	d, err := x.resume(ctx, r.VM, c)
	return checkpointer.ResumeReply{PausedMs: d.Milliseconds()}, err
}

func (x *Executor) resume(ctx context.Context, vm string, c *capture) (time.Duration, error) {
	x.mu.Lock()
	if !c.paused {
		x.mu.Unlock()
		return 0, nil
	}
	x.mu.Unlock()
	if err := x.hv.Unpause(ctx, vm); err != nil {
		return 0, classify(err)
	}
	x.mu.Lock()
	c.paused = false
	if c.timer != nil {
		c.timer.Stop()
	}
	x.mu.Unlock()
	return x.clock.Since(c.pausedAt), nil
}

// Upload streams the spooled image into the store and drops it from the
// spool. It may run while the member runs again.
func (x *Executor) Upload(ctx context.Context, r checkpointer.UploadRequest) (checkpointer.UploadReply, error) {
	if err := r.Validate(); err != nil {
		return checkpointer.UploadReply{}, command.NewError(command.CodeBadRequest, err)
	}
	if err := x.epoch.Admit(r.Epoch); err != nil {
		return checkpointer.UploadReply{}, err
	}
	x.mu.Lock()
	c, err := x.held(r.VM, r.Group, r.Seq)
	if err == nil {
		c.uploading = true
	}
	x.mu.Unlock()
	if err != nil {
		return checkpointer.UploadReply{}, err
	}
	defer func() {
		x.mu.Lock()
		c.uploading = false
		x.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, x.cfg.SaveTimeout)
	defer cancel()
	start := x.clock.Now()
	f, err := os.Open(c.spool)
	if err != nil {
		return checkpointer.UploadReply{}, command.NewError(command.CodePermanent, fmt.Errorf("spooled image of %s: %w", r.VM, err))
	}
	info, err := x.store.Put(ctx, r.ImageKey, f)
	f.Close()
	if err != nil {
		return checkpointer.UploadReply{}, command.NewError(command.CodeRetryable, fmt.Errorf("store %s: %w", r.ImageKey, err))
	}
	x.drop(r.VM, c)
	return checkpointer.UploadReply{Size: info.Size, SHA256: info.SHA256, UploadMs: x.clock.Since(start).Milliseconds()}, nil
}

// Abort unpauses the member if this checkpoint still holds it paused and
// drops its spooled image. Aborting what was never captured succeeds: the
// coordinator aborts every member without knowing how far each got. A
// capture still saving is told to undo itself, and Abort waits for it, so
// when Abort returns the member is not paused by this checkpoint.
func (x *Executor) Abort(ctx context.Context, r checkpointer.AbortRequest) (checkpointer.ResumeReply, error) {
	if err := r.ValidateAbort(); err != nil {
		return checkpointer.ResumeReply{}, command.NewError(command.CodeBadRequest, err)
	}
	x.mu.Lock()
	now := x.clock.Now()
	for k, at := range x.aborted {
		if now.Sub(at) > abortMemory {
			delete(x.aborted, k)
		}
	}
	x.aborted[abortKey{r.VM, r.Group, r.Seq}] = now
	c, ok := x.captures[r.VM]
	if ok && c.is(r.Group, r.Seq) {
		c.aborted = true
	}
	x.mu.Unlock()
	if !ok || !c.is(r.Group, r.Seq) {
		return checkpointer.ResumeReply{}, nil
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return checkpointer.ResumeReply{}, command.NewError(command.CodeRetryable, fmt.Errorf("%s: capture still running: %w", r.VM, ctx.Err()))
	}
	x.abort(ctx, r.VM, c)
	return checkpointer.ResumeReply{}, nil
}

func (x *Executor) abort(ctx context.Context, vm string, c *capture) {
	x.mu.Lock()
	paused := c.paused
	c.paused = false
	x.mu.Unlock()
	if paused {
		if err := x.hv.Unpause(ctx, vm); err != nil && !errors.Is(err, xen.ErrDomainNotFound) {
			x.log.Error("cannot unpause", "vm", vm, "error", err)
		}
	}
	x.drop(vm, c)
}

// drop forgets c and removes its spooled image.
func (x *Executor) drop(vm string, c *capture) {
	x.mu.Lock()
	if x.captures[vm] == c {
		delete(x.captures, vm)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	x.mu.Unlock()
	_ = os.Remove(c.spool)
}

// Close unpauses every member still paused by a checkpoint and drops the
// spool, so stopping an agent never leaves domains frozen.
func (x *Executor) Close(ctx context.Context) {
	x.mu.Lock()
	held := x.captures
	x.captures = map[string]*capture{}
	x.mu.Unlock()
	for vm, c := range held {
		x.abort(ctx, vm, c)
	}
}

// classify maps hypervisor errors to command error codes.
func classify(err error) error {
	switch {
	case errors.Is(err, xen.ErrDomainNotFound):
		return command.NewError(command.CodeNotFound, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, xen.ErrTimeout):
		return command.NewError(command.CodeRetryable, err)
	}
	return command.NewError(command.CodeRetryable, err)
}

func checkpointID(group string, seq uint64) string { return group + "/" + strconv.FormatUint(seq, 10) }
