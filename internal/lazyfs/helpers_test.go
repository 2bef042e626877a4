package lazyfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// mountT mounts a lazy file system over a fresh backing dir in a temporary
// directory; it is unmounted when the test ends. It skips the test only
// where FUSE cannot be had: no /dev/fuse, or mount(2) refused (EPERM: not
// root or no CAP_SYS_ADMIN; ENODEV: no fuse in the kernel).
func mountT(t testing.TB) (lfs *FS, backing, mnt string) {
	t.Helper()
	lfs, backing, mnt = mountNoCleanup(t)
	t.Cleanup(func() {
		if err := lfs.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return lfs, backing, mnt
}

// mountNoCleanup is mountT for a test that unmounts itself.
func mountNoCleanup(t testing.TB) (lfs *FS, backing, mnt string) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE is not available here: %v", err)
	}
	dir := t.TempDir()
	backing, mnt = filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "lazyfs", Level: hclog.Warn, Output: testWriter{t}})
	lfs, err := Mount(backing, mnt, WithLogger(log))
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENODEV) {
		t.Skipf("FUSE cannot be mounted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return lfs, backing, mnt
}

// mounted reports whether a file system is mounted at dir.
func mounted(t testing.TB, dir string) bool {
	t.Helper()
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// writeFile writes data to a new or truncated file at path, fsyncing it
// if sync.
func writeFile(t testing.TB, path string, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// wantContent fails unless the file at path holds want, by a read and by
// its size.
func wantContent(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", path, clip(got), clip(want))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(want)) {
		t.Errorf("%s has size %d, want %d", path, st.Size(), len(want))
	}
}

// waitFor waits until cond holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "..."...)
	}
	return b
}
