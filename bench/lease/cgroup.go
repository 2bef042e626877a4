package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuRoot is where this machine mounts the cgroup v1 cpu controller.
const cpuRoot = "/sys/fs/cgroup/cpu"

// cfsPeriod is the CFS period of the quota: the kernel's default, so a
// throttled process waits at most one period minus its quota.
const cfsPeriod = 100 * time.Millisecond

// cpuQuota is a cgroup v1 cpu cgroup of our own with a CFS quota.
type cpuQuota struct{ dir string }

// errNoCgroup says why the quota conditions are skipped.
var errNoCgroup = errors.New("no CPU quota")

// cgroupPrefix names the bench's cgroups: <prefix><pid of the bench>.
const cgroupPrefix = "xenft-bench-lease-"

// newCPUQuota creates <cpuRoot>/<cgroupPrefix><our pid> limited to pct
// percent of one CPU.
func newCPUQuota(pct int) (*cpuQuota, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not root (cgroup v1 needs root to create a cgroup)", errNoCgroup)
	}
	if _, err := os.Stat(filepath.Join(cpuRoot, "cpu.cfs_quota_us")); err != nil {
		return nil, fmt.Errorf("%w: no cgroup v1 cpu controller at %s (%v)", errNoCgroup, cpuRoot, err)
	}
	removeStale()
	q := &cpuQuota{dir: filepath.Join(cpuRoot, cgroupPrefix+strconv.Itoa(os.Getpid()))}
	if err := os.Mkdir(q.dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoCgroup, err)
	}
	period := cfsPeriod.Microseconds()
	quota := period * int64(pct) / 100
	if err := errors.Join(q.write("cpu.cfs_period_us", period), q.write("cpu.cfs_quota_us", quota)); err != nil {
		return nil, errors.Join(fmt.Errorf("%w: %v", errNoCgroup, err), q.remove())
	}
	return q, nil
}

func (q *cpuQuota) write(file string, v int64) error {
	return os.WriteFile(filepath.Join(q.dir, file), []byte(strconv.FormatInt(v, 10)), 0o644)
}

// add moves a process (all its threads) into the cgroup.
func (q *cpuQuota) add(pid int) error { return q.write("cgroup.procs", int64(pid)) }

// throttling is the cgroup's cpu.stat: CFS periods with runnable tasks, how
// many of them ran out of quota, and the time its tasks waited for the next.
type throttling struct {
	Periods, Throttled int64
	Time               time.Duration
}

func (q *cpuQuota) stat() (throttling, error) {
	f, err := os.Open(filepath.Join(q.dir, "cpu.stat"))
	if err != nil {
		return throttling{}, err
	}
	defer f.Close()
	var t throttling
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "nr_periods":
			t.Periods = n
		case "nr_throttled":
			t.Throttled = n
		case "throttled_time":
			t.Time = time.Duration(n)
		}
	}
	return t, sc.Err()
}

// removeStale removes the cgroups of benches that are no longer running (a
// SIGKILLed bench cannot remove its own; its children died with it). A
// cgroup that still holds a process is left alone: rmdir refuses it.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(cpuRoot, cgroupPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), cgroupPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(d)
		}
	}
}

// remove deletes the cgroup; its process must have been reaped. The kernel
// may still count a just-reaped task for a moment, so it tries for a second.
func (q *cpuQuota) remove() error {
	deadline := time.Now().Add(time.Second)
	for {
		err := os.Remove(q.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", q.dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
