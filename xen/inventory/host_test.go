package inventory_test

import (
	"context"
	"testing"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/xen/inventory"
	"github.com/xenft/xenft/xen/xentest"
)

// The beacon reports what xl lists, as xl lists it, and xl's errors.
func TestHostReportsTheDriversListing(t *testing.T) {
	h := xentest.NewFakeHost(t, "n1")
	h.Boot(t, "web", 256)
	inv := inventory.Host{Driver: h.XL}
	ctx := context.Background()

	doms, err := inv.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := detector.DomainSummary{Name: "web", State: "running", MemoryMiB: 256}
	if len(doms) != 1 || doms[0] != want {
		t.Fatalf("domains %+v, want [%+v]", doms, want)
	}
	info, err := h.XL.HostInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	free, err := inv.FreeMemoryMiB(ctx)
	if err != nil || free != info.FreeMemoryMiB || free == 0 {
		t.Fatalf("free memory %d, %v; want %d", free, err, info.FreeMemoryMiB)
	}

	h.Fault(t, "list", "fail")
	if doms, err := inv.Domains(ctx); err == nil {
		t.Fatalf("a failing xl list gave %+v, want an error", doms)
	}
	h.Fault(t, "info", "fail")
	if _, err := inv.FreeMemoryMiB(ctx); err == nil {
		t.Fatal("a failing xl info gave no error")
	}
}
