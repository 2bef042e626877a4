package checkpointer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/xen"
)

// writeHook writes an executable snapshot hook script.
func writeHook(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "snapshot-hook")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSnapshotHookRunsWhilePausedAndIsRecorded(t *testing.T) {
	logDir := t.TempDir()
	// The hook records its environment and prints the snapshot's name.
	hook := writeHook(t, `echo "$XENFT_DOMAIN $XENFT_GROUP $XENFT_CHECKPOINT_SEQ $XENFT_CHECKPOINT_ID" > "`+logDir+`/$XENFT_DOMAIN"
echo "lvm:vg0/$XENFT_DOMAIN-snap-$XENFT_CHECKPOINT_SEQ"
echo "extra line ignored"
`)
	c := newCluster(t, clusterOptions{hosts: 3, hook: hook})
	g := group3(c, 4)
	rec, err := c.coord.Checkpoint(context.Background(), g, events.Epoch{Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rec.Members {
		if want := "lvm:vg0/" + m.VM + "-snap-1"; m.DiskSnapshot != want {
			t.Errorf("%s: disk snapshot %q, want %q", m.VM, m.DiskSnapshot, want)
		}
		env, err := os.ReadFile(filepath.Join(logDir, m.VM))
		if err != nil || strings.TrimSpace(string(env)) != m.VM+" mpi 1 mpi/1" {
			t.Errorf("%s: hook saw %q, %v", m.VM, env, err)
		}
	}
}

func TestFailingSnapshotHookAbortsAndUnpauses(t *testing.T) {
	hook := writeHook(t, `if [ "$XENFT_DOMAIN" = mpi-1 ]; then echo "lvcreate: volume group full" >&2; exit 5; fi
echo ok`)
	c := newCluster(t, clusterOptions{hosts: 3, hook: hook})
	g := group3(c, 4)
	_, err := c.coord.Checkpoint(context.Background(), g, events.Epoch{Term: 1})
	if err == nil || !strings.Contains(err.Error(), "volume group full") || !strings.Contains(err.Error(), "mpi-1") {
		t.Fatalf("err = %v, want the hook's failure for mpi-1", err)
	}
	for _, m := range g.Members {
		if s := c.state(m.Host, m.VM); s != xen.StateRunning {
			t.Errorf("%s is %s after the abort", m.VM, s)
		}
	}
	recs, _ := c.catalog.List(context.Background(), "mpi")
	if len(recs) != 1 || recs[0].State != checkpointer.Aborted {
		t.Fatalf("records = %+v", recs)
	}
}
