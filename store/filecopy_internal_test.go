package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A source file truncated under the copy is an error naming the change,
// whether the hasher or the kernel copy meets the new end first.
func TestASourceTruncatedUnderTheCopyIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spooled.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.Truncate(p, 1<<19); err != nil {
		t.Fatal(err)
	}
	if err := hashRange(sha256.New(), src, make([]byte, 4096), 0, 1<<20); !errors.Is(err, errSourceChanged) {
		t.Fatalf("hashing past the new end: %v, want errSourceChanged", err)
	}
	dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if n, err := copyRange(dst, src, 1<<19, 1<<20); n != 0 || err != nil {
		t.Fatalf("kernel copy from the new end: %d, %v; want 0 bytes and no error (the caller's cue)", n, err)
	}
}

// Where the kernel declines to copy between two files (here: from a memfd,
// on tmpfs, to a file on another file system type), hashedFileCopy writes
// nothing and hands the copy back, so Put takes the user-space path. On a
// kernel that copies across file systems it must copy correctly instead.
func TestHashedFileCopyHandsBackWhatTheKernelCannotCopy(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	fd, err := unix.MemfdCreate("xenft-test-src", 0)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	src := os.NewFile(uintptr(fd), "memfd")
	defer src.Close()
	if _, err := src.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	n, sum, ok, err := hashedFileCopy(t.Context(), dst, src)
	got, rerr := os.ReadFile(dst.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !ok {
		if n != 0 || err != nil || len(got) != 0 {
			t.Fatalf("declined copy: n=%d err=%v, %d bytes written; want nothing done", n, err, len(got))
		}
		t.Log("the kernel declined the cross-file-system copy, as Linux >= 5.19 does")
		// What Put then does: the user-space path, from the same source.
		n, sum, err = copyAndHash(t.Context(), dst, src)
		if got, rerr = os.ReadFile(dst.Name()); rerr != nil {
			t.Fatal(rerr)
		}
	}
	h := sha256.Sum256(want)
	if err != nil || n != int64(len(want)) || sum != hex.EncodeToString(h[:]) || !bytes.Equal(got, want) {
		t.Fatalf("copy: n=%d sum=%s err=%v, bytes equal %v", n, sum, err, bytes.Equal(got, want))
	}
}
