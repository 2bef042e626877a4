//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuRoot is the cgroup v1 cpu controller's mount on this machine.
const cpuRoot = "/sys/fs/cgroup/cpu"

// cpuQuota starves processes of CPU with a cgroup v1 CFS quota: they get
// quota of every 100 ms period, as a dom0 does whose neighbours take the
// rest. The xl calls an agent starts meanwhile inherit the group.
type cpuQuota struct {
	dir  string
	home string // the group the processes came from, to go back to
}

// cgroupsUsable reports why the cpu controller cannot be used here, or "".
func cgroupsUsable() string {
	if _, err := os.Stat(filepath.Join(cpuRoot, "cpu.cfs_quota_us")); err != nil {
		return "no cgroup v1 cpu controller with CFS bandwidth at " + cpuRoot
	}
	if err := syscall.Access(cpuRoot, 2); err != nil { // W_OK
		return "cannot create groups under " + cpuRoot + ": " + err.Error()
	}
	return ""
}

// starve creates a group named name with quota per period, moves pids into
// it, and registers its removal with the test; end it with release.
func starve(t *testing.T, name string, quota time.Duration, pids ...int) (*cpuQuota, error) {
	home, err := cpuGroupOf(os.Getpid())
	if err != nil {
		return nil, err
	}
	q := &cpuQuota{dir: filepath.Join(cpuRoot, name), home: filepath.Join(cpuRoot, home)}
	if err := os.Mkdir(q.dir, 0o755); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := q.release(); err != nil {
			t.Errorf("cgroup %s: %v", q.dir, err)
		}
	})
	if err := write(filepath.Join(q.dir, "cpu.cfs_period_us"), "100000"); err != nil {
		return q, err
	}
	if err := write(filepath.Join(q.dir, "cpu.cfs_quota_us"), strconv.Itoa(int(quota/time.Microsecond))); err != nil {
		return q, err
	}
	for _, pid := range pids {
		if err := write(filepath.Join(q.dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil && !errors.Is(err, syscall.ESRCH) {
			return q, fmt.Errorf("move %d into %s: %w", pid, q.dir, err)
		}
	}
	return q, nil
}

// release moves every process of the group back home and removes it; it
// may be called again.
func (q *cpuQuota) release() error {
	if _, err := os.Stat(q.dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_ = write(filepath.Join(q.dir, "cpu.cfs_quota_us"), "-1")
	// A process forked while we move the others lands in the group:
	// move until it is empty, a bounded number of times.
	var err error
	for range 50 {
		b, rerr := os.ReadFile(filepath.Join(q.dir, "cgroup.procs"))
		if rerr != nil {
			return rerr
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			if err = syscall.Rmdir(q.dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
		for _, pid := range pids {
			if werr := write(filepath.Join(q.home, "cgroup.procs"), pid); werr != nil && !errors.Is(werr, syscall.ESRCH) {
				err = werr
			}
		}
		time.Sleep(20 * time.Millisecond) // let exiting processes leave the group
	}
	return fmt.Errorf("not emptied: %v", err)
}

// removeStaleGroups removes the groups of soak runs whose test process is
// gone (killed before its cleanup): their processes died with it, so the
// groups are empty.
func removeStaleGroups() []string {
	ents, _ := os.ReadDir(cpuRoot)
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "xenft-soak-")
		if !e.IsDir() || !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test still runs
		}
		if syscall.Rmdir(filepath.Join(cpuRoot, e.Name())) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// cpuGroupOf reads the cpu cgroup of pid, relative to the controller root.
func cpuGroupOf(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "cpu" {
				return f[2], nil
			}
		}
	}
	return "", fmt.Errorf("pid %d is in no cpu cgroup", pid)
}

func write(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

// cpuHog is n processes that spin until stopped, as the other builds on a
// shared machine do.
type cpuHog struct{ procs []*exec.Cmd }

// startHog starts n spinning shells and registers their end with the test.
func startHog(t *testing.T, n int) (*cpuHog, error) {
	h := &cpuHog{}
	t.Cleanup(h.stop)
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			h.stop()
			return nil, err
		}
		h.procs = append(h.procs, cmd)
	}
	return h, nil
}

// stop kills and reaps the spinners; it may be called again.
func (h *cpuHog) stop() {
	for _, cmd := range h.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	h.procs = nil
}
