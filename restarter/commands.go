package restarter

import (
	"context"
	"fmt"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/xen"
)

// Destroy destroys vm's domain here. Its goal is "no copy here", so a
// missing domain is success; it is allowed while self-fenced, and it cancels
// an older command still running on the VM (a restore) instead of waiting.
func (r *Restarter) Destroy(ctx context.Context, req DestroyRequest) (DestroyReply, error) {
	if err := req.Validate(); err != nil {
		return DestroyReply{}, refuse(err)
	}
	where := fmt.Sprintf("vm.destroy of %s on %s", req.VM, r.id.Host)
	if err := r.admit(VerbDestroy, req.VM, req.Epoch); err != nil {
		return DestroyReply{}, err
	}
	o, octx, err := r.begin(ctx, VerbDestroy, req.VM, req.Epoch, false, r.cfg.ToolstackTimeout)
	if err != nil {
		return DestroyReply{}, err
	}
	defer r.end(o)
	d, found, err := r.domain(octx, req.VM)
	if err != nil {
		return DestroyReply{}, classify(fmt.Errorf("%s: list domains: %w", where, err))
	}
	if found {
		if err := r.hv.Destroy(octx, req.VM); err != nil && !isNotFound(err) {
			return DestroyReply{}, classify(fmt.Errorf("%s (domid %d): %w", where, d.ID, err))
		}
		r.log.Info("destroyed", "vm", req.VM, "domid", d.ID, "epoch", epochString(req.Epoch))
	}
	r.mu.Lock()
	delete(r.started, req.VM)
	delete(r.fencedPaused, req.VM)
	r.mu.Unlock()
	return DestroyReply{Existed: found, DomID: d.ID}, nil
}

// Unpause unpauses vm's domain (a restored member, once its whole group is
// restored). A domain the self-fence paused is never unpaused: its VM may
// run elsewhere by now.
func (r *Restarter) Unpause(ctx context.Context, req UnpauseRequest) (UnpauseReply, error) {
	if err := req.Validate(); err != nil {
		return UnpauseReply{}, refuse(err)
	}
	where := fmt.Sprintf("vm.unpause of %s on %s", req.VM, r.id.Host)
	if err := r.admit(VerbUnpause, req.VM, req.Epoch); err != nil {
		return UnpauseReply{}, err
	}
	o, octx, err := r.begin(ctx, VerbUnpause, req.VM, req.Epoch, true, r.cfg.ToolstackTimeout)
	if err != nil {
		return UnpauseReply{}, err
	}
	defer r.end(o)
	d, found, err := r.domain(octx, req.VM)
	if err != nil {
		return UnpauseReply{}, classify(fmt.Errorf("%s: list domains: %w", where, err))
	}
	if !found {
		return UnpauseReply{}, command.NewError(command.CodeNotFound, fmt.Errorf("%s: %w", where, xen.ErrDomainNotFound))
	}
	r.mu.Lock()
	fencedPaused := r.fencedPaused[req.VM] == d.ID
	r.mu.Unlock()
	if fencedPaused {
		return UnpauseReply{}, command.NewError(command.CodePermanent, fmt.Errorf(
			"%s: domid %d was paused by a self-fence and may run elsewhere now: destroy it", where, d.ID))
	}
	if err := r.hv.Unpause(octx, req.VM); err != nil {
		return UnpauseReply{}, r.failed(ctx, where, err)
	}
	r.log.Info("unpaused", "vm", req.VM, "domid", d.ID, "epoch", epochString(req.Epoch))
	return UnpauseReply{DomID: d.ID, WasPaused: d.State == xen.StatePaused}, nil
}

// ColdStart creates vm from its xl configuration. Like Restore it refuses a
// domain of the name already here, except the one it cold-started itself.
func (r *Restarter) ColdStart(ctx context.Context, req ColdStartRequest) (ColdStartReply, error) {
	start := r.clock.Now()
	if err := req.Validate(); err != nil {
		return ColdStartReply{}, refuse(err)
	}
	where := fmt.Sprintf("vm.coldstart of %s from %s on %s", req.VM, req.ConfigPath, r.id.Host)
	if err := r.admit(VerbColdStart, req.VM, req.Epoch); err != nil {
		return ColdStartReply{}, err
	}
	o, octx, err := r.begin(ctx, VerbColdStart, req.VM, req.Epoch, true, r.cfg.ToolstackTimeout)
	if err != nil {
		return ColdStartReply{}, err
	}
	defer r.end(o)
	if err := checkConfigName(req.ConfigPath, req.VM); err != nil {
		return ColdStartReply{}, r.failed(ctx, where, err)
	}
	d, found, err := r.domain(octx, req.VM)
	if err != nil {
		return ColdStartReply{}, classify(fmt.Errorf("%s: list domains: %w", where, err))
	}
	if found {
		r.mu.Lock()
		s, ok := r.started[req.VM]
		r.mu.Unlock()
		if ok && s.cold && s.domID == d.ID && d.State.Alive() {
			return ColdStartReply{VM: req.VM, DomID: d.ID, State: string(d.State), AlreadyStarted: true, StartMs: ms(r.clock.Since(start))}, nil
		}
		return ColdStartReply{}, command.NewError(command.CodePermanent, fmt.Errorf(
			"%s: a domain named %s already exists here (domid %d, %s): destroy it first, never two copies", where, req.VM, d.ID, d.State))
	}
	if err := r.hv.Create(octx, req.ConfigPath); err != nil {
		if !isExists(err) {
			r.removeLeftover(ctx, req.VM, where)
		}
		return ColdStartReply{}, r.failed(ctx, where, err)
	}
	if req.WantPaused() {
		// xen.Hypervisor.Create has no paused form (`xl create -p`), so the
		// domain is paused right after it is built: it may run for the
		// moment between the two calls, which is harmless for a VM booting
		// from scratch with no other copy anywhere. If it cannot be paused
		// it is destroyed: the supervisor counts on a paused member.
		if err := r.hv.Pause(octx, req.VM); err != nil {
			r.removeLeftover(ctx, req.VM, where)
			return ColdStartReply{}, r.failed(ctx, where, fmt.Errorf("pause after create: %w", err))
		}
	}
	d, found, err = r.domain(context.WithoutCancel(octx), req.VM)
	if err == nil && !found {
		err = fmt.Errorf("xl create succeeded but no domain named %s is listed", req.VM)
	}
	if err != nil {
		return ColdStartReply{}, command.NewError(command.CodePermanent, fmt.Errorf("%s: %w", where, err))
	}
	r.mu.Lock()
	fenced := r.fence.fenced
	if !fenced {
		r.started[req.VM] = startedDomain{cold: true, domID: d.ID}
	}
	r.mu.Unlock()
	if fenced {
		r.removeLeftover(ctx, req.VM, where)
		return ColdStartReply{}, r.failed(ctx, where, nil)
	}
	r.log.Info("cold-started", "vm", req.VM, "domid", d.ID, "state", d.State, "epoch", epochString(req.Epoch))
	return ColdStartReply{VM: req.VM, DomID: d.ID, State: string(d.State), StartMs: ms(r.clock.Since(start))}, nil
}

// Peek lists the guest domains and the self-fence state, and can do
// nothing else: the operator's look (VerbPeek).
func (r *Restarter) Peek(ctx context.Context, _ PeekRequest) (ListReply, error) {
	return r.List(ctx, ListRequest{})
}

// List lists the guest domains and the self-fence state. With a leader's
// epoch it is also the reconciliation that ends a self-fence (fence.go).
func (r *Restarter) List(ctx context.Context, req ListRequest) (ListReply, error) {
	if err := req.Validate(); err != nil {
		return ListReply{}, refuse(err)
	}
	if req.Epoch != (events.Epoch{}) {
		if err := r.guard.Admit(req.Epoch); err != nil {
			return ListReply{}, err
		}
		r.reconcile(req.Epoch)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ToolstackTimeout)
	defer cancel()
	doms, err := r.hv.List(ctx)
	if err != nil {
		return ListReply{}, classify(fmt.Errorf("vm.list on %s: %w", r.id.Host, err))
	}
	rep := ListReply{Host: r.id.Host, Incarnation: r.id.Incarnation, Domains: []Domain{}, Fence: r.FenceStatus()}
	for _, d := range doms {
		if isDom0(d) {
			continue
		}
		rep.Domains = append(rep.Domains, Domain{Name: d.Name, DomID: d.ID, UUID: d.UUID, State: string(d.State),
			Flags: d.Flags, MemoryMiB: d.MemoryMiB, Progress: d.Progress})
	}
	return rep, nil
}
