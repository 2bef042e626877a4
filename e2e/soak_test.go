//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The soak lane (make soak, docs/soak.md): the e2e cluster runs for SOAK
// while a seeded random loop injects faults a healthy cluster must ride
// out (CPU starvation, a CPU hog, a frozen agent, a slow or cut network,
// a stalled disk, NATS servers restarted) and real failures it must
// recover from (host crashes); a checker watches every second that each
// VM runs exactly once, that no healthy host is fenced, and that every
// crash is recovered from the latest consistent checkpoint.
//
//	SOAK=30m           how long faults are injected (required: unset, the test is skipped)
//	SOAK_TIMING=demo   the e2e's short fence window; default: the product's defaults
//	SOAK_SEED=n        replays a run's choices (printed at the start)
//	SOAK_OUT=dir       where result.json, events.txt, findings.txt and the logs go
//	SOAK_DISABLE=fuse,proxy,cgroups  runs without those tools (to tell a finding from a tool's own effect)
const (
	// soakCheckpointInterval: the supervisors take checkpoints on their
	// own schedule, so that image store stalls meet checkpoints and a crash
	// rolls back to whatever was committed last.
	soakCheckpointInterval = 20 * time.Second
	soakTick               = 250 * time.Millisecond
	dupGrace               = 3 * time.Second
)

type soakConfig struct {
	duration time.Duration
	timing   string
	fencing  fencing
	seed     uint64
	out      string
	disable  []string
}

func soakConfigFromEnv(t *testing.T) soakConfig {
	t.Helper()
	v := os.Getenv("SOAK")
	if v == "" {
		t.Skip("the soak runs with make soak (SOAK=<duration>), not with make e2e")
	}
	cfg := soakConfig{timing: os.Getenv("SOAK_TIMING"), out: os.Getenv("SOAK_OUT")}
	for _, d := range strings.Split(os.Getenv("SOAK_DISABLE"), ",") {
		switch d = strings.TrimSpace(d); d {
		case "":
		case "fuse", "proxy", "cgroups":
			cfg.disable = append(cfg.disable, d)
		default:
			t.Fatalf("SOAK_DISABLE: unknown tool %q (fuse, proxy, cgroups)", d)
		}
	}
	var err error
	if cfg.duration, err = time.ParseDuration(v); err != nil || cfg.duration <= 0 {
		t.Fatalf("SOAK=%q: not a positive duration (e.g. 30m)", v)
	}
	switch cfg.timing {
	case "", "default":
		cfg.timing, cfg.fencing = "default", defaultFencing
	case "demo":
		cfg.fencing = shortFencing
	default:
		t.Fatalf("SOAK_TIMING=%q: want default or demo", cfg.timing)
	}
	if s := os.Getenv("SOAK_SEED"); s != "" {
		if cfg.seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SOAK_SEED=%q: not an unsigned integer", s)
		}
	} else {
		cfg.seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	if cfg.out == "" {
		cfg.out = filepath.Join("..", "bin", "soak")
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < cfg.duration+8*time.Minute {
		t.Fatalf("go test -timeout leaves %s; SOAK=%s needs at least 8 min more", time.Until(dl).Round(time.Second), cfg.duration)
	}
	return cfg
}

// soak is one soak run. The fault loop runs in the test goroutine and owns
// active, injected and crash; the checker owns its counters.
type soak struct {
	t   *testing.T
	cfg soakConfig
	c   *cluster
	rng *rand.Rand

	links     map[string]*roleLinks // by process
	disks     map[string]*slowDisk  // by server
	noCgroups string                // why CPU quotas are off, or ""
	noFUSE    string                // why slow disks are off, or ""
	checker   *checker

	active    []*fault
	injected  map[string]int
	groups    int // cgroups made, for their names
	crash     *crash
	crashes   []*crash
	rejoin    int // the event stream's position when the crashed host came back
	nextCrash time.Time
	draining  bool
	started   time.Time
	ended     time.Time
}

func TestSoak(t *testing.T) {
	cfg := soakConfigFromEnv(t)
	s := &soak{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15)),
		links: map[string]*roleLinks{}, disks: map[string]*slowDisk{}, injected: map[string]int{}}
	fmt.Printf("soak: seed %d (SOAK_SEED=%d replays its choices), %s at %s timings: self_timeout %s, action_timeout %s\n",
		cfg.seed, cfg.seed, cfg.duration, cfg.timing, cfg.fencing.selfTimeout, cfg.fencing.actionTimeout)
	c := newCluster(t, options{fencing: cfg.fencing, prepare: s.prepare, env: s.env})
	s.checker = newChecker(c, s.lostAfter(), dupGrace)
	s.checker.start()
	t.Cleanup(s.checker.stop)
	for _, g := range groups {
		c.checkpoint(g)
	}
	s.run()
	s.drain()
	// teardown, a cleanup, stops everything, prints the result and fails
	// the test on it.
}

// window is how long an agent goes without an acknowledged renewal before
// it fences itself.
func (s *soak) window() time.Duration {
	return s.cfg.fencing.selfTimeout - s.cfg.fencing.actionTimeout
}

// budget bounds the lease silence that the faults active at once may
// cause together (each fault's impact: a frozen agent its stop, a
// stalled disk its stall, a killed server an election, ...): 60 % of the
// fence window. Within it, a fence is a false fence; beyond it the soak
// would have built an isolation itself.
func (s *soak) budget() time.Duration { return s.window() * 6 / 10 }

func (s *soak) load() time.Duration {
	var sum time.Duration
	for _, f := range s.active {
		sum += f.impact
	}
	return sum
}

func (s *soak) fits(impact time.Duration) bool { return s.load()+impact <= s.budget() }

// lostAfter is how long a VM may not run before it counts as lost: the
// self-fence deadline, then a generous minute and more for detection,
// restore and a loaded machine.
func (s *soak) lostAfter() time.Duration { return s.cfg.fencing.deadline() + 80*time.Second }

func (s *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

// prepare runs inside newCluster before any process starts: it opens the
// proxies and mounts the slow disks, and registers the teardown, which
// must run before the harness's own (it unmounts what the servers use).
func (s *soak) prepare(c *cluster) {
	s.c = c
	s.t.Cleanup(s.teardown)
	if gone := detachStaleMounts(); len(gone) > 0 {
		c.logf("soak: detached stale mounts of an earlier run: %v", gone)
	}
	if gone := removeStaleGroups(); len(gone) > 0 {
		c.logf("soak: removed stale cgroups of an earlier run: %v", gone)
	}
	if s.noCgroups = cgroupsUsable(); slices.Contains(s.cfg.disable, "cgroups") {
		s.noCgroups = "SOAK_DISABLE"
	}
	if s.noCgroups != "" {
		c.logf("soak: DISABLED cpu quotas: %s (the CPU hog still runs)", s.noCgroups)
	}
	var targets []string
	for _, n := range c.servers {
		targets = append(targets, fmt.Sprintf("127.0.0.1:%d", n.port))
	}
	for _, r := range roles() {
		if slices.Contains(s.cfg.disable, "proxy") {
			c.logf("soak: DISABLED network faults: SOAK_DISABLE")
			break
		}
		l, err := newRoleLinks(r, targets)
		if err != nil {
			s.t.Fatalf("proxy for %s: %v", r, err)
		}
		s.links[r] = l
	}
	if s.noFUSE = fuseUsable(); slices.Contains(s.cfg.disable, "fuse") {
		s.noFUSE = "SOAK_DISABLE"
	}
	for _, n := range c.servers {
		if s.noFUSE != "" {
			break
		}
		d, err := mountSlowDisk(n.name, filepath.Join(c.dir, n.name+"-data"), filepath.Join(c.dir, "disk-"+n.name))
		if err != nil {
			s.noFUSE = err.Error()
			break
		}
		s.disks[n.name] = d
	}
	if s.noFUSE != "" {
		for _, d := range s.disks {
			_ = d.unmount()
		}
		s.disks = map[string]*slowDisk{}
		c.logf("soak: DISABLED disk stalls: %s", s.noFUSE)
	} else {
		c.logf("soak: each server's store is on a FUSE slow disk; %d processes reach the servers through fault proxies", len(s.links))
	}
}

// env gives each role its proxy's URLs, and the supervisors a checkpoint
// schedule.
func (s *soak) env(name string) []string {
	var env []string
	if l := s.links[name]; l != nil {
		env = append(env, "XENFT_BUS_URLS="+strings.Join(l.urls(), ","))
	}
	if slices.Contains(supervisors, name) {
		env = append(env, "XENFT_SUPERVISOR_CHECKPOINT_INTERVAL="+soakCheckpointInterval.String())
	}
	return env
}

// run is the fault loop: every 2-6 s it draws a fault kind and starts one
// if it is possible now and fits the budget; every tick it ends the faults
// whose time came and moves the real failure on.
func (s *soak) run() {
	s.started = time.Now()
	s.c.logf("soak: faults for %s (fence window %s, budget %s of lease silence at once, a VM is lost after %s)",
		s.cfg.duration, s.window(), s.budget(), s.lostAfter())
	end := s.started.Add(s.cfg.duration)
	nextFault := s.started.Add(s.between(time.Second, 3*time.Second))
	s.nextCrash = s.started.Add(s.between(20*time.Second, 40*time.Second))
	tick := time.NewTicker(soakTick)
	defer tick.Stop()
	for now := time.Now(); now.Before(end); now = <-tick.C {
		s.endFaults(now)
		s.advanceCrash(now)
		if !now.Before(nextFault) {
			s.startFault(now)
			nextFault = now.Add(s.between(2*time.Second, 6*time.Second))
		}
	}
	s.ended = time.Now()
}

func (s *soak) startFault(now time.Time) {
	total := 0
	for _, k := range faultKinds {
		total += k.weight
	}
	r := s.rng.IntN(total)
	for _, k := range faultKinds {
		if r -= k.weight; r >= 0 {
			continue
		}
		f := k.start(s, now)
		if f == nil {
			return
		}
		f.kind = k.name
		s.active = append(s.active, f)
		s.injected[k.name]++
		s.c.logf("soak: + %s: %s", k.name, f.what)
		return
	}
}

// endFaults ends the faults whose time came (or whose step says so), or
// all of them.
func (s *soak) endFaults(now time.Time) {
	var left []*fault
	for _, f := range s.active {
		done := (!f.until.IsZero() && !now.Before(f.until)) || (f.step != nil && f.step(now))
		if !done {
			left = append(left, f)
			continue
		}
		f.finish()
		s.c.logf("soak: - %s", f.kind)
	}
	s.active = left
}

// drain stops injecting: timed faults end now, a server restart or a
// crash in progress is let finish (bounded), and the cluster must end with
// every VM running exactly once.
func (s *soak) drain() {
	s.draining = true
	s.c.logf("soak: draining: no new faults")
	var left []*fault
	for _, f := range s.active {
		if f.step != nil && f.kind == "server-restart" {
			left = append(left, f)
			continue
		}
		f.finish()
		s.c.logf("soak: - %s", f.kind)
	}
	s.active = left
	deadline := time.Now().Add(s.lostAfter() + time.Minute)
	tick := time.NewTicker(soakTick)
	defer tick.Stop()
	var steadySince time.Time
	for now := time.Now(); now.Before(deadline); now = <-tick.C {
		s.endFaults(now)
		if s.crash != nil {
			s.advanceCrash(now)
			continue
		}
		if len(s.active) > 0 {
			continue
		}
		switch steady, _ := s.checker.isSteady(); {
		case !steady:
			steadySince = time.Time{}
		case steadySince.IsZero():
			steadySince = now
		case now.Sub(steadySince) >= 5*time.Second:
			s.c.logf("soak: drained: every VM runs exactly once")
			return
		}
	}
	s.c.logf("soak: FINDING: not drained within %s: %d faults active, crash in progress %v", s.lostAfter()+time.Minute, len(s.active), s.crash != nil)
}
