package xen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// writeCfg writes an xl config for a domain of memMiB MiB and returns its path.
func writeCfg(t testing.TB, dir, name string, memMiB int) string {
	t.Helper()
	p := filepath.Join(dir, name+".cfg")
	data := []byte("name = \"" + name + "\"\ntype = \"pv\"\nkernel = \"/guest/vmlinuz\"\nmemory = " +
		strconv.Itoa(memMiB) + "\nvcpus = 1\non_crash = \"preserve\"\n")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestSim(t testing.TB) (*Sim, *fakeClock) {
	clk := newFakeClock()
	return &Sim{Now: clk.Now}, clk
}

func progressOf(t testing.TB, s *Sim, dom string) uint64 {
	t.Helper()
	p, err := s.Progress(dom)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The round trip the supervisor relies on: run, checkpoint at progress P,
// keep running, crash, restore -> progress is exactly P, then advances.
func TestSimCheckpointCrashRestore(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestSim(t)
	dir := t.TempDir()
	if err := s.Create(ctx, writeCfg(t, dir, "vm1", 16)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2500 * time.Millisecond)
	if got := progressOf(t, s, "vm1"); got != 2500 {
		t.Fatalf("progress after 2.5 s = %d, want 2500", got)
	}
	img := filepath.Join(dir, "vm1.img")
	if err := s.Save(ctx, "vm1", img, SaveOptions{Mode: SaveKeepRunning}); err != nil {
		t.Fatal(err)
	}
	h, err := ReadImageHeader(img)
	if err != nil || h.Progress != 2500 || h.Name != "vm1" || h.MemoryBytes != 16<<20 {
		t.Fatalf("image header %+v, %v", h, err)
	}
	if fi, _ := os.Stat(img); fi.Size() != int64(PageSize+16<<20+imageTrailerLen) {
		t.Errorf("image size %d: want one header page + 16 MiB + trailer", fi.Size())
	}
	clk.Advance(time.Second) // keeps running after the checkpoint
	if got := progressOf(t, s, "vm1"); got != 3500 {
		t.Fatalf("progress after the checkpoint = %d, want 3500", got)
	}
	if err := s.Crash(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	doms, _ := s.List(ctx)
	if len(doms) != 1 || doms[0].State != StateCrashed || doms[0].Progress != 3500 {
		t.Fatalf("after crash: %+v", doms)
	}
	if err := s.Unpause(ctx, "vm1"); !errors.Is(err, ErrDomainNotAlive) {
		t.Fatalf("unpause of a crashed domain: %v", err)
	}
	if err := s.Restore(ctx, img, RestoreOptions{}); !errors.Is(err, ErrDomainExists) {
		t.Fatalf("restore over the crashed domain: %v, want ErrDomainExists", err)
	}
	if err := s.Destroy(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(ctx, img, RestoreOptions{Paused: true}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // paused: no progress
	doms, _ = s.List(ctx)
	if len(doms) != 1 || doms[0].Progress != 2500 || doms[0].State != StatePaused || doms[0].ID != 2 {
		t.Fatalf("restored: %+v, want progress 2500, paused, new id 2", doms)
	}
	if err := s.Unpause(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(750 * time.Millisecond)
	if got := progressOf(t, s, "vm1"); got != 3250 {
		t.Fatalf("progress 0.75 s after unpause = %d, want 3250", got)
	}
}

func TestSimPauseFreezesProgress(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestSim(t)
	if err := s.Create(ctx, writeCfg(t, t.TempDir(), "a", 8)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	s.Pause(ctx, "a")
	s.Pause(ctx, "a") // idempotent: one Unpause undoes it
	clk.Advance(time.Hour)
	if got := progressOf(t, s, "a"); got != 1000 {
		t.Fatalf("paused progress %d, want 1000", got)
	}
	s.Unpause(ctx, "a")
	s.Unpause(ctx, "a")
	clk.Advance(time.Millisecond)
	if got := progressOf(t, s, "a"); got != 1001 {
		t.Fatalf("progress %d, want 1001", got)
	}
	// xl's own semantics: pauses nest, and unpausing a running domain fails.
	s.XLPause(ctx, "a")
	s.XLPause(ctx, "a")
	s.XLUnpause(ctx, "a")
	if d, _ := s.List(ctx); d[0].State != StatePaused {
		t.Fatalf("after pause, pause, unpause: %s, want still paused", d[0].State)
	}
	s.XLUnpause(ctx, "a")
	if err := s.XLUnpause(ctx, "a"); !errors.Is(err, ErrNotPaused) {
		t.Fatalf("XLUnpause of a running domain: %v", err)
	}
	// Progress is exact over many small steps (no rounding loss).
	before := progressOf(t, s, "a")
	for i := 0; i < 1000; i++ {
		clk.Advance(333 * time.Microsecond)
		s.Progress("a")
	}
	if got := progressOf(t, s, "a") - before; got != 333 {
		t.Fatalf("1000 steps of 333 µs gave %d units, want 333", got)
	}
}

// Like real Xen with a PV guest: a paused domain cannot be saved, and a
// save -p leaves the domain paused.
func TestSimSaveModes(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestSim(t)
	dir := t.TempDir()
	s.Create(ctx, writeCfg(t, dir, "a", 4))
	s.Pause(ctx, "a")
	err := s.Save(ctx, "a", filepath.Join(dir, "x.img"), SaveOptions{Mode: SaveKeepRunning})
	if !errors.Is(err, ErrGuestUnresponsive) {
		t.Fatalf("save of a paused domain: %v, want ErrGuestUnresponsive", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.img")); !os.IsNotExist(err) {
		t.Error("a failed save left a file")
	}
	s.Unpause(ctx, "a")
	clk.Advance(time.Second)
	if err := s.Save(ctx, "a", filepath.Join(dir, "p.img"), SaveOptions{Mode: SaveLeavePaused}); err != nil {
		t.Fatal(err)
	}
	doms, _ := s.List(ctx)
	if doms[0].State != StatePaused || doms[0].Flags != "--p---" {
		t.Fatalf("after save -p: %+v", doms[0])
	}
	s.Unpause(ctx, "a")
	if err := s.Save(ctx, "a", filepath.Join(dir, "s.img"), SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if doms, _ := s.List(ctx); len(doms) != 0 {
		t.Fatalf("after plain save the domain still exists: %+v", doms)
	}
	if err := s.Save(ctx, "a", filepath.Join(dir, "s.img"), SaveOptions{}); !errors.Is(err, ErrDomainNotFound) {
		t.Fatalf("save of a missing domain: %v", err)
	}
	if err := s.Save(ctx, "a", filepath.Join(dir, "s.img"), SaveOptions{Mode: 7}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("bad mode: %v", err)
	}
	// Restore under a second name while the original runs, as a
	// checkpoint test on one host does (xl restore cfg2 image).
	if err := s.Restore(ctx, filepath.Join(dir, "p.img"), RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(ctx, filepath.Join(dir, "p.img"), RestoreOptions{ConfigPath: writeCfg(t, dir, "b", 4)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(ctx, filepath.Join(dir, "p.img"), RestoreOptions{ConfigPath: writeCfg(t, dir, "c", 8)}); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("restore into a config of another memory size: %v", err)
	}
	doms, _ = s.List(ctx)
	if len(doms) != 2 || doms[0].Progress != 1000 || doms[1].Progress != 1000 || doms[0].UUID == doms[1].UUID {
		t.Fatalf("two restores of one image: %+v", doms)
	}
}

func TestSimMemoryAccounting(t *testing.T) {
	ctx := context.Background()
	s := &Sim{TotalMemoryMiB: 1000, Dom0MemoryMiB: 500}
	dir := t.TempDir()
	if err := s.Create(ctx, writeCfg(t, dir, "a", 300)); err != nil {
		t.Fatal(err)
	}
	hi, _ := s.HostInfo(ctx)
	if hi.TotalMemoryMiB != 1000 || hi.FreeMemoryMiB != 200 {
		t.Fatalf("host info %+v", hi)
	}
	if err := s.Create(ctx, writeCfg(t, dir, "b", 300)); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("overcommit: %v, want ErrNoMemory", err)
	}
	if err := s.Create(ctx, writeCfg(t, dir, "a", 1)); !errors.Is(err, ErrDomainExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	s.Destroy(ctx, "a")
	if hi, _ := s.HostInfo(ctx); hi.FreeMemoryMiB != 500 {
		t.Fatalf("after destroy: %+v", hi)
	}
	if err := s.Destroy(ctx, "a"); !errors.Is(err, ErrDomainNotFound) {
		t.Fatalf("destroy twice: %v", err)
	}
}

// Consecutive checkpoints differ in a realistic share of pages: a few
// percent after seconds, more after minutes, never all of them.
func TestSimDirtyPages(t *testing.T) {
	const pages = 16 << 20 / PageSize
	seed := seedOf("d1304f40-a14e-499c-ae9c-cea012b3d248")
	changed := func(p1, p2 uint64) float64 {
		n := 0
		for i := uint64(0); i < pages; i++ {
			if pageVersion(seed, i, p1) != pageVersion(seed, i, p2) {
				n++
			}
		}
		return float64(n) / pages
	}
	for _, tc := range []struct {
		p1, p2   uint64
		min, max float64
	}{
		{100_000, 100_000, 0, 0.001},   // same moment: only the counter page
		{100_000, 110_000, 0.05, 0.15}, // 10 s apart
		{100_000, 400_000, 0.25, 0.31}, // 5 minutes apart: hot and warm pages
		{0, 100_000_000, 0.29, 0.31},   // cold pages never change
	} {
		if f := changed(tc.p1, tc.p2); f < tc.min || f > tc.max {
			t.Errorf("progress %d -> %d: %.3f of pages changed, want %.2f..%.2f", tc.p1, tc.p2, f, tc.min, tc.max)
		}
	}
}

// Many goroutines on one Sim: -race checks the locking.
func TestSimConcurrent(t *testing.T) {
	ctx := context.Background()
	s := &Sim{}
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := "vm" + strconv.Itoa(i)
			if err := s.Create(ctx, writeCfg(t, dir, name, 4)); err != nil {
				t.Error(err)
				return
			}
			img := filepath.Join(dir, name+".img")
			for j := 0; j < 3; j++ {
				if err := s.Save(ctx, name, img, SaveOptions{Mode: SaveKeepRunning}); err != nil {
					t.Error(err)
				}
				s.List(ctx)
				s.Pause(ctx, name)
				s.Unpause(ctx, name)
			}
			s.Destroy(ctx, name)
			if err := s.Restore(ctx, img, RestoreOptions{}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if doms, _ := s.List(ctx); len(doms) != 8 {
		t.Fatalf("%d domains, want 8", len(doms))
	}
}

func TestSimContext(t *testing.T) {
	s := &Sim{}
	dir := t.TempDir()
	s.Create(context.Background(), writeCfg(t, dir, "a", 64))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	err := s.Save(ctx, "a", filepath.Join(dir, "a.img"), SaveOptions{Mode: SaveKeepRunning})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired save: %v", err)
	}
	if _, err := s.List(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("expired list: %v", err)
	}
}

// Export and Import carry a Sim across processes, as the fake xl does.
func TestSimExportImport(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestSim(t)
	s.Create(ctx, writeCfg(t, t.TempDir(), "a", 4))
	clk.Advance(time.Second)
	s.XLPause(ctx, "a")
	s.XLPause(ctx, "a")
	st := s.Export()
	s2 := &Sim{Now: clk.Now}
	if err := s2.Import(st); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	s2.XLUnpause(ctx, "a")
	if p := progressOf(t, s2, "a"); p != 1000 {
		t.Fatalf("progress %d after import (still paused once), want 1000", p)
	}
	s2.XLUnpause(ctx, "a")
	clk.Advance(time.Second)
	if p := progressOf(t, s2, "a"); p != 2000 {
		t.Fatalf("progress %d, want 2000", p)
	}
	st.Domains = append(st.Domains, st.Domains[0])
	if err := s2.Import(st); err == nil {
		t.Fatal("import of duplicate names succeeded")
	}
}
