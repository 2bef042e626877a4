package inventory

import (
	"context"

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
// driver.
type Host struct {
	Driver Driver
}

var _ detector.HostInventory = Host{}

// Domains lists the guest domains as the beacon reports them.
func (h Host) Domains(ctx context.Context) ([]detector.DomainSummary, error) {
	doms, err := h.Driver.List(ctx)
	if err != nil {
		return nil, err
	}
	return Summaries(doms), nil
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
