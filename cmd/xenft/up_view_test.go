package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// The live view of `xenft up` is a pure function of its snapshot: one frame
// with a failed host carrying a fault, a VM being restored, a catalog that
// answered for one group, and an event line too long for the screen.
func TestTheLiveViewRendersItsSnapshot(t *testing.T) {
	s := viewSnapshot{
		Now:    time.Date(2026, 12, 5, 21, 30, 5, 0, time.UTC),
		Uptime: 95*time.Second + 400*time.Millisecond,
		NATS:   "nats://127.0.0.1:4222",
		Hosts: []hostRow{
			{Host: "n1", State: "healthy", FreeMiB: 3584},
			{Host: "n2", State: "failed", Fault: "fatal", FaultReason: "ipmi: PSU 2 failed", FreeMiB: 4096},
		},
		Domains: map[string][]string{"n1": {"mpi-0(running,812)", "mpi-1(paused,0)"}},
		VMs: []vmRow{
			{VM: "mpi-0", Group: "mpi", Host: "n1", State: "running", Seq: 3},
			{VM: "mpi-1", Group: "mpi", Host: "n1", State: "restoring", Seq: 3},
			{VM: "web", Group: "web", State: "pending"},
		},
		Checkpoints: []checkpointRow{{Group: "mpi", Seq: 3, Age: 12*time.Second + 300*time.Millisecond, Members: 2, PausedMs: 181}},
		Recent: []string{
			"21:30:01.2  failed                 host/n2        host=n2 phi=8.2 reason=phi",
			"21:30:02.0  restarting             vm/mpi-1       " + strings.Repeat("x", 200),
		},
	}
	got := render(s)
	path := filepath.Join("testdata", "up_view.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run TestTheLiveViewRendersItsSnapshot -update writes it)", err)
	}
	if got != string(want) {
		t.Fatalf("render differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// A catalog that cannot be read is said so in the frame, not dropped.
func TestTheLiveViewSaysWhenTheCatalogCannotBeRead(t *testing.T) {
	got := render(viewSnapshot{CatalogErr: "context deadline exceeded"})
	if !strings.Contains(got, "(the catalog cannot be read now: context deadline exceeded)") {
		t.Fatalf("the frame does not say the catalog failed:\n%s", got)
	}
}
