//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/xenft/xenft/events"
)

// fault is one injected disturbance, active until it ends.
type fault struct {
	kind    string
	what    string
	targets []string      // what it holds: a process, "net:<role>", "disk", "server"
	impact  time.Duration // the lease silence it may cause (soak.go: the budget)
	until   time.Time     // it ends then; zero if step decides
	step    func(now time.Time) bool
	end     func()
	ended   bool
}

// finish undoes the fault once.
func (f *fault) finish() {
	if !f.ended {
		f.ended = true
		if f.end != nil {
			f.end()
		}
	}
}

// faultKind is one kind of fault and how often it is drawn.
type faultKind struct {
	name   string
	weight int
	start  func(s *soak, now time.Time) *fault // nil: not possible now
}

var faultKinds = []faultKind{
	{"cpu-quota", 3, (*soak).startCPUQuota},
	{"cpu-hog", 1, (*soak).startHog},
	{"agent-stop", 2, (*soak).startAgentStop},
	{"net-delay", 2, (*soak).startNetDelay},
	{"net-stalls", 2, (*soak).startNetStalls},
	{"net-cut", 2, (*soak).startNetCut},
	{"image-stall", 1, (*soak).startImageStall},
	{"disk-stall", 1, (*soak).startDiskStall},
	{"server-restart", 1, (*soak).startServerRestart},
}

// held reports whether an active fault holds target.
func (s *soak) held(target string) bool {
	for _, f := range s.active {
		if slices.Contains(f.targets, target) {
			return true
		}
	}
	return false
}

// up lists the named processes that run and no fault holds.
func (s *soak) up(names []string) []string {
	var out []string
	for _, n := range names {
		if p := s.c.proc(n); p != nil && !p.exited() && !s.held(n) {
			out = append(out, n)
		}
	}
	return out
}

func (s *soak) pick(names []string) string { return names[s.rng.IntN(len(names))] }

// startCPUQuota starves one or two agents or supervisors to 10-30 % of
// one CPU for 5-15 s.
func (s *soak) startCPUQuota(now time.Time) *fault {
	if s.noCgroups != "" {
		return nil
	}
	cands := s.up(append(slices.Clone(hosts), supervisors...))
	if len(cands) == 0 || !s.fits(time.Second) {
		return nil
	}
	s.rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	names := cands[:min(len(cands), 1+s.rng.IntN(2))]
	pct := []int{10, 20, 30}[s.rng.IntN(3)]
	d := s.between(5*time.Second, 15*time.Second)
	var pids []int
	for _, n := range names {
		pids = append(pids, s.c.proc(n).pid())
	}
	s.groups++
	q, err := starve(s.t, fmt.Sprintf("xenft-soak-%d-%d", os.Getpid(), s.groups), time.Duration(pct)*time.Millisecond, pids...)
	if err != nil {
		s.c.logf("soak: cpu quota not applied: %v", err)
		if q != nil {
			_ = q.release()
		}
		return nil
	}
	return &fault{
		what:    fmt.Sprintf("%s limited to %d%% of a CPU for %s", strings.Join(names, ", "), pct, d.Round(time.Millisecond)),
		targets: names, impact: time.Second, until: now.Add(d),
		end: func() {
			if err := q.release(); err != nil {
				s.c.logf("soak: cgroup %s: %v", q.dir, err)
			}
		},
	}
}

// startHog spins 3 × the cores for 4-10 s beside everything.
func (s *soak) startHog(now time.Time) *fault {
	if s.held("hog") || !s.fits(time.Second) {
		return nil
	}
	n, d := 3*runtime.NumCPU(), s.between(4*time.Second, 10*time.Second)
	h, err := startHog(s.t, n)
	if err != nil {
		s.c.logf("soak: cpu hog not started: %v", err)
		return nil
	}
	return &fault{what: fmt.Sprintf("%d spinning processes for %s", n, d.Round(time.Millisecond)),
		targets: []string{"hog"}, impact: time.Second, until: now.Add(d), end: h.stop}
}

// startAgentStop freezes an agent (SIGSTOP) for 1 s to half its fence
// window, then lets it go on (SIGCONT): less than its self-timeout, so it
// must neither fence itself nor be fenced.
func (s *soak) startAgentStop(now time.Time) *fault {
	cands := s.up(hosts)
	if len(cands) == 0 {
		return nil
	}
	h := s.pick(cands)
	d := s.between(time.Second, s.window()/2)
	if !s.fits(d) {
		return nil
	}
	p := s.c.proc(h)
	if err := syscall.Kill(p.pid(), syscall.SIGSTOP); err != nil {
		s.c.logf("soak: SIGSTOP %s: %v", h, err)
		return nil
	}
	return &fault{what: fmt.Sprintf("agent %s stopped for %s", h, d.Round(time.Millisecond)),
		targets: []string{h}, impact: d, until: now.Add(d),
		end: func() {
			if !p.exited() {
				_ = syscall.Kill(p.pid(), syscall.SIGCONT)
			}
		}}
}

// netRole picks a running process whose links no fault holds.
func (s *soak) netRole() string {
	if len(s.links) == 0 {
		return ""
	}
	var cands []string
	for _, n := range roles() {
		if p := s.c.proc(n); p != nil && !p.exited() && !s.held("net:"+n) {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return ""
	}
	return s.pick(cands)
}

// startNetDelay delays everything on one process's links by 50-500 ms for
// 5-20 s.
func (s *soak) startNetDelay(now time.Time) *fault {
	r := s.netRole()
	if r == "" {
		return nil
	}
	delay, d := s.between(50*time.Millisecond, 500*time.Millisecond), s.between(5*time.Second, 20*time.Second)
	if !s.fits(delay) {
		return nil
	}
	l := s.links[r]
	l.setDelay(delay)
	return &fault{what: fmt.Sprintf("%s's links delayed by %s for %s", r, delay.Round(time.Millisecond), d.Round(time.Millisecond)),
		targets: []string{"net:" + r}, impact: delay, until: now.Add(d), end: func() { l.setDelay(0) }}
}

// startNetStalls stalls one process's links for 50-500 ms at a time, every
// 0.5-2 s, for 5-15 s.
func (s *soak) startNetStalls(now time.Time) *fault {
	r := s.netRole()
	if r == "" {
		return nil
	}
	d := s.between(5*time.Second, 15*time.Second)
	if !s.fits(500 * time.Millisecond) {
		return nil
	}
	l, until, next, n := s.links[r], now.Add(d), now, 0
	f := &fault{what: fmt.Sprintf("%s's links stalled 50-500 ms at a time for %s", r, d.Round(time.Millisecond)),
		targets: []string{"net:" + r}, impact: 500 * time.Millisecond}
	f.step = func(now time.Time) bool {
		if !now.Before(until) {
			return true
		}
		if !now.Before(next) {
			st := s.between(50*time.Millisecond, 500*time.Millisecond)
			l.stall(st)
			n++
			next = now.Add(st + s.between(500*time.Millisecond, 2*time.Second))
		}
		return false
	}
	f.end = func() { l.stall(0); s.c.logf("soak: %s: %d stalls", r, n) }
	f.step(now)
	return f
}

// startNetCut cuts every connection of one process and refuses new ones
// for 50-500 ms.
func (s *soak) startNetCut(now time.Time) *fault {
	r := s.netRole()
	if r == "" {
		return nil
	}
	refuse := s.between(50*time.Millisecond, 500*time.Millisecond)
	if !s.fits(time.Second) {
		return nil
	}
	n := s.links[r].cut(refuse)
	return &fault{what: fmt.Sprintf("%s's %d connections cut, new ones refused for %s", r, n, refuse.Round(time.Millisecond)),
		targets: []string{"net:" + r}, impact: time.Second, until: now.Add(refuse)}
}

// startImageStall stalls the image store's writes on every server for
// 1-8 s, from the next checkpoint's start (or in 30 s if none starts):
// the object store's stream and its Raft log, nothing else.
func (s *soak) startImageStall(now time.Time) *fault {
	if s.noFUSE != "" || s.held("disk") || !s.fits(500*time.Millisecond) {
		return nil
	}
	d := s.between(time.Second, 8*time.Second)
	mark, latest := s.c.story.mark(), now.Add(30*time.Second)
	var until time.Time
	f := &fault{what: fmt.Sprintf("image store's writes stalled for %s at the next checkpoint", d.Round(time.Millisecond)),
		targets: []string{"disk"}, impact: 500 * time.Millisecond}
	f.step = func(now time.Time) bool {
		if !until.IsZero() {
			return !now.Before(until)
		}
		if now.Before(latest) && !s.c.story.has(mark, on(events.TypeCheckpointStarted, "")) {
			return false
		}
		match := s.imageFiles()
		until = now.Add(d)
		for _, disk := range s.disks {
			disk.stall(until, match)
		}
		s.c.logf("soak: image store stalled until %s", until.Format("15:04:05.000"))
		return false
	}
	f.end = func() {
		n := 0
		for _, disk := range s.disks {
			n += disk.heldCalls()
			disk.lift()
		}
		s.c.logf("soak: image store stall lifted (%d calls held so far by all stalls)", n)
	}
	return f
}

// imageFiles matches the image store's files in a server's store: its
// stream's directory and its Raft group's.
func (s *soak) imageFiles() func(rel string) bool {
	stream := "OBJ_" + s.c.bus.Names().Images()
	dirs := []string{"/streams/" + stream + "/"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if st, err := s.c.bus.JetStream().Stream(ctx, stream); err == nil && st.CachedInfo().Cluster != nil && st.CachedInfo().Cluster.RaftGroup != "" {
		dirs = append(dirs, "/_js_/"+st.CachedInfo().Cluster.RaftGroup+"/")
	}
	s.c.logf("soak: the image store's files: those under %v", dirs)
	return func(rel string) bool {
		rel = "/" + rel + "/"
		for _, d := range dirs {
			if strings.Contains(rel, d) {
				return true
			}
		}
		return false
	}
}

// startDiskStall stalls every write of one server's store for 0.5-3 s, as
// a disk flush does; half the time the server that leads the hosts bucket,
// where every lease is renewed.
func (s *soak) startDiskStall(now time.Time) *fault {
	if s.noFUSE != "" || s.held("disk") {
		return nil
	}
	var cands []string
	for _, n := range s.c.servers {
		if p := s.c.proc(n.name); p != nil && !p.exited() {
			cands = append(cands, n.name)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	victim := s.pick(cands)
	if s.rng.IntN(2) == 0 {
		if l := s.leaderOf("KV_" + s.c.bus.Names().Hosts()); slices.Contains(cands, l) {
			victim = l
		}
	}
	d := s.between(500*time.Millisecond, 3*time.Second)
	if !s.fits(d) {
		return nil
	}
	disk := s.disks[victim]
	disk.stall(now.Add(d), nil)
	return &fault{what: fmt.Sprintf("%s's disk stalled for %s", victim, d.Round(time.Millisecond)),
		targets: []string{"disk"}, impact: d, until: now.Add(d), end: disk.lift}
}

// leaderOf names the server leading a stream, or "".
func (s *soak) leaderOf(stream string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := s.c.bus.JetStream().Stream(ctx, stream)
	if err != nil || st.CachedInfo().Cluster == nil {
		return ""
	}
	return st.CachedInfo().Cluster.Leader
}

// startServerRestart stops one NATS server (SIGTERM, as a rolling restart
// does; at default timings also SIGKILL, whose leader elections the lease
// window covers), starts it again 1-5 s later, and ends once every stream
// has three current replicas again: never two servers down, quorum kept.
func (s *soak) startServerRestart(now time.Time) *fault {
	if s.held("server") {
		return nil
	}
	node := s.c.servers[s.rng.IntN(len(s.c.servers))]
	kill := s.cfg.timing == "default" && s.rng.IntN(2) == 0
	impact := 2 * time.Second
	if kill {
		impact = 9 * time.Second // NATS's leader election: 4-9 s (nats_test.go)
	}
	if !s.fits(impact) {
		return nil
	}
	how := "SIGTERM"
	if kill {
		how = "SIGKILL"
		s.c.kill(node.name)
	} else if !s.c.proc(node.name).stop(30 * time.Second) {
		s.c.logf("soak: %s did not stop within 30s of SIGTERM; killed", node.name)
	}
	down := s.between(time.Second, 5*time.Second)
	backAt, started, lastCheck := now.Add(down), time.Time{}, time.Time{}
	f := &fault{what: fmt.Sprintf("NATS server %s stopped (%s), back in %s", node.name, how, down.Round(time.Millisecond)),
		targets: []string{"server"}, impact: impact}
	f.step = func(now time.Time) bool {
		if started.IsZero() {
			if now.Before(backAt) {
				return false
			}
			s.c.startServer(node)
			started = now
			return false
		}
		if now.Sub(lastCheck) < 2*time.Second {
			return false
		}
		lastCheck = now
		if lag := s.lagging(); lag != "" {
			if now.Sub(started) > 2*time.Minute {
				s.c.logf("soak: FINDING: 2 min after %s restarted, streams still lag: %s", node.name, lag)
				return true
			}
			return false
		}
		s.c.logf("soak: %s back, every stream has three current replicas (%.1fs after its start)", node.name, now.Sub(started).Seconds())
		return true
	}
	// No end: the drain lets it come back (it takes seconds); a test that
	// stops meanwhile stops the two left.
	return f
}

// lagging names a stream without a leader or with a replica behind, or "".
func (s *soak) lagging() string {
	n := s.c.bus.Names()
	streams := []string{n.Stream(), "OBJ_" + n.Images()}
	for _, b := range []string{n.Hosts(), n.VMs(), n.Groups(), n.Checkpoints(), n.Leader(), n.State()} {
		streams = append(streams, "KV_"+b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range streams {
		st, err := s.c.bus.JetStream().Stream(ctx, name)
		if err != nil {
			return fmt.Sprintf("%s: %v", name, err)
		}
		ci := st.CachedInfo().Cluster
		if ci == nil || ci.Leader == "" || len(ci.Replicas) != 2 {
			return name + ": no leader or missing replicas"
		}
		for _, r := range ci.Replicas {
			if !r.Current {
				return name + ": replica " + r.Name + " not current"
			}
		}
	}
	return ""
}

// roles are the processes that reach the servers through the proxy.
func roles() []string {
	return slices.Concat(hosts, supervisors, detectors)
}
