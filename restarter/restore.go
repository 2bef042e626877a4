package restarter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

// Restore fetches a checkpoint image into the spool, verifying it, and
// restores it, paused unless asked otherwise. A domain of the same name
// already here is refused (never two copies: the supervisor destroys first),
// except the one this agent restored from the same checkpoint, which makes a
// retry succeed without a second copy.
//
// After the request is validated and admitted, the restore runs as named
// stages (restoreStages); the first that fails ends it, and failed turns its
// error into the command error the supervisor sees, in one place.
func (r *Restarter) Restore(ctx context.Context, req RestoreRequest) (RestoreReply, error) {
	if err := req.Validate(); err != nil {
		return RestoreReply{}, refuse(err)
	}
	x := &restoreRun{r: r, req: req, start: r.clock.Now(),
		where: fmt.Sprintf("vm.restore of %s from checkpoint %s/%d on %s", req.VM, req.Group, req.Seq, r.id.Host)}
	if err := r.admit(VerbRestore, req.VM, req.Epoch); err != nil {
		return RestoreReply{}, err
	}
	o, octx, err := r.begin(ctx, VerbRestore, req.VM, req.Epoch, true, r.cfg.RestoreTimeout)
	if err != nil {
		return RestoreReply{}, err
	}
	defer r.end(o)
	defer x.cleanup()
	for _, st := range x.stages() {
		if err := st.run(octx); err != nil {
			if st.undo != nil {
				st.undo(ctx, err)
			}
			return RestoreReply{}, r.failed(ctx, x.where+": "+st.name, err)
		}
		if x.done {
			break
		}
	}
	return x.reply, nil
}

// restoreRun is one restore going through its stages.
type restoreRun struct {
	r     *Restarter
	req   RestoreRequest
	where string
	start time.Time

	spool             string        // the image's file in the spool, once created
	fetched, restored time.Duration // the fetch's and xl restore's durations
	domID             int
	reply             RestoreReply
	done              bool // the reply is final: later stages are skipped
}

// restoreStage is one step of a restore. run's error may be a command error
// with its code, or any error, which classify codes; undo, when set, runs
// after run failed with err (with the command's context, even if
// cancelled).
type restoreStage struct {
	name string
	run  func(context.Context) error
	undo func(ctx context.Context, err error)
}

func (x *restoreRun) stages() []restoreStage {
	return []restoreStage{
		{name: "config", run: x.checkConfig},
		{name: "existing domain", run: x.checkExisting},
		{name: "fetch", run: x.fetch},
		{name: "xl restore", run: x.restore, undo: x.undoRestore},
		{name: "confirm", run: x.confirm},
	}
}

// checkConfig refuses a configuration that names another domain.
func (x *restoreRun) checkConfig(context.Context) error {
	if x.req.ConfigPath == "" {
		return nil
	}
	return checkConfigName(x.req.ConfigPath, x.req.VM)
}

// checkExisting refuses a domain of the name already here, unless it is the
// one this agent restored from the same checkpoint (a retry: done).
func (x *restoreRun) checkExisting(ctx context.Context) error {
	d, found, err := x.r.domain(ctx, x.req.VM)
	if err != nil {
		return fmt.Errorf("list domains: %w", err)
	}
	if !found {
		return nil
	}
	x.r.mu.Lock()
	s, ok := x.r.started[x.req.VM]
	x.r.mu.Unlock()
	if ok && !s.cold && s.group == x.req.Group && s.seq == x.req.Seq && s.imageKey == x.req.ImageKey && s.domID == d.ID && d.State.Alive() {
		x.reply = RestoreReply{VM: x.req.VM, DomID: d.ID, State: string(d.State), AlreadyRestored: true, TotalMs: ms(x.r.clock.Since(x.start))}
		x.done = true
		return nil
	}
	return command.NewError(command.CodePermanent, fmt.Errorf(
		"a domain named %s already exists here (domid %d, %s): destroy it first, never two copies", x.req.VM, d.ID, d.State))
}

// fetch copies the image into the spool, verifying size and checksum. An
// image read as corrupt is read again, up to store.CorruptReads times in
// all: a replicated store may have served one damaged replica's copy.
func (x *restoreRun) fetch(ctx context.Context) error {
	began := x.r.clock.Now()
	for attempt := 1; ; attempt++ {
		f, err := os.CreateTemp(x.r.cfg.SpoolDir, x.req.VM+"-*"+spoolSuffix)
		if err != nil {
			return command.NewError(command.CodeRetryable, fmt.Errorf("spool: %w", err))
		}
		x.spool = f.Name()
		err = x.r.fetch(ctx, x.req, f)
		var ce *command.Error
		if err == nil {
			break
		}
		if !errors.As(err, &ce) || ce.Code != command.CodeCorrupt || attempt == store.CorruptReads {
			return err
		}
		x.r.log.Warn("image read corrupt; reading it again, another replica may hold it intact",
			"vm", x.req.VM, "image", x.req.ImageKey, "attempt", attempt, "error", err)
		_ = os.Remove(x.spool)
	}
	x.fetched = x.r.clock.Since(began)
	return nil
}

// restore runs xl restore on the spooled image.
func (x *restoreRun) restore(ctx context.Context) error {
	began := x.r.clock.Now()
	if err := x.r.hv.Restore(ctx, x.spool, xen.RestoreOptions{ConfigPath: x.req.ConfigPath, Paused: x.req.WantPaused()}); err != nil {
		return err
	}
	x.restored = x.r.clock.Since(began)
	return nil
}

// undoRestore removes what a failed or cancelled xl restore may have left
// half built: the name was free, so it is ours to remove. If xl found a
// domain of the name (created meanwhile by someone else), it is not ours.
func (x *restoreRun) undoRestore(ctx context.Context, err error) {
	if !isExists(err) {
		x.r.removeLeftover(ctx, x.req.VM, x.where)
	}
}

// confirm finds the restored domain and records it as this agent's, unless
// the host self-fenced while xl restored: then it is removed again (the
// fence's sweep would), and the restore fails as fenced.
func (x *restoreRun) confirm(ctx context.Context) error {
	r := x.r
	d, found, err := r.domain(context.WithoutCancel(ctx), x.req.VM)
	if err == nil && !found {
		err = fmt.Errorf("xl restore succeeded but no domain named %s is listed (does the image's config name another domain?)", x.req.VM)
	}
	if err != nil {
		return command.NewError(command.CodePermanent, err)
	}
	r.mu.Lock()
	fenced := r.fence.fenced
	if !fenced {
		r.started[x.req.VM] = startedDomain{group: x.req.Group, seq: x.req.Seq, imageKey: x.req.ImageKey, domID: d.ID}
	}
	r.mu.Unlock()
	if fenced {
		r.removeLeftover(ctx, x.req.VM, x.where)
		return errInterrupted
	}
	r.log.Info("restored", "vm", x.req.VM, "group", x.req.Group, "seq", x.req.Seq, "domid", d.ID, "state", d.State,
		"fetch", x.fetched.Round(time.Millisecond), "restore", x.restored.Round(time.Millisecond), "epoch", epochString(x.req.Epoch))
	x.reply = RestoreReply{VM: x.req.VM, DomID: d.ID, State: string(d.State),
		FetchMs: ms(x.fetched), RestoreMs: ms(x.restored), TotalMs: ms(r.clock.Since(x.start))}
	return nil
}

// cleanup removes the spooled image, whatever the outcome.
func (x *restoreRun) cleanup() {
	if x.spool != "" {
		_ = os.Remove(x.spool)
	}
}

// errInterrupted: the command stopped without an error of its own (its
// context ended, or the host fenced itself meanwhile).
var errInterrupted = errors.New("interrupted")

// failed is the one place where a restore's, cold start's or unpause's
// failure becomes the command error the supervisor acts on: if the host
// self-fenced meanwhile, that is the reason (not_ready); a command error
// keeps its code; any other error is coded by classify (retryable unless
// the toolstack said why not).
func (r *Restarter) failed(ctx context.Context, where string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fence.fenced {
		return r.fencedError(where)
	}
	if err == nil || errors.Is(err, errInterrupted) {
		return command.NewError(command.CodeRetryable, fmt.Errorf("%s: interrupted", where))
	}
	var ce *command.Error
	if !errors.As(classify(err), &ce) {
		return command.NewError(command.CodeRetryable, fmt.Errorf("%s: %w", where, err))
	}
	return command.NewError(ce.Code, fmt.Errorf("%s: %s", where, ce.Message))
}

// removeLeftover destroys vm after a failed or undone restore or cold start.
func (r *Restarter) removeLeftover(ctx context.Context, vm, where string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ToolstackTimeout)
	defer cancel()
	if err := r.hv.Destroy(ctx, vm); err != nil && !isNotFound(err) {
		r.log.Error("cannot destroy the leftover of a failed command", "vm", vm, "during", where, "error", err)
	}
}

// checkConfigName refuses a configuration that would create a domain of
// another name: the "already exists" check must be about the right name.
func checkConfigName(path, vm string) error {
	cfg, err := xen.LoadConfig(path)
	if err != nil {
		return command.NewError(command.CodePermanent, fmt.Errorf("config %s: %w", path, err))
	}
	if cfg.Name != vm {
		return command.NewError(command.CodeBadRequest, fmt.Errorf("config %s names domain %q, not %q", path, cfg.Name, vm))
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, xen.ErrDomainNotFound) }

func isExists(err error) bool { return errors.Is(err, xen.ErrDomainExists) }
