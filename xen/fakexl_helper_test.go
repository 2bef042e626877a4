package xen

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The fake xl is built once per test binary, into a temporary directory
// that TestMain removes.
var (
	fakeXLOnce sync.Once
	fakeXLDir  string
	fakeXLBin  string
	fakeXLErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeXLDir != "" {
		os.RemoveAll(fakeXLDir)
	}
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// fakeXLPath builds ./cmd/fakexl (named xl, as an agent would find it).
func fakeXLPath(t testing.TB) string {
	t.Helper()
	fakeXLOnce.Do(func() {
		fakeXLDir, fakeXLErr = os.MkdirTemp("", "fakexl-")
		if fakeXLErr != nil {
			return
		}
		fakeXLBin = filepath.Join(fakeXLDir, "xl")
		out, err := exec.Command(goTool(), "build", "-o", fakeXLBin, "./cmd/fakexl").CombinedOutput()
		if err != nil {
			fakeXLErr = errors.New("go build ./cmd/fakexl: " + err.Error() + "\n" + string(out))
		}
	})
	if fakeXLErr != nil {
		t.Fatal(fakeXLErr)
	}
	return fakeXLBin
}

// fakeHost is one simulated Xen host behind the fake xl: the production
// driver pointed at it, and its state directory.
type fakeHost struct {
	XL    *XL
	State string
	Dir   string // for configs and images
	bin   string
}

func newFakeHost(t testing.TB) *fakeHost {
	t.Helper()
	bin := fakeXLPath(t)
	state := t.TempDir()
	return &fakeHost{
		// A short suspend timeout keeps the faithful 60 s wait out of tests.
		XL:    &XL{Path: bin, Env: []string{"FAKEXL_STATE=" + state, "FAKEXL_SUSPEND_TIMEOUT=200ms"}},
		State: state,
		Dir:   t.TempDir(),
		bin:   bin,
	}
}

// raw runs the fake xl directly, as a person at dom0's shell would.
func (h *fakeHost) raw(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(os.Environ(), h.XL.Env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// progress reads a domain's workload counter through the fake's test verb.
func (h *fakeHost) progress(t testing.TB, dom string) uint64 {
	t.Helper()
	out, errOut, code := h.raw(t, "sim-progress", dom)
	if code != 0 {
		t.Fatalf("sim-progress %s: %s", dom, errOut)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fault arms a fault switch for the next call of verb.
func (h *fakeHost) fault(t testing.TB, verb, mode string) {
	t.Helper()
	os.MkdirAll(filepath.Join(h.State, "faults"), 0o755)
	if err := os.WriteFile(filepath.Join(h.State, "faults", verb), []byte(mode), 0o644); err != nil {
		t.Fatal(err)
	}
}

// processGone reports whether pid has exited (a zombie waiting for a
// reaper counts: it runs no more code).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}
