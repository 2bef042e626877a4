package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/xen/xentest"
)

// cluster of real processes around one embedded server: agents on the fake
// xl, supervisors and a detector, all configured through XENFT_* variables.
// The multi-process scenarios (host crash with the leader killed midway, and
// the rest of the chaos suite) live in e2e/ and run with make e2e.
type procCluster struct {
	t      *testing.T
	url    string
	dir    string
	fakeXL string
	bus    *events.Bus
	env    []string

	mu    sync.Mutex
	procs map[string]*exec.Cmd
}

func newProcCluster(t *testing.T) *procCluster {
	t.Helper()
	srv := eventstest.Server(t)
	bus := eventstest.Bus(t, srv)
	dir := t.TempDir()
	fake, err := xentest.BuildFakeXL(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := &procCluster{t: t, url: srv.ClientURL(), dir: dir, fakeXL: fake, bus: bus, procs: map[string]*exec.Cmd{}}
	c.env = []string{
		"XENFT_BUS_URLS=" + c.url,
		"XENFT_BUS_LEADER_TTL=2s", // the bucket's TTL: every role must agree
		"XENFT_STORE_DIR=" + filepath.Join(dir, "images"),
		"XENFT_LOG_LEVEL=info",
		// Short fencing so the test takes seconds; agents and supervisors agree.
		"XENFT_AGENT_RESTARTER_FENCE_SELF_TIMEOUT=3s",
		"XENFT_AGENT_RESTARTER_FENCE_RENEW_INTERVAL=500ms",
		"XENFT_AGENT_RESTARTER_FENCE_ACTION_TIMEOUT=1s",
		"XENFT_SUPERVISOR_POLICY_FENCE_SELF_TIMEOUT=3s",
		"XENFT_SUPERVISOR_POLICY_FENCE_MARGIN=2s",
		"XENFT_SUPERVISOR_CHECKPOINT_INTERVAL=0",
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *procCluster) xlEnv(host string) []string {
	return []string{"FAKEXL_STATE=" + filepath.Join(c.dir, "xl-"+host), "FAKEXL_HOST=" + host}
}

// start runs `xenft args...` as a process named name.
func (c *procCluster) start(name string, extraEnv []string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(xenftBin, args...)
	cmd.Env = append(append(append(os.Environ(), c.env...), extraEnv...), "XENFT_LOG_JSON=false")
	logf, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.procs[name] = cmd
	c.mu.Unlock()
}

func (c *procCluster) stopAll() {
	c.mu.Lock()
	procs := c.procs
	c.procs = map[string]*exec.Cmd{}
	c.mu.Unlock()
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for name, p := range procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.Process.Kill()
			<-done
			c.t.Errorf("%s did not stop on SIGTERM", name)
		}
	}
	if c.t.Failed() {
		for _, f := range []string{"sup-a", "sup-b", "n1", "n2", "n3", "n4", "det"} {
			if b, err := os.ReadFile(filepath.Join(c.dir, f+".log")); err == nil {
				c.t.Logf("--- %s.log (tail)\n%s", f, tail(string(b), 30))
			}
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
