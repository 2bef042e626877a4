package checkpointer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

// group3 is a group of 3 VMs on 3 hosts, one each.
func group3(c *cluster, memMiB int) checkpointer.GroupSpec {
	g := checkpointer.GroupSpec{Name: "mpi"}
	for i := 0; i < 3; i++ {
		host, vm := fmt.Sprintf("n%d", i+1), fmt.Sprintf("mpi-%d", i)
		c.startVM(host, vm, memMiB)
		g.Members = append(g.Members, checkpointer.Member{VM: vm, Host: host})
	}
	return g
}

// restoredProgress restores a committed member's image on a fresh sim and
// returns the progress the restored domain continues from.
func restoredProgress(t *testing.T, c *cluster, m checkpointer.Member) uint64 {
	t.Helper()
	rc, _, err := c.store.Open(context.Background(), m.ImageKey)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), "restore.img")
	f, _ := os.Create(path)
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatalf("read %s: %v", m.ImageKey, err)
	}
	f.Close()
	sim := &xen.Sim{Host: "restore"}
	if err := sim.Restore(context.Background(), path, xen.RestoreOptions{Paused: true}); err != nil {
		t.Fatalf("restore %s: %v", m.ImageKey, err)
	}
	p, err := sim.Progress(m.VM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// assertOneCut checks the protocol's order: every member was captured before
// any member was unpaused.
func assertOneCut(t *testing.T, c *cluster, vms []string) {
	t.Helper()
	lastCapture, firstUnpause := int64(0), int64(1<<62)
	captured := map[string]bool{}
	for _, o := range c.order.snapshot() {
		switch o.kind {
		case "captured":
			captured[o.vm] = true
			lastCapture = max(lastCapture, o.seq)
		case "unpause":
			firstUnpause = min(firstUnpause, o.seq)
		}
	}
	for _, vm := range vms {
		if !captured[vm] {
			t.Fatalf("%s was never captured", vm)
		}
	}
	if firstUnpause < lastCapture {
		t.Fatalf("a member was unpaused (op %d) before the last capture (op %d): not one cut\n%+v", firstUnpause, lastCapture, c.order.snapshot())
	}
}

func testGroupCheckpoint(t *testing.T, useXL bool) {
	c := newCluster(t, clusterOptions{hosts: 3, useXL: useXL})
	g := group3(c, 16)
	ctx := context.Background()
	var mu sync.Mutex
	var tail []events.Event
	seen := func() []events.Event { mu.Lock(); defer mu.Unlock(); return append([]events.Event(nil), tail...) }
	tctx, tcancel := context.WithCancel(ctx)
	tdone := make(chan struct{})
	go func() {
		defer close(tdone)
		_ = c.bus.Tail(tctx, events.TailConfig{Since: time.Now().Add(-time.Minute), Filters: []string{c.bus.Subjects().EventsOfKind("checkpoint")}},
			func(_ context.Context, ev events.Event, _ events.Meta) error {
				mu.Lock()
				defer mu.Unlock()
				tail = append(tail, ev)
				return nil
			})
	}()

	rec, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 1, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != checkpointer.Committed || len(rec.Members) != 3 {
		t.Fatalf("record = %+v", rec)
	}
	assertOneCut(t, c, []string{"mpi-0", "mpi-1", "mpi-2"})
	for _, m := range rec.Members {
		// The image holds exactly the state at the member's capture...
		want := c.hosts[m.Host].capturedProgress(m.VM)
		if got := restoredProgress(t, c, m); got != want {
			t.Errorf("%s: restored progress %d, captured at %d", m.VM, got, want)
		}
		// ...and the member runs again.
		if s := c.state(m.Host, m.VM); s != xen.StateRunning {
			t.Errorf("%s is %s after the checkpoint", m.VM, s)
		}
		if m.Size != 16<<20+int64(imageOverhead(t, c, m)) || len(m.SHA256) != 64 {
			t.Errorf("%s: size %d sha %q", m.VM, m.Size, m.SHA256)
		}
	}
	latest, err := c.catalog.Latest(ctx, "mpi")
	if err != nil || latest.Seq != rec.Seq {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(seen()) >= 2 }, "checkpoint events not seen")
	tcancel()
	<-tdone
	if tail := seen(); tail[0].Type != events.TypeCheckpointStarted || tail[1].Type != events.TypeCheckpointCommitted {
		t.Fatalf("events %s, %s: want started then committed", tail[0].Type, tail[1].Type)
	}
}

// imageOverhead is the image's size beyond the domain's memory (its header).
func imageOverhead(t *testing.T, c *cluster, m checkpointer.Member) int {
	t.Helper()
	info, err := c.store.Stat(context.Background(), m.ImageKey)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.Size - 16<<20)
}

func TestGroupCheckpointIsOneConsistentCut_Sim(t *testing.T)    { testGroupCheckpoint(t, false) }
func TestGroupCheckpointIsOneConsistentCut_FakeXL(t *testing.T) { testGroupCheckpoint(t, true) }

func TestAnyMemberSaveFailureAbortsTheWholeCheckpoint(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 3})
	g := group3(c, 8)
	ctx := context.Background()
	first, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range g.Members {
		t.Run(m.VM, func(t *testing.T) {
			c.hosts[m.Host].failSave[m.VM] = errInjected
			defer delete(c.hosts[m.Host].failSave, m.VM)
			_, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 1, Seq: uint64(i + 2)})
			if err == nil || !strings.Contains(err.Error(), "aborted") || !strings.Contains(err.Error(), m.VM) {
				t.Fatalf("err = %v, want an abort naming %s", err, m.VM)
			}
			latest, err := c.catalog.Latest(ctx, "mpi")
			if err != nil || latest.Seq != first.Seq {
				t.Fatalf("latest = %d, %v; want the previous committed %d", latest.Seq, err, first.Seq)
			}
			for _, o := range g.Members {
				if s := c.state(o.Host, o.VM); s != xen.StateRunning {
					t.Errorf("%s left %s after the abort", o.VM, s)
				}
			}
			recs, _ := c.catalog.List(ctx, "mpi")
			last := recs[len(recs)-1]
			if last.State != checkpointer.Aborted || !strings.Contains(last.Reason, "No space left") {
				t.Fatalf("last record = %+v", last)
			}
			if imgs, _ := c.store.List(ctx, store.CheckpointPrefix("mpi", last.Seq)); len(imgs) != 0 {
				t.Fatalf("partial images left: %+v", imgs)
			}
		})
	}
}

func TestCorruptedLatestImageFallsBackToThePreviousCheckpoint(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 3})
	g := group3(c, 8)
	ctx := context.Background()
	first, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 1, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 1, Seq: 2})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(c.storeAt, filepath.FromSlash(second.Members[2].ImageKey))
	b, _ := os.ReadFile(p)
	b[len(b)-100] ^= 0x40
	_ = os.WriteFile(p, b, 0o640)
	got, rejected, err := c.catalog.LatestVerified(ctx, "mpi", c.store)
	if err != nil || got.Seq != first.Seq || len(rejected) != 1 || !errors.Is(rejected[0].Reason, store.ErrCorrupt) {
		t.Fatalf("LatestVerified = seq %d, rejected %+v, err %v; want seq %d", got.Seq, rejected, err, first.Seq)
	}
}

func TestRetentionKeepsTheLastN(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 1})
	c.startVM("n1", "solo", 4)
	g := checkpointer.GroupSpec{Name: "solo", Members: []checkpointer.Member{{VM: "solo", Host: "n1"}}, Retain: 2}
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		if _, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 1, Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	recs, _ := c.catalog.List(ctx, "solo")
	if len(recs) != 2 || recs[0].Seq != 3 || recs[1].Seq != 4 {
		t.Fatalf("kept %+v, want seqs 3 and 4", recs)
	}
	imgs, _ := c.store.List(ctx, "solo/")
	if len(imgs) != 2 {
		t.Fatalf("images kept: %+v", imgs)
	}
}

// A retention of 1 would delete the previous consistent cut the moment the
// next one commits; if the bus then lost that commit (its newest writes), the
// group would have nothing to roll back to. Prune keeps MinRetain whatever
// it is asked, and the configuration refuses less.
func TestRetentionNeverLeavesTheNewestCommitAlone(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 1})
	c.startVM("n1", "solo", 4)
	g := checkpointer.GroupSpec{Name: "solo", Members: []checkpointer.Member{{VM: "solo", Host: "n1"}}, Retain: 1}
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if _, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 1, Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	recs, _ := c.catalog.List(ctx, "solo")
	if len(recs) != checkpointer.MinRetain || recs[0].Seq != 2 || recs[1].Seq != 3 {
		t.Fatalf("kept %+v, want seqs 2 and 3", recs)
	}
	cfg := checkpointer.DefaultCoordinatorConfig()
	cfg.Retain = 1
	if err := cfg.Validate("supervisor.checkpoint"); err == nil || !strings.Contains(err.Error(), "supervisor.checkpoint.retain: must be at least 2") {
		t.Fatalf("retain 1 validates: %v", err)
	}
}

// stallingCommander lets captures through and then never sends another
// command: the coordinator process has died mid-protocol with members paused.
// Closing dead lets its goroutine end when the test is over.
type stallingCommander struct {
	inner   checkpointer.Commander
	stalled chan struct{}
	dead    chan struct{}
}

func newStallingCommander(inner checkpointer.Commander) *stallingCommander {
	return &stallingCommander{inner: inner, stalled: make(chan struct{}, 1), dead: make(chan struct{})}
}

func (s *stallingCommander) Command(ctx context.Context, host, verb string, req, reply any, timeout time.Duration) error {
	if verb == checkpointer.VerbCapture {
		return s.inner.Command(ctx, host, verb, req, reply, timeout)
	}
	select {
	case s.stalled <- struct{}{}:
	default:
	}
	<-s.dead
	return errors.New("coordinator process is dead")
}

func TestCoordinatorKilledMidProtocolIsCleanedUpBySuccessor(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 3, maxPause: time.Hour}) // only the successor can unpause
	g := group3(c, 8)
	ctx := context.Background()
	cfg := checkpointer.DefaultCoordinatorConfig()
	stall := newStallingCommander(c.bus)
	dead := checkpointer.NewCoordinator("old-leader", stall, c.bus, c.catalog, c.store, cfg, eventstest.Logger(t, 0))
	done := make(chan struct{})
	go func() { defer close(done); _, _ = dead.Checkpoint(ctx, g, events.Epoch{Term: 1}) }()
	<-stall.stalled // every member captured and paused; the coordinator is gone
	for _, m := range g.Members {
		if s := c.state(m.Host, m.VM); s != xen.StatePaused {
			t.Fatalf("%s is %s, want paused by the dead coordinator", m.VM, s)
		}
	}
	recs, _ := c.catalog.List(ctx, "mpi")
	if len(recs) != 1 || recs[0].State != checkpointer.Preparing {
		t.Fatalf("records = %+v", recs)
	}

	// The successor recovers before taking checkpoints of its own.
	if err := c.coord.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _ = c.catalog.List(ctx, "mpi")
	if recs[0].State != checkpointer.Aborted || !strings.Contains(recs[0].Reason, "old-leader") {
		t.Fatalf("after recovery: %+v", recs[0])
	}
	for _, m := range g.Members {
		if s := c.state(m.Host, m.VM); s != xen.StateRunning {
			t.Errorf("%s is %s after recovery", m.VM, s)
		}
	}
	next, err := c.coord.Checkpoint(ctx, g, events.Epoch{Term: 2})
	if err != nil || next.Seq != 2 {
		t.Fatalf("checkpoint after recovery = %+v, %v", next, err)
	}
	close(stall.dead)
	<-done
}

func TestMaxPauseUnpausesWhenTheCoordinatorVanishes(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 2, maxPause: time.Second})
	c.startVM("n1", "a", 4)
	c.startVM("n2", "b", 4)
	g := checkpointer.GroupSpec{Name: "ab", Members: []checkpointer.Member{{VM: "a", Host: "n1"}, {VM: "b", Host: "n2"}}}
	stall := newStallingCommander(c.bus)
	dead := checkpointer.NewCoordinator("gone", stall, c.bus, c.catalog, c.store, checkpointer.DefaultCoordinatorConfig(), eventstest.Logger(t, 0))
	done := make(chan struct{})
	go func() { defer close(done); _, _ = dead.Checkpoint(context.Background(), g, events.Epoch{Term: 1}) }()
	defer func() { close(stall.dead); <-done }()
	<-stall.stalled
	eventstest.Eventually(t, 10*time.Second, func() bool {
		return c.state("n1", "a") == xen.StateRunning && c.state("n2", "b") == xen.StateRunning
	}, "members still paused after max_pause")
	// The capture is void: a late resume or upload from anyone fails.
	err := c.bus.Command(context.Background(), "n1", checkpointer.VerbUpload, checkpointer.UploadRequest{Group: "ab", Seq: 1, VM: "a", Epoch: events.Epoch{Term: 1}, ImageKey: "ab/1/a.img"}, nil, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "max pause expired") {
		t.Fatalf("upload after expiry: %v", err)
	}
}

func TestStaleEpochIsRefused(t *testing.T) {
	c := newCluster(t, clusterOptions{hosts: 1})
	c.startVM("n1", "v", 4)
	g := checkpointer.GroupSpec{Name: "v", Members: []checkpointer.Member{{VM: "v", Host: "n1"}}}
	if _, err := c.coord.Checkpoint(context.Background(), g, events.Epoch{Term: 5}); err != nil {
		t.Fatal(err)
	}
	_, err := c.coord.Checkpoint(context.Background(), g, events.Epoch{Term: 4})
	var ce *command.Error
	if !errors.As(err, &ce) || ce.Code != command.CodeStaleEpoch {
		t.Fatalf("checkpoint from an older term: %v, want stale_epoch", err)
	}
}
