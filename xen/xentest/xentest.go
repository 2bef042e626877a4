// Package xentest serves tests and benchmarks outside package xen that run
// the production xl driver against the fake xl (xen/cmd/fakexl): it builds
// the fake and reads a domain's simulated workload through it.
package xentest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xenft/xenft/xen"
)

// BuildFakeXL builds the fake xl into dir and returns its path.
func BuildFakeXL(dir string) (string, error) {
	bin := filepath.Join(dir, "xl")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/xenft/xenft/xen/cmd/fakexl").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build fake xl: %v\n%s", err, out)
	}
	return bin, nil
}

// Progress reads a domain's workload counter with the fake xl's test-only
// verb sim-progress (real xl cannot see inside a guest).
func Progress(x *xen.XL, vm string) (uint64, error) {
	cmd := exec.Command(x.Path, "sim-progress", vm)
	cmd.Env = append(os.Environ(), x.Env...)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("sim-progress %s: %w", vm, err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
}

// RunWithFakeXL is a TestMain's body for a package whose tests exec the fake
// xl: it builds it into a temporary directory, sets *path, runs the tests
// and removes the directory; it returns the exit code for os.Exit. A build
// that fails ends the run with a message and code 1.
func RunWithFakeXL(m *testing.M, path *string) int {
	dir, err := os.MkdirTemp("", "xenft-fakexl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *path, err = BuildFakeXL(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
