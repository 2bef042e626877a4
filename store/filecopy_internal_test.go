package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A source file truncated under the copy faults on its mapped pages; the
// copy must fail with a clear error, not crash the agent.
func TestReadingATruncatedMappedSourceIsAnErrorNotACrash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "spooled.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, 1<<20, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	var sink byte
	err = readMapped(func() { sink = m[len(m)-1] })
	if !errors.Is(err, errSourceChanged) {
		t.Fatalf("reading a truncated mapping: %v (read %d), want errSourceChanged", err, sink)
	}
}

// Where the kernel declines to copy (another file system type, an old
// kernel), the range is written from the mapping: the same bytes land.
func TestCopyRangeWritesFromTheMappingWhenTheKernelCannotCopy(t *testing.T) {
	dir := t.TempDir()
	want := []byte("0123456789abcdef")
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Write(want); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, kernel := range []bool{true, false} {
		if err := dst.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		k := kernel
		for off := 0; off < len(want); {
			n, err := copyRange(dst, src, want, off, min(off+5, len(want)), &k)
			if err != nil {
				t.Fatalf("kernel=%v: %v", kernel, err)
			}
			off += n
		}
		got, err := os.ReadFile(dst.Name())
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("kernel=%v: copied %q, want %q", kernel, got, want)
		}
	}
}
