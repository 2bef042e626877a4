package inventory

import (
	"context"
	"time"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/xen"
)

// Driver is what Host needs of a xen driver; xen.Hypervisor is one.
type Driver interface {
	List(ctx context.Context) ([]xen.Domain, error)
	HostInfo(ctx context.Context) (xen.HostInfo, error)
}

var _ Driver = xen.Hypervisor(nil)

// Host reports a host's domains and free memory to a beacon through its
// driver, or, in an agent, through the Lister its VM watcher shares.
type Host struct {
	Driver Driver
	// Lister, when set, lists the domains instead of Driver, accepting a
	// listing begun up to MaxAge before the call. Beats carry the listing
	// a round took until the next round, so MaxAge adds to their age: keep
	// it at most half the beacon's inventory interval.
	Lister *Lister
	MaxAge time.Duration
}

var (
	_ detector.HostInventory   = Host{}
	_ detector.ListingNotifier = Host{}
)

// Domains lists the guest domains as the beacon reports them.
func (h Host) Domains(ctx context.Context) ([]detector.DomainSummary, error) {
	if h.Lister != nil {
		ls, err := h.Lister.List(ctx, time.Now().Add(-h.MaxAge))
		if err != nil {
			return nil, err
		}
		return Summaries(ls.Domains), nil
	}
	doms, err := h.Driver.List(ctx)
	if err != nil {
		return nil, err
	}
	return Summaries(doms), nil
}

// Listed signals the Lister's listings (nil, never ready, without one), so
// that the beacon reports a listing made for the watcher at once.
func (h Host) Listed() <-chan struct{} {
	if h.Lister == nil {
		return nil
	}
	return h.Lister.Listed()
}

// FreeMemoryMiB is the memory a restore could still use here.
func (h Host) FreeMemoryMiB(ctx context.Context) (uint64, error) {
	info, err := h.Driver.HostInfo(ctx)
	if err != nil {
		return 0, err
	}
	return info.FreeMemoryMiB, nil
}

// Summaries turns a driver's listing into what the beats carry.
func Summaries(doms []xen.Domain) []detector.DomainSummary {
	out := make([]detector.DomainSummary, len(doms))
	for i, d := range doms {
		out[i] = detector.DomainSummary{Name: d.Name, State: string(d.State), MemoryMiB: d.MemoryMiB}
	}
	return out
}
