package inventory_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/xentest"
)

// fakeXLPath is the fake xl built once for the package's tests.
var fakeXLPath string

func TestMain(m *testing.M) { os.Exit(xentest.RunWithFakeXL(m, &fakeXLPath)) }

// fakeHost is one host on the fake xl, exec'd as the real one is.
type fakeHost struct {
	xl    *xen.XL
	state string
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	state := filepath.Join(t.TempDir(), "xl")
	return &fakeHost{xl: &xen.XL{Path: fakeXLPath, Env: []string{"FAKEXL_STATE=" + state, "FAKEXL_HOST=n1"}}, state: state}
}

// boot creates a pv guest of mib MiB.
func (h *fakeHost) boot(t *testing.T, name string, mib int) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), name+".cfg")
	body := fmt.Sprintf("name = %q\ntype = \"pv\"\nmemory = %d\nvcpus = 1\n", name, mib)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.xl.Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

// fault switches on a fault ("fail" or "hang") for the next call of verb.
func (h *fakeHost) fault(t *testing.T, verb, what string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(h.state, "faults"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.state, "faults", verb), []byte(what), 0o644); err != nil {
		t.Fatal(err)
	}
}
