package lazyfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Each test names the rule of doc.go it checks.

// Rule: fsync makes a file's data durable; what was written after the last
// fsync is lost, and the file is back to its synced size.
func TestPowerLoss_KeepsSyncedDropsUnsynced(t *testing.T) {
	lfs, backing, mnt := mountT(t)
	p := filepath.Join(mnt, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("synced")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(" and then lost")); err != nil {
		t.Fatal(err)
	}
	// Visible through the mount before the loss, also to another reader.
	wantContent(t, p, []byte("synced and then lost"))
	wantContent(t, filepath.Join(backing, "f"), []byte("synced"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if s := lfs.Stats(); s.Unsynced != (Loss{Files: 1, Writes: 1, Bytes: 14}) || s.Fsyncs != 1 || s.Writes != 2 {
		t.Errorf("stats before the loss: %+v", s)
	}
	lost := lfs.PowerLoss()
	if lost != (Loss{Files: 1, Writes: 1, Bytes: 14}) {
		t.Errorf("PowerLoss lost %+v, want one file, one write of 14 bytes", lost)
	}
	wantContent(t, p, []byte("synced"))
	if s := lfs.Stats(); s.LastPowerLoss != lost || s.PowerLosses != 1 || s.Unsynced != (Loss{}) {
		t.Errorf("stats after the loss: %+v", s)
	}
}

// Rule: a power loss undoes unsynced overwrites, extensions and
// truncations alike.
func TestPowerLoss_UndoesOverwriteAndTruncate(t *testing.T) {
	lfs, _, mnt := mountT(t)
	p := filepath.Join(mnt, "f")
	synced := bytes.Repeat([]byte("0123456789"), 1000) // spans pages
	writeFile(t, p, synced, true)

	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("XXXX"), 4094); err != nil { // across a page boundary
		t.Fatal(err)
	}
	if err := f.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), 9000); err != nil { // a hole from 5000
		t.Fatal(err)
	}
	want := append([]byte{}, synced[:5000]...)
	copy(want[4094:], "XXXX")
	want = append(want, make([]byte, 4000)...)
	want = append(want, "tail"...)
	wantContent(t, p, want)

	lfs.PowerLoss()
	wantContent(t, p, synced)
	if err := os.Truncate(p, 10); err != nil { // truncate(2), by path
		t.Fatal(err)
	}
	wantContent(t, p, synced[:10])
	lfs.PowerLoss()
	wantContent(t, p, synced)
}

// Rule: close does not make data durable; reopening shows the data (it is
// in the "page cache") until a power loss.
func TestPowerLoss_CloseIsNotSync(t *testing.T) {
	lfs, _, mnt := mountT(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("old"), true)
	writeFile(t, p, []byte("new content"), false) // O_TRUNC, write, close
	wantContent(t, p, []byte("new content"))
	lfs.PowerLoss()
	wantContent(t, p, []byte("old"))
}

// Rule: metadata passes through at once; a file created and never synced
// survives a power loss, empty.
func TestPowerLoss_CreatedNeverSyncedIsEmpty(t *testing.T) {
	lfs, backing, mnt := mountT(t)
	if err := os.MkdirAll(filepath.Join(mnt, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(mnt, "d", "e", "new")
	writeFile(t, p, []byte("never synced"), false)
	wantContent(t, filepath.Join(backing, "d", "e", "new"), nil)
	lfs.PowerLoss()
	wantContent(t, p, nil)
}

// Rule: rename passes through at once and carries the file's unsynced data
// with it; the data is lost at a power loss unless synced, under either
// name.
func TestPowerLoss_RenamePassesThrough(t *testing.T) {
	lfs, backing, mnt := mountT(t)
	// The atomic-write idiom: write a temporary file, fsync, rename over.
	writeFile(t, filepath.Join(mnt, "meta"), []byte("v1"), true)
	writeFile(t, filepath.Join(mnt, "meta.tmp"), []byte("v2"), true)
	if err := os.Rename(filepath.Join(mnt, "meta.tmp"), filepath.Join(mnt, "meta")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(backing, "meta"), []byte("v2"))
	if _, err := os.Stat(filepath.Join(backing, "meta.tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("meta.tmp is still in the backing dir: %v", err)
	}

	// Without the fsync the rename survives, the data does not.
	writeFile(t, filepath.Join(mnt, "meta.tmp"), []byte("v3"), false)
	if err := os.Rename(filepath.Join(mnt, "meta.tmp"), filepath.Join(mnt, "meta")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(mnt, "meta"), []byte("v3"))
	if s := lfs.Stats(); s.Unsynced.Files != 1 {
		t.Errorf("unsynced before the loss: %+v, want the renamed file", s.Unsynced)
	}
	lfs.PowerLoss()
	wantContent(t, filepath.Join(mnt, "meta"), nil)
}

// Rule: fdatasync, and writes through an O_SYNC or O_DSYNC descriptor,
// are durable as fsync is.
func TestPowerLoss_FdatasyncAndOSync(t *testing.T) {
	lfs, _, mnt := mountT(t)
	p := filepath.Join(mnt, "fdatasync")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_SYNC, unix.O_DSYNC} {
		p := filepath.Join(mnt, "osync")
		g, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|flag, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Write([]byte("sync write")); err != nil {
			t.Fatal(err)
		}
		lfs.PowerLoss() // before close: the write is durable on its own
		g.Close()
		wantContent(t, p, []byte("sync write"))
	}
	wantContent(t, p, []byte("data"))
}

// Rule: the unsynced data of a file that is deleted goes with it (it is
// not counted as lost, and not kept in memory).
func TestPowerLoss_UnlinkedFileIsForgotten(t *testing.T) {
	lfs, _, mnt := mountT(t)
	p := filepath.Join(mnt, "gone")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("scratch")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	// Still readable through the open descriptor, as on any file system.
	buf := make([]byte, 7)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "scratch" {
		t.Errorf("read of the unlinked file: %q, %v", buf, err)
	}
	if s := lfs.Stats(); s.Unsynced.Files != 1 {
		t.Errorf("unsynced while open: %+v", s.Unsynced)
	}
	f.Close()
	// The kernel releases the file after close(2) returns.
	waitFor(t, "the unlinked file's data to be forgotten after close", func() bool {
		return lfs.Stats().Unsynced.Files == 0
	})
}

// Rule: Sync writes everything back, as sync(2) would.
func TestSync_WritesEverythingBack(t *testing.T) {
	lfs, backing, mnt := mountT(t)
	writeFile(t, filepath.Join(mnt, "a"), []byte("aaa"), false)
	writeFile(t, filepath.Join(mnt, "b"), []byte("bbb"), false)
	if err := lfs.Sync(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(backing, "a"), []byte("aaa"))
	wantContent(t, filepath.Join(backing, "b"), []byte("bbb"))
	if lost := lfs.PowerLoss(); lost != (Loss{}) {
		t.Errorf("a power loss after Sync lost %+v", lost)
	}
}

// Rule: after a power loss nothing the kernel cached serves the old data:
// a descriptor left open, a new one, and stat all see the backing file.
func TestPowerLoss_NoStaleKernelCache(t *testing.T) {
	lfs, _, mnt := mountT(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("short"), true)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	long := bytes.Repeat([]byte("L"), 3*pageSize)
	if _, err := f.WriteAt(long, 0); err != nil {
		t.Fatal(err)
	}
	// Read it, so that a page cache would hold it.
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, long) {
		t.Fatalf("before the loss: %d bytes, %v", len(got), err)
	}
	lfs.PowerLoss()
	wantContent(t, p, []byte("short"))
	buf := make([]byte, len(long))
	n, _ := f.ReadAt(buf, 0)
	if string(buf[:n]) != "short" {
		t.Errorf("the descriptor open across the loss reads %q", clip(buf[:n]))
	}
	if st, err := f.Stat(); err != nil || st.Size() != 5 {
		t.Errorf("fstat after the loss: %v, %v", st.Size(), err)
	}
	// O_APPEND takes its offset from the size the kernel holds.
	g, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Write([]byte("+appended")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, []byte("short+appended"))
}

// Rule: an extending fallocate is a truncation, kept in the overlay; lseek
// finds data up to the size and a hole at it.
func TestFallocateAndSeek(t *testing.T) {
	lfs, _, mnt := mountT(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("abc"), true)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 2*pageSize); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 4*pageSize); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, append([]byte("abc"), make([]byte, 2*pageSize-3)...))
	if off, err := unix.Seek(int(f.Fd()), 1, unix.SEEK_DATA); err != nil || off != 1 {
		t.Errorf("SEEK_DATA from 1: %d, %v", off, err)
	}
	if off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE); err != nil || off != 2*pageSize {
		t.Errorf("SEEK_HOLE from 0: %d, %v, want %d", off, err, 2*pageSize)
	}
	if off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_END); err != nil || off != 2*pageSize {
		t.Errorf("SEEK_END: %d, %v, want %d", off, err, 2*pageSize)
	}
	if lost := lfs.PowerLoss(); lost != (Loss{Files: 1, Truncates: 1}) {
		t.Errorf("the power loss dropped %+v, want one extension", lost)
	}
	wantContent(t, p, []byte("abc"))
}

// Rule: Unmount writes back what is unsynced, as a clean umount does.
func TestUnmount_WritesBack(t *testing.T) {
	lfs, backing, mnt := mountNoCleanup(t)
	writeFile(t, filepath.Join(mnt, "f"), []byte("kept by a clean unmount"), false)
	if err := lfs.Unmount(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(backing, "f"), []byte("kept by a clean unmount"))
}
