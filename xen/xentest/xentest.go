// Package xentest serves tests and benchmarks outside package xen that run
// the production xl driver against the fake xl (xen/cmd/fakexl): it builds
// the fake, starts simulated hosts on it, writes guest configs, switches
// on faults and reads a domain's simulated workload through it. (Package
// xen's own tests cannot import it: it imports xen.)
package xentest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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

// fakeXL is the fake xl RunWithFakeXL built for this test binary.
var fakeXL string

// RunWithFakeXL is a TestMain's body for a package whose tests exec the fake
// xl: it builds it into a temporary directory, runs the tests and removes
// the directory; it returns the exit code for os.Exit. A build that fails
// ends the run with a message and code 1. Tests reach the fake through
// FakeXL and NewFakeHost.
func RunWithFakeXL(m *testing.M) int {
	dir, err := os.MkdirTemp("", "xenft-fakexl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if fakeXL, err = BuildFakeXL(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// FakeXL is the path of the fake xl RunWithFakeXL built.
func FakeXL(t testing.TB) string {
	t.Helper()
	if fakeXL == "" {
		t.Fatal("xentest: no fake xl: the package's TestMain must return xentest.RunWithFakeXL(m)")
	}
	return fakeXL
}

// FakeHost is one simulated Xen host behind the fake xl: the production
// driver exec'ing the fake as it would the real xl, and the fake's state.
type FakeHost struct {
	XL    *xen.XL
	State string // FAKEXL_STATE: the host's domains and fault switches
	// CallLog is FAKEXL_CALLS: every xl invocation on this host, one JSON
	// array of its arguments a line (see Calls).
	CallLog string
}

// NewFakeHost is a host named name with no domains, its state in a
// temporary directory of t's; env adds settings of the fake, such as
// FAKEXL_SUSPEND_TIMEOUT=2s.
func NewFakeHost(t testing.TB, name string, env ...string) *FakeHost {
	t.Helper()
	state := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls.jsonl")
	return &FakeHost{
		XL:      &xen.XL{Path: FakeXL(t), Env: append([]string{"FAKEXL_STATE=" + state, "FAKEXL_HOST=" + name, "FAKEXL_CALLS=" + calls}, env...)},
		State:   state,
		CallLog: calls,
	}
}

// Calls is every xl invocation on h so far, oldest first, each as its
// arguments (["list", "-l"], ["destroy", "vm1"]).
func (h *FakeHost) Calls(t testing.TB) [][]string {
	t.Helper()
	data, err := os.ReadFile(h.CallLog)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		var args []string
		if err := json.Unmarshal([]byte(line), &args); err != nil {
			t.Fatalf("fake xl call log %s: line %q: %v", h.CallLog, line, err)
		}
		calls = append(calls, args)
	}
	return calls
}

// Boot creates a pv guest vm of memMiB on h from a config WriteConfig
// writes.
func (h *FakeHost) Boot(t testing.TB, vm string, memMiB int) {
	t.Helper()
	if err := h.XL.Create(context.Background(), WriteConfig(t, t.TempDir(), vm, memMiB)); err != nil {
		t.Fatalf("create %s: %v", vm, err)
	}
}

// Fault switches on a fault ("fail" or "hang") for the next call of verb.
func (h *FakeHost) Fault(t testing.TB, verb, what string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(h.State, "faults"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.State, "faults", verb), []byte(what), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteConfig writes the xl config of a one-vcpu pv guest vm of memMiB into
// dir and returns its path; the sim and the fake xl both boot it.
func WriteConfig(t testing.TB, dir, vm string, memMiB int) string {
	t.Helper()
	p := filepath.Join(dir, vm+".cfg")
	body := fmt.Sprintf("name = %q\ntype = \"pv\"\nkernel = \"/guest/vmlinuz\"\nmemory = %d\nvcpus = 1\n", vm, memMiB)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
