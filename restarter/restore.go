package restarter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func validateRestore(r RestoreRequest) error {
	var errs []error
	if !nameRE.MatchString(r.VM) {
		errs = append(errs, fmt.Errorf("vm %q is not a name", r.VM))
	}
	if r.Group == "" {
		errs = append(errs, errors.New("group is required"))
	}
	if err := store.ValidateKey(r.ImageKey); err != nil {
		errs = append(errs, fmt.Errorf("image_key: %w", err))
	}
	if r.Size <= 0 {
		errs = append(errs, fmt.Errorf("size must be positive, got %d", r.Size))
	}
	if !sha256RE.MatchString(r.SHA256) {
		errs = append(errs, fmt.Errorf("sha256 %q is not 64 lower-case hex digits", r.SHA256))
	}
	return errors.Join(errs...)
}

// Restore fetches a checkpoint image into the spool, verifying it, and
// restores it, paused unless asked otherwise. A domain of the same name
// already here is refused (never two copies: the supervisor destroys first),
// except the one this agent restored from the same checkpoint, which makes a
// retry succeed without a second copy.
func (r *Restarter) Restore(ctx context.Context, req RestoreRequest) (RestoreReply, error) {
	start := r.clock.Now()
	where := fmt.Sprintf("vm.restore of %s from checkpoint %s/%d on %s", req.VM, req.Group, req.Seq, r.id.Host)
	if err := validateRestore(req); err != nil {
		return RestoreReply{}, events.NewCommandError(events.CodeBadRequest, fmt.Errorf("%s: %w", where, err))
	}
	if err := r.admit(VerbRestore, req.VM, req.Epoch); err != nil {
		return RestoreReply{}, err
	}
	o, octx, err := r.begin(ctx, VerbRestore, req.VM, req.Epoch, true, r.cfg.RestoreTimeout)
	if err != nil {
		return RestoreReply{}, err
	}
	defer r.end(o)
	if req.ConfigPath != "" {
		if err := checkConfigName(req.ConfigPath, req.VM); err != nil {
			return RestoreReply{}, r.failed(ctx, where, err)
		}
	}
	d, found, err := r.domain(octx, req.VM)
	if err != nil {
		return RestoreReply{}, classify(fmt.Errorf("%s: list domains: %w", where, err))
	}
	if found {
		r.mu.Lock()
		s, ok := r.started[req.VM]
		r.mu.Unlock()
		if ok && !s.cold && s.group == req.Group && s.seq == req.Seq && s.imageKey == req.ImageKey && s.domID == d.ID && d.State.Alive() {
			return RestoreReply{VM: req.VM, DomID: d.ID, State: string(d.State), AlreadyRestored: true, TotalMs: ms(r.clock.Since(start))}, nil
		}
		return RestoreReply{}, events.NewCommandError(events.CodePermanent, fmt.Errorf(
			"%s: a domain named %s already exists here (domid %d, %s): destroy it first, never two copies", where, req.VM, d.ID, d.State))
	}

	f, err := os.CreateTemp(r.cfg.SpoolDir, req.VM+"-*"+spoolSuffix)
	if err != nil {
		return RestoreReply{}, events.NewCommandError(events.CodeRetryable, fmt.Errorf("%s: spool: %w", where, err))
	}
	spool := f.Name()
	defer os.Remove(spool)
	fetchStart := r.clock.Now()
	if err := r.fetch(octx, req, f); err != nil {
		return RestoreReply{}, r.failed(ctx, where, err)
	}
	fetched := r.clock.Since(fetchStart)

	restoreStart := r.clock.Now()
	err = r.hv.Restore(octx, spool, xen.RestoreOptions{ConfigPath: req.ConfigPath, Paused: req.WantPaused()})
	if err != nil {
		if !isExists(err) {
			// A failed or cancelled xl restore may leave a half-built
			// domain; the name was free, so it is ours to remove.
			r.removeLeftover(ctx, req.VM, where)
		}
		return RestoreReply{}, r.failed(ctx, where, classify(err))
	}
	restored := r.clock.Since(restoreStart)
	d, found, err = r.domain(context.WithoutCancel(octx), req.VM)
	if err == nil && !found {
		err = fmt.Errorf("xl restore succeeded but no domain named %s is listed (does the image's config name another domain?)", req.VM)
	}
	if err != nil {
		return RestoreReply{}, events.NewCommandError(events.CodePermanent, fmt.Errorf("%s: %w", where, err))
	}
	r.mu.Lock()
	fenced := r.fence.fenced
	if !fenced {
		r.started[req.VM] = startedDomain{group: req.Group, seq: req.Seq, imageKey: req.ImageKey, domID: d.ID}
	}
	r.mu.Unlock()
	if fenced { // the fence came while xl restored: undo, the sweep would anyway
		r.removeLeftover(ctx, req.VM, where)
		return RestoreReply{}, r.failed(ctx, where, nil)
	}
	r.log.Info("restored", "vm", req.VM, "group", req.Group, "seq", req.Seq, "domid", d.ID, "state", d.State,
		"fetch", fetched.Round(time.Millisecond), "restore", restored.Round(time.Millisecond), "epoch", epochString(req.Epoch))
	return RestoreReply{VM: req.VM, DomID: d.ID, State: string(d.State),
		FetchMs: ms(fetched), RestoreMs: ms(restored), TotalMs: ms(r.clock.Since(start))}, nil
}

// failed shapes the error of a restore or cold start that did not complete:
// if the host self-fenced meanwhile, that is the reason.
func (r *Restarter) failed(ctx context.Context, where string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fence.fenced {
		return r.fencedError(where)
	}
	var ce *events.CommandError
	switch {
	case err == nil:
		return events.NewCommandError(events.CodeRetryable, fmt.Errorf("%s: interrupted", where))
	case errors.As(err, &ce):
		return events.NewCommandError(ce.Code, fmt.Errorf("%s: %s", where, ce.Message))
	}
	return events.NewCommandError(events.CodeRetryable, fmt.Errorf("%s: %w", where, err))
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
		return events.NewCommandError(events.CodePermanent, fmt.Errorf("config %s: %w", path, err))
	}
	if cfg.Name != vm {
		return events.NewCommandError(events.CodeBadRequest, fmt.Errorf("config %s names domain %q, not %q", path, cfg.Name, vm))
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, xen.ErrDomainNotFound) }

func isExists(err error) bool { return errors.Is(err, xen.ErrDomainExists) }
