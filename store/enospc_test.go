package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/xenft/xenft/store"
)

// fullDisk is a file that accepts limit bytes and then fails with ENOSPC. It
// holds the file rather than embedding it, so io.Copy cannot bypass Write
// through *os.File's ReadFrom.
type fullDisk struct {
	f     *os.File
	limit int
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if len(p) > d.limit {
		n, _ := d.f.Write(p[:d.limit])
		d.limit = 0
		return n, syscall.ENOSPC
	}
	d.limit -= len(p)
	return d.f.Write(p)
}

func (d *fullDisk) Sync() error  { return d.f.Sync() }
func (d *fullDisk) Close() error { return d.f.Close() }

func TestDirInjectedENOSPC(t *testing.T) {
	root := t.TempDir()
	s, _ := store.NewDir(root)
	s.SetCreate(func(name string) (store.WriteSyncCloser, error) {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return nil, err
		}
		return &fullDisk{f: f, limit: 1 << 20}, nil
	})
	_, err := s.Put(context.Background(), "g/1/vm.img", bytes.NewReader(randomImage(3<<20, 5)))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put: %v, want ENOSPC", err)
	}
	assertEmpty(t, s, root)
}
