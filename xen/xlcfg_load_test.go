package xen

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The path of a config may come from a command on the bus: LoadConfig reads
// only a regular file of bounded size, and never blocks on opening it.
func TestLoadConfigReadsOnlyABoundedRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.cfg")
	if err := os.WriteFile(big, []byte("name = \"vm1\"\n"+strings.Repeat("#\n", MaxConfigSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, "not a regular file"},
		{dir, "not a regular file"},
		{"/dev/zero", "not a regular file"},
		{big, "at most 1048576"},
		{filepath.Join(dir, "missing.cfg"), "no such file"},
	} {
		done := make(chan error, 1)
		go func() { _, err := LoadConfig(c.path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("LoadConfig(%s) = %v, want %q", c.path, err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("LoadConfig(%s) still blocked after 10 s", c.path)
		}
	}
	ok := filepath.Join(dir, "vm1.cfg")
	if err := os.WriteFile(ok, []byte("name = \"vm1\"\nmemory = 64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadConfig(ok); err != nil || cfg.Name != "vm1" {
		t.Fatalf("LoadConfig of a plain config: %+v, %v", cfg, err)
	}
}
