package checkpointer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/xen"
)

// slowMember sets up a group of 3 whose member mpi-2 is the slowest: its
// snapshot hook, which runs while it is captured and paused, signals that it
// started and then waits for the test to release it. It returns the group,
// the cluster, a channel that yields the finished checkpoint, and the release.
func slowMember(t *testing.T, early bool) (*cluster, checkpointer.GroupSpec, <-chan error, func()) {
	t.Helper()
	dir := t.TempDir()
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	// Bounded: 400 × 50 ms, so a broken test cannot leave a hook behind.
	hook := writeHook(t, `if [ "$XENFT_DOMAIN" = mpi-2 ]; then
  : > "`+started+`"
  i=0; while [ ! -e "`+release+`" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
fi
echo "snap-$XENFT_DOMAIN"
`)
	c := newCluster(t, clusterOptions{hosts: 3, hook: hook})
	g := group3(c, 4)
	g.ResumeEarly = early
	done := make(chan error, 1)
	go func() {
		rec, err := c.coord.Checkpoint(context.Background(), g, events.Epoch{Term: 1, Seq: 1})
		if err == nil && rec.State != checkpointer.Committed {
			err = errUncommitted
		}
		done <- err
	}()
	eventstest.Eventually(t, 10*time.Second, func() bool { _, err := os.Stat(started); return err == nil },
		"mpi-2's snapshot hook never started")
	var once bool
	releaseFn := func() {
		if !once {
			once = true
			if err := os.WriteFile(release, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(releaseFn)
	return c, g, done, releaseFn
}

var errUncommitted = errors.New("checkpoint returned without committing")

// captured reports whether every vm has been captured (saved and paused).
func (c *cluster) captured(vms ...string) bool {
	seen := map[string]bool{}
	for _, o := range c.order.snapshot() {
		if o.kind == "captured" {
			seen[o.vm] = true
		}
	}
	for _, vm := range vms {
		if !seen[vm] {
			return false
		}
	}
	return true
}

// The default: no member runs again before the whole group is captured,
// however long the slowest member takes. mpi-0 and mpi-1 were captured
// long before mpi-2's hook finished, and they must still be paused then.
func TestResumeAfterAllHoldsEveryMemberUntilTheSlowestIsCaptured(t *testing.T) {
	c, g, done, release := slowMember(t, false)
	// mpi-2's hook runs only after its own save; wait for the other two
	// saves as well, so "still paused" below is about the resume, not a
	// save not yet begun.
	eventstest.Eventually(t, 10*time.Second, func() bool { return c.captured("mpi-0", "mpi-1") },
		"mpi-0 and mpi-1 never captured")
	for _, m := range []struct{ host, vm string }{{"n1", "mpi-0"}, {"n2", "mpi-1"}} {
		if s := c.state(m.host, m.vm); s != xen.StatePaused {
			t.Fatalf("%s is %s while mpi-2 is still being captured; resume after-all must hold it paused", m.vm, s)
		}
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertOneCut(t, c, []string{"mpi-0", "mpi-1", "mpi-2"})
	for _, m := range g.Members {
		if s := c.state(m.Host, m.VM); s != xen.StateRunning {
			t.Errorf("%s is %s after the commit", m.VM, s)
		}
	}
}

// resume: early: each member runs again as soon as its own capture ends,
// while the slowest is still being captured, and the checkpoint still
// commits images that restore to each member's captured state.
func TestResumeEarlyLetsEachMemberRunWhileTheSlowestIsStillCaptured(t *testing.T) {
	c, g, done, release := slowMember(t, true)
	eventstest.Eventually(t, 10*time.Second, func() bool {
		return c.state("n1", "mpi-0") == xen.StateRunning && c.state("n2", "mpi-1") == xen.StateRunning
	}, "mpi-0 and mpi-1 not running again while mpi-2 is held in its capture")
	if s := c.state("n3", "mpi-2"); s != xen.StatePaused {
		t.Fatalf("mpi-2 is %s while its capture's hook runs, want paused", s)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec, err := c.catalog.Latest(context.Background(), g.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rec.Members {
		if want := c.hosts[m.Host].capturedProgress(m.VM); restoredProgress(t, c, m) != want {
			t.Errorf("%s: restored progress differs from its capture (%d)", m.VM, want)
		}
		if s := c.state(m.Host, m.VM); s != xen.StateRunning {
			t.Errorf("%s is %s after the commit", m.VM, s)
		}
		if m.PausedMs <= 0 && m.VM != "mpi-2" {
			t.Errorf("%s: paused %d ms recorded", m.VM, m.PausedMs)
		}
	}
	var slow, fast int64
	for _, m := range rec.Members {
		if m.VM == "mpi-2" {
			slow = m.PausedMs
		} else {
			fast = max(fast, m.PausedMs)
		}
	}
	if fast >= slow {
		t.Errorf("the early members' pause (%d ms) is not shorter than the held member's (%d ms)", fast, slow)
	}
}
