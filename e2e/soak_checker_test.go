//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xenft/xenft/events"
)

// crash is one real failure the soak injected: a host crashed, to be
// detected and recovered from, then brought back as a new incarnation.
type crash struct {
	host string
	at   time.Time
	mark int      // the event stream's position at the crash
	vms  []string // the workload's VMs that ran on the host

	// Set by the checker, under its lock.
	recoveredAt time.Time // every VM ran exactly once again, the lost ones restarted
	// Set by the fault loop, under the checker's lock.
	backAt  time.Time // the host's new agent started; zero while it is down
	verdict string    // "" while open; "recovered", or why not
}

// vmWatch is what the checker remembers of one VM between samples.
type vmWatch struct {
	dupSince, liveDupSince, missingSince    time.Time
	dupCounted, liveDupCounted, lostCounted bool
}

// checker checks the cluster every second with its own state: the fake xl
// hosts' domain lists, the event stream and the agents' logs. It owns its
// counters; the fault loop reads them and tells it about crashes.
type checker struct {
	c         *cluster
	lostAfter time.Duration // a VM not running this long is lost
	dupGrace  time.Duration // two running copies this long are a duplicate
	leakGrace time.Duration // two copies in any state this long are one too

	mu          sync.Mutex
	vms         map[string]*vmWatch
	crashes     []*crash
	last        map[string][]guest // the last sample
	steady      bool               // in it, every VM runs exactly once
	falseFences int
	fenceAt     map[string]time.Time // the last false fence of each host: its later signs are the same fence
	duplicates  int
	lost        int
	sampleErr   string
	evSeen      int
	logOffset   map[string]int64
	stopping    time.Time // when the harness began to stop the cluster
	findings    []string

	cancel context.CancelFunc
	done   chan struct{}
}

func newChecker(c *cluster, lostAfter, dupGrace time.Duration) *checker {
	k := &checker{c: c, lostAfter: lostAfter, dupGrace: dupGrace, leakGrace: 30 * time.Second, vms: map[string]*vmWatch{},
		fenceAt: map[string]time.Time{}, logOffset: map[string]int64{}}
	for _, vm := range vmNames() {
		k.vms[vm] = &vmWatch{}
	}
	return k
}

// start samples every second until stop.
func (k *checker) start() {
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel, k.done = cancel, make(chan struct{})
	go func() {
		defer close(k.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			k.sample(time.Now())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// stop ends the sampling and waits for it; it may be called again.
func (k *checker) stop() {
	if k.cancel != nil {
		k.cancel()
		<-k.done
	}
}

func (k *checker) sample(now time.Time) {
	gs, err := k.c.readGuests()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != k.sampleErr {
			k.sampleErr = msg
			k.c.logf("soak checker: %v", err)
		}
	} else {
		k.checkVMs(now, gs)
		k.checkRecovery(now, gs)
	}
	k.checkEvents()
	k.checkLogs()
}

// checkVMs: every restart-policy VM runs exactly once. Two running copies
// for longer than dupGrace are a duplicate (the grace covers reading the
// four hosts one after the other while a VM moves): two live copies
// corrupt the VM's disks. A second copy that is paused (restored, never
// unpaused) does not run, but one left longer than leakGrace is counted
// too: the supervisor lost track of it and one unpause makes it live;
// a shorter one is noted. No running copy for longer than lostAfter is a
// lost VM. Each episode counts once.
func (k *checker) checkVMs(now time.Time, gs map[string][]guest) {
	k.last, k.steady = gs, true
	for _, name := range vmNames() {
		w, copies := k.vms[name], gs[name]
		running := 0
		for _, g := range copies {
			if g.running {
				running++
			}
		}
		if len(copies) != 1 || running != 1 {
			k.steady = false
		}
		switch {
		case running < 2:
			w.liveDupSince, w.liveDupCounted = time.Time{}, false
		case w.liveDupSince.IsZero():
			w.liveDupSince = now
		case !w.liveDupCounted && now.Sub(w.liveDupSince) > k.dupGrace:
			w.liveDupCounted = true
			k.duplicates++
			k.find("DUPLICATE VM: %s runs %d times since %s: %v", name, running, w.liveDupSince.Format("15:04:05"), copies)
		}
		switch {
		case len(copies) < 2:
			if !w.dupSince.IsZero() && !w.dupCounted && !w.liveDupCounted && now.Sub(w.dupSince) > k.dupGrace {
				k.note("%s had a second, paused copy for about %.0fs (from %s)", name, now.Sub(w.dupSince).Seconds(), w.dupSince.Format("15:04:05"))
			}
			w.dupSince, w.dupCounted = time.Time{}, false
		case w.dupSince.IsZero():
			w.dupSince = now
		case !w.dupCounted && !w.liveDupCounted && now.Sub(w.dupSince) > k.leakGrace:
			w.dupCounted = true
			k.duplicates++
			k.find("DUPLICATE VM: %s has %d copies since %s, not all running: %v", name, len(copies), w.dupSince.Format("15:04:05"), copies)
		}
		switch {
		case running > 0:
			w.missingSince, w.lostCounted = time.Time{}, false
		case w.missingSince.IsZero():
			w.missingSince = now
		case !w.lostCounted && now.Sub(w.missingSince) > k.lostAfter:
			w.lostCounted = true
			k.lost++
			k.find("LOST VM: %s has not run since %s (%s): %v", name, w.missingSince.Format("15:04:05"), k.lostAfter, copies)
		}
	}
}

// checkRecovery marks the open crash recovered at the first sample where
// every VM runs exactly once and each VM the host ran was restarted.
func (k *checker) checkRecovery(now time.Time, gs map[string][]guest) {
	for _, cr := range k.crashes {
		if !cr.recoveredAt.IsZero() || cr.verdict != "" || !k.steady {
			continue
		}
		done := true
		for _, vm := range cr.vms {
			if !k.c.story.has(cr.mark, on(events.TypeVMRestarted, vm)) {
				done = false
			}
		}
		if len(cr.vms) == 0 && !k.c.story.has(cr.mark, on(events.TypeNodeFailed, cr.host)) {
			done = false
		}
		if done {
			cr.recoveredAt = now
			k.c.logf("soak: crash of %s recovered after %.1fs: every VM runs exactly once", cr.host, now.Sub(cr.at).Seconds())
		}
	}
}

// checkEvents: node.fenced of a host the soak did not crash (or of one it
// brought back) is a false fence.
func (k *checker) checkEvents() {
	if k.c.story == nil {
		return
	}
	evs := k.c.story.since(k.evSeen)
	k.evSeen += len(evs)
	for _, ev := range evs {
		if ev.Type != events.TypeNodeFenced {
			continue
		}
		host := ev.EntityID()
		if k.crashedAt(host, ev.Time) {
			continue
		}
		k.falseFence(host, ev.Time, fmt.Sprintf("event %s %s %s %s", ev.Time.Format("15:04:05.000"), ev.Type.Short(), ev.Subject, ev.Data))
	}
}

// crashedAt reports whether host was down by the soak's hand at t.
func (k *checker) crashedAt(host string, t time.Time) bool {
	for _, cr := range k.crashes {
		if cr.host == host && !t.Before(cr.at) && (cr.backAt.IsZero() || !t.After(cr.backAt)) {
			return true
		}
	}
	return false
}

// checkLogs: an agent that logs SELF-FENCE fenced a healthy host (the soak
// never isolates one; a crashed agent is dead and logs nothing).
func (k *checker) checkLogs() {
	for _, h := range hosts {
		lines := k.newLines(h)
		for i, line := range lines {
			if !strings.Contains(line, "SELF-FENCE") {
				continue
			}
			at, ok := parseLogTime(line)
			if !ok {
				at = time.Now()
			}
			ctx := strings.Join(lines[i:min(i+3, len(lines))], "\n    ")
			when := ""
			if !k.stopping.IsZero() && at.After(k.stopping) {
				when = " (while the cluster was being stopped, before its agents)"
			}
			k.falseFence(h, at, "agent "+h+" log"+when+":\n    "+ctx)
		}
	}
}

// newLines returns the complete lines appended to name's log since the
// last call.
func (k *checker) newLines(name string) []string {
	f, err := os.Open(k.c.logPath(name))
	if err != nil {
		return nil
	}
	defer f.Close()
	off := k.logOffset[name]
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil
	}
	k.logOffset[name] = off + int64(end) + 1
	return strings.Split(string(b[:end]), "\n")
}

// falseFence counts a fence of a healthy host, once per fence: the agent's
// log lines and the supervisor's node.fenced within a minute of each other
// are one fence.
func (k *checker) falseFence(host string, at time.Time, detail string) {
	if last, ok := k.fenceAt[host]; ok && at.Sub(last).Abs() < time.Minute {
		k.fenceAt[host] = at
		k.find("  (same false fence of %s) %s", host, detail)
		return
	}
	k.fenceAt[host] = at
	k.falseFences++
	k.find("FALSE FENCE of %s at %s: %s", host, at.Format("15:04:05.000"), detail)
}

// note records something worth a look that fails nothing.
func (k *checker) note(format string, args ...any) {
	msg := "note: " + fmt.Sprintf(format, args...)
	if len(k.findings) < 500 {
		k.findings = append(k.findings, msg)
	}
	k.c.logf("soak: %s", msg)
}

// find records a finding and logs it at once.
func (k *checker) find(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(k.findings) < 500 {
		k.findings = append(k.findings, msg)
	}
	k.c.logf("soak: %s", msg)
}

// addCrash tells the checker about a crash about to be injected.
func (k *checker) addCrash(cr *crash) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.crashes = append(k.crashes, cr)
}

// update runs f under the checker's lock (the loop's changes to a crash).
func (k *checker) update(f func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f()
}

// isSteady reports whether every VM ran exactly once at the last sample,
// and that sample.
func (k *checker) isSteady() (bool, map[string][]guest) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.steady, k.last
}

// countPanics counts the panics, fatal runtime errors and data races in
// every process log of the cluster.
func countPanics(dir string) (int, []string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	n := 0
	var where []string
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") || strings.Contains(line, "WARNING: DATA RACE") {
				n++
				where = append(where, filepath.Base(path)+": "+line)
			}
		}
	}
	return n, where
}

// parseLogTime reads hclog's timestamp at the start of a line.
func parseLogTime(line string) (time.Time, bool) {
	stamp, _, _ := strings.Cut(line, " ")
	t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", stamp)
	return t, err == nil
}
