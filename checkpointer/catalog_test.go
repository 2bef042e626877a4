package checkpointer_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
)

func newCatalog(t *testing.T) *checkpointer.Catalog {
	t.Helper()
	b := eventstest.Bus(t, eventstest.Server(t))
	kv, err := b.KV(context.Background(), b.Names().Checkpoints())
	if err != nil {
		t.Fatal(err)
	}
	return checkpointer.NewCatalog(kv)
}

var members = []checkpointer.Member{{VM: "mpi-0", Host: "n1"}, {VM: "mpi-1", Host: "n2"}}

// commitWithImages begins a checkpoint, stores one image per member and
// commits it.
func commitWithImages(t *testing.T, c *checkpointer.Catalog, s store.ImageStore, group string, content string) checkpointer.Record {
	t.Helper()
	ctx := context.Background()
	r, err := c.Begin(ctx, group, members, events.Epoch{Term: 1}, "test")
	if err != nil {
		t.Fatal(err)
	}
	var done []checkpointer.Member
	for _, m := range r.Members {
		info, err := s.Put(ctx, store.ImageKey(group, r.Seq, m.VM), bytes.NewReader([]byte(content+m.VM)))
		if err != nil {
			t.Fatal(err)
		}
		m.ImageKey, m.Size, m.SHA256 = info.Key, info.Size, info.SHA256
		done = append(done, m)
	}
	r, err = c.Commit(ctx, r, done)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBeginCommitAbortAreCompareAndSet(t *testing.T) {
	c := newCatalog(t)
	ctx := context.Background()
	r1, err := c.Begin(ctx, "mpi", members, events.Epoch{Term: 1, Seq: 1}, "s1")
	if err != nil || r1.Seq != 1 || r1.State != checkpointer.Preparing {
		t.Fatalf("begin = %+v, %v", r1, err)
	}
	if _, err := c.Begin(ctx, "mpi", members, events.Epoch{}, "s1"); !errors.Is(err, checkpointer.ErrInProgress) {
		t.Fatalf("second begin while preparing: %v, want ErrInProgress", err)
	}
	if _, err := c.Latest(ctx, "mpi"); !errors.Is(err, checkpointer.ErrNoCheckpoint) {
		t.Fatalf("latest with only a preparing record: %v", err)
	}
	committed, err := c.Commit(ctx, r1, members)
	if err != nil || committed.State != checkpointer.Committed {
		t.Fatalf("commit = %+v, %v", committed, err)
	}
	// A stale copy (an old leader's) can neither commit nor abort again.
	if _, err := c.Abort(ctx, r1, "late"); !errors.Is(err, checkpointer.ErrConflict) {
		t.Fatalf("abort with a stale revision: %v, want ErrConflict", err)
	}
	if _, err := c.Abort(ctx, committed, "late"); !errors.Is(err, checkpointer.ErrNotPreparing) {
		t.Fatalf("abort of a committed record: %v, want ErrNotPreparing", err)
	}
	r2, err := c.Begin(ctx, "mpi", members, events.Epoch{}, "s1")
	if err != nil || r2.Seq != 2 {
		t.Fatalf("begin 2 = %+v, %v", r2, err)
	}
	if _, err := c.Abort(ctx, r2, "save failed on n2"); err != nil {
		t.Fatal(err)
	}
	latest, err := c.Latest(ctx, "mpi")
	if err != nil || latest.Seq != 1 {
		t.Fatalf("latest after an aborted seq 2 = %+v, %v", latest, err)
	}
	r3, err := c.Begin(ctx, "mpi", members, events.Epoch{}, "s1")
	if err != nil || r3.Seq != 3 {
		t.Fatalf("aborted seqs are not reused: begin = %+v, %v", r3, err)
	}
	groups, err := c.Groups(ctx)
	if err != nil || len(groups) != 1 || groups[0] != "mpi" {
		t.Fatalf("groups = %v, %v", groups, err)
	}
}

func TestConcurrentBeginsOneWins(t *testing.T) {
	c := newCatalog(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Begin(context.Background(), "g", members, events.Epoch{}, "racer")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, checkpointer.ErrConflict), errors.Is(err, checkpointer.ErrInProgress):
				conflicts++
			default:
				t.Errorf("begin: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != 3 {
		t.Fatalf("wins=%d conflicts=%d, want exactly one begin to win", wins, conflicts)
	}
}

func TestLatestVerifiedFallsBackPastACorruptedImage(t *testing.T) {
	c := newCatalog(t)
	root := t.TempDir()
	s, _ := store.NewDir(root)
	ctx := context.Background()
	first := commitWithImages(t, c, s, "mpi", "cut one ")
	second := commitWithImages(t, c, s, "mpi", "cut two ")

	got, rejected, err := c.LatestVerified(ctx, "mpi", s)
	if err != nil || got.Seq != second.Seq || len(rejected) != 0 {
		t.Fatalf("before corruption: %+v %v %v", got.Seq, rejected, err)
	}
	// Flip a byte of one member's image in the newest checkpoint.
	p := filepath.Join(root, filepath.FromSlash(second.Members[1].ImageKey))
	b, _ := os.ReadFile(p)
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	got, rejected, err = c.LatestVerified(ctx, "mpi", s)
	if err != nil || got.Seq != first.Seq {
		t.Fatalf("after corruption: got seq %d, %v; want %d", got.Seq, err, first.Seq)
	}
	if len(rejected) != 1 || rejected[0].Seq != second.Seq || !errors.Is(rejected[0].Reason, store.ErrCorrupt) {
		t.Fatalf("rejected = %+v", rejected)
	}
	// A missing image is rejected too; with none left there is no checkpoint.
	if err := s.Delete(ctx, first.Members[0].ImageKey); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.LatestVerified(ctx, "mpi", s); !errors.Is(err, checkpointer.ErrNoCheckpoint) {
		t.Fatalf("no verifiable checkpoint: %v", err)
	}
}

func TestDeleteIsCompareAndSet(t *testing.T) {
	c := newCatalog(t)
	ctx := context.Background()
	r, _ := c.Begin(ctx, "g", members, events.Epoch{}, "t")
	committed, _ := c.Commit(ctx, r, members)
	if err := c.Delete(ctx, r); !errors.Is(err, checkpointer.ErrConflict) {
		t.Fatalf("delete with stale revision: %v", err)
	}
	if err := c.Delete(ctx, committed); err != nil {
		t.Fatal(err)
	}
	if recs, _ := c.List(ctx, "g"); len(recs) != 0 {
		t.Fatalf("records after delete: %+v", recs)
	}
}
