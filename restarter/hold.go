package restarter

import (
	"context"

	"github.com/xenft/xenft/xen"
)

// Hold marks vm as being worked on by another part of this agent (the
// checkpointer's capture, whose `xl save -p` suspends the guest: it shows as
// shut down, ---ss-, while the save runs). Until release is called the
// watcher does not judge it; it keeps the copy it saw before the hold and
// judges that once the hold ends. A capture leaves its domain alive (paused
// or running, same domain id), so a domain dead or gone after the hold (a
// save killed with its guest, a crash just after it) is reported.
func (r *Restarter) Hold(vm string) (release func()) {
	r.mu.Lock()
	r.gen++
	r.busy[vm]++
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.gen++
		if r.busy[vm]--; r.busy[vm] <= 0 {
			delete(r.busy, vm)
		}
	}
}

// HoldSaves wraps hv so that every Save holds the domain for its duration:
// the agent gives it to its checkpointer, whose captures suspend the guest.
func (r *Restarter) HoldSaves(hv xen.Hypervisor) xen.Hypervisor {
	return heldSaves{Hypervisor: hv, hold: r.Hold}
}

type heldSaves struct {
	xen.Hypervisor
	hold func(vm string) (release func())
}

func (h heldSaves) Save(ctx context.Context, dom, path string, opts xen.SaveOptions) error {
	release := h.hold(dom)
	defer release()
	return h.Hypervisor.Save(ctx, dom, path, opts)
}
