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
