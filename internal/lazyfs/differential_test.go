package lazyfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// twin is one file through the mount and the same file in a plain
// directory, with what the plain one held at the mount's last fsync.
type twin struct {
	name        string
	lazy, plain *os.File
	synced      []byte
}

// TestDifferential_MountMatchesPlainFile runs the same random writes,
// truncations, fsyncs, reopens, reads and stats on files through the mount
// and on plain files, comparing every read and size; a PowerLoss at the end
// must bring each mounted file back to its content at its last fsync.
// Fixed seed, bounded count.
func TestDifferential_MountMatchesPlainFile(t *testing.T) {
	lfs, _, mnt := mountT(t)
	plainDir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	open := func(tw *twin) {
		var err error
		if tw.lazy, err = os.OpenFile(filepath.Join(mnt, tw.name), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
			t.Fatal(err)
		}
		if tw.plain, err = os.OpenFile(filepath.Join(plainDir, tw.name), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	twins := []*twin{{name: "a"}, {name: "b"}}
	for _, tw := range twins {
		open(tw)
	}
	t.Cleanup(func() { // before the unmount, also when a step fails
		for _, tw := range twins {
			tw.lazy.Close()
			tw.plain.Close()
		}
	})
	const span = 5*pageSize + 17
	for step := range 1500 {
		tw := twins[rng.IntN(len(twins))]
		switch op := rng.IntN(20); {
		case op < 8:
			p := randBytes(rng, 1+rng.IntN(3*pageSize))
			off := rng.Int64N(span)
			for _, f := range []*os.File{tw.lazy, tw.plain} {
				if _, err := f.WriteAt(p, off); err != nil {
					t.Fatalf("step %d: write %d at %d to %s: %v", step, len(p), off, f.Name(), err)
				}
			}
		case op < 11:
			size := rng.Int64N(span)
			for _, f := range []*os.File{tw.lazy, tw.plain} {
				if err := f.Truncate(size); err != nil {
					t.Fatalf("step %d: truncate %s to %d: %v", step, f.Name(), size, err)
				}
			}
		case op < 12:
			if err := tw.lazy.Sync(); err != nil {
				t.Fatalf("step %d: fsync: %v", step, err)
			}
			var err error
			if tw.synced, err = os.ReadFile(tw.plain.Name()); err != nil {
				t.Fatal(err)
			}
		case op < 13:
			tw.lazy.Close()
			tw.plain.Close()
			open(tw)
		case op < 17:
			off := rng.Int64N(span + pageSize)
			n := rng.IntN(3 * pageSize)
			got, want := make([]byte, n), make([]byte, n)
			gn, _ := tw.lazy.ReadAt(got, off)
			wn, _ := tw.plain.ReadAt(want, off)
			if !bytes.Equal(got[:gn], want[:wn]) {
				t.Fatalf("step %d: read %d at %d of %s: got %d bytes, want %d, or content differs", step, n, off, tw.name, gn, wn)
			}
		default:
			gs, err := tw.lazy.Stat()
			if err != nil {
				t.Fatal(err)
			}
			ws, err := tw.plain.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if gs.Size() != ws.Size() {
				t.Fatalf("step %d: %s has size %d through the mount, %d plain", step, tw.name, gs.Size(), ws.Size())
			}
		}
	}
	for _, tw := range twins {
		want, err := os.ReadFile(tw.plain.Name())
		if err != nil {
			t.Fatal(err)
		}
		wantContent(t, tw.lazy.Name(), want)
	}
	lost := lfs.PowerLoss()
	t.Logf("the power loss dropped %+v", lost)
	for _, tw := range twins {
		wantContent(t, tw.lazy.Name(), tw.synced)
	}
}

// TestUnmount_StopsEveryGoroutine checks that Unmount stops what Mount
// started, and that a second Unmount is harmless.
func TestUnmount_StopsEveryGoroutine(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE is not available here: %v", err)
	}
	before := runtime.NumGoroutine()
	// A sub-test's mount is unmounted by its cleanup when it ends.
	t.Run("use", func(t *testing.T) {
		lfs, _, mnt := mountT(t)
		writeFile(t, filepath.Join(mnt, "f"), []byte("x"), false)
		wantContent(t, filepath.Join(mnt, "f"), []byte("x"))
		if err := lfs.Unmount(); err != nil {
			t.Fatal(err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Unmount, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnmount_AbortsWhenAFileIsOpen checks that Unmount does not wait for
// a file that is never closed: it aborts the connection and says so, and
// the file fails from then on.
func TestUnmount_AbortsWhenAFileIsOpen(t *testing.T) {
	lfs, _, mnt := mountNoCleanup(t)
	f, err := os.Create(filepath.Join(mnt, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lfs.Unmount(); err == nil {
		t.Error("Unmount with a file open returned no error")
	} else {
		t.Logf("Unmount with a file open: %v", err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("a write after the abort succeeded")
	}
	if mounted(t, mnt) {
		t.Errorf("%s is still mounted", mnt)
	}
	if err := lfs.Unmount(); err == nil {
		t.Error("a second Unmount forgot the first one's error")
	}
}

// TestStat_NeverBehindConcurrentFsync stats a file while another goroutine
// appends to it and fsyncs after every append: no stat may report less than
// what was written before it began (a stat that raced a write-back could
// take the backing file's old size after the overlay was gone).
func TestStat_NeverBehindConcurrentFsync(t *testing.T) {
	_, _, mnt := mountT(t)
	p := filepath.Join(mnt, "log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		record := bytes.Repeat([]byte("r"), 100)
		for range 1000 {
			if _, err := f.Write(record); err != nil {
				t.Error(err)
				return
			}
			written.Add(int64(len(record)))
			if err := f.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	stats := 0
	defer func() { <-done }() // the writer stops on its own; f closes after it
	for {
		select {
		case <-done:
			t.Logf("%d stats", stats)
			return
		default:
		}
		before := written.Load()
		st, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			return
		}
		if st.Size() < before {
			t.Errorf("stat says %d bytes, %d were written before it", st.Size(), before)
			return
		}
		stats++
	}
}
