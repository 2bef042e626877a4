package inventory_test

import (
	"context"
	"testing"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/xen/inventory"
)

// The beacon reports what xl lists, as xl lists it, and xl's errors.
func TestHostReportsTheDriversListing(t *testing.T) {
	h := newFakeHost(t)
	h.boot(t, "web", 256)
	inv := inventory.Host{Driver: h.xl}
	ctx := context.Background()

	doms, err := inv.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := detector.DomainSummary{Name: "web", State: "running", MemoryMiB: 256}
	if len(doms) != 1 || doms[0] != want {
		t.Fatalf("domains %+v, want [%+v]", doms, want)
	}
	info, err := h.xl.HostInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	free, err := inv.FreeMemoryMiB(ctx)
	if err != nil || free != info.FreeMemoryMiB || free == 0 {
		t.Fatalf("free memory %d, %v; want %d", free, err, info.FreeMemoryMiB)
	}

	h.fault(t, "list", "fail")
	if doms, err := inv.Domains(ctx); err == nil {
		t.Fatalf("a failing xl list gave %+v, want an error", doms)
	}
	h.fault(t, "info", "fail")
	if _, err := inv.FreeMemoryMiB(ctx); err == nil {
		t.Fatal("a failing xl info gave no error")
	}
}
