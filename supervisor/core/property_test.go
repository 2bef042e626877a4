package core

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// The property test: random sequences of host crashes, partitions, reboots,
// detector verdicts (true and false), fault reports, VM crashes, checkpoints,
// corrupt images, command failures, lost and late answers, leader changes with
// a JSON round trip of the state, and operator requests, applied to a
// simulated cluster (world_test.go). After every Apply:
//   - Apply did not panic, and the state passes Check (a restore only while
//     no copy is believed to exist; a group unpauses only when every member
//     was restored from the one checkpoint);
//   - the input was applied deterministically (a clone given the same input
//     ends in the same state with the same actions), an error left the state
//     unchanged, Changes named every entry that changed, and the index is
//     what a rebuild gives;
//   - in the world, no VM ever runs twice, and no restore ran while a copy of
//     the VM was running anywhere.
// At the end every failure is healed and the answers succeed: every VM that
// may be restarted runs exactly once, where the core believes it runs, from
// the same checkpoint as its group, and no stray copy remains.

var (
	traceWorld = flag.Bool("worldtrace", false, "log every input and action of the property test")
	worldRuns  = flag.Int("worldruns", 100, "seeded histories TestProperty_RandomClusters runs (10 with -short)")
)

// picker turns fuzz bytes into choices; when they run out every choice is 0.
type picker struct {
	data []byte
	rng  *rand.Rand // instead of data, for the seeded runs
}

func (p *picker) intn(n int) int {
	if n <= 1 {
		return 0
	}
	if p.rng != nil {
		return p.rng.IntN(n)
	}
	if len(p.data) == 0 {
		return 0
	}
	b := int(p.data[0])
	p.data = p.data[1:]
	return b % n
}

func (p *picker) done() bool { return p.rng == nil && len(p.data) == 0 }

func newWorld(t testing.TB, pick *picker) *world {
	w := &world{t: t, now: t0, term: 1, hosts: map[string]*whost{}, vms: map[string]VMConfig{},
		ckpt: map[string]uint64{}, corrupt: map[string]bool{}, failures: true, pick: pick}
	p := DefaultPolicy()
	p.MaxAttempts = 1000 // the world fails often; never give up while it does
	p.MaxConcurrentRestores = 4
	w.s = NewState(p)
	w.feed(Leader{At: w.now, Term: 1})
	nh := 4 + pick.intn(4)
	for i := range nh {
		name := fmt.Sprintf("n%d", i+1)
		w.names = append(w.names, name)
		w.hosts[name] = &whost{name: name, memMiB: 32768, up: true, doms: map[string]wdom{},
			high: map[string]Epoch{}, fenceCmd: pick.intn(2) == 0, unarmed: pick.intn(4) == 0}
	}
	policies := []RestartPolicy{PolicyRestore, PolicyRestore, PolicyRestoreOrCold, PolicyNone}
	groups := []string{"g1", "g2", "g3", ""}
	for i := range 3 + pick.intn(6) {
		c := VMConfig{Name: fmt.Sprintf("v%d", i+1), Group: groups[pick.intn(len(groups))], MemoryMiB: 4096,
			Priority: pick.intn(3), Policy: policies[pick.intn(len(policies))]}
		h := w.hosts[w.names[i%nh]]
		h.doms[c.Name] = wdom{seq: -1, running: true}
		w.vms[c.Name] = c
		w.vmIDs = append(w.vmIDs, c.Name)
	}
	w.beat()
	for _, vm := range w.vmIDs {
		w.feed(VMRegistered{At: w.now, Config: w.vms[vm], Host: w.names[slices.Index(w.vmIDs, vm)%nh]})
	}
	for _, g := range []string{"g1", "g2", "g3"} {
		if pick.intn(4) != 0 && w.hasGroup(g) {
			w.commit(g)
		}
	}
	for _, vm := range w.vmIDs { // lone VMs are their own group
		if w.vms[vm].Group == "" && pick.intn(3) != 0 {
			w.commit(vm)
		}
	}
	return w
}

func (w *world) hasGroup(g string) bool {
	for _, c := range w.vms {
		if c.Group == g {
			return true
		}
	}
	return false
}

// feed applies in and checks every per-step property.
func (w *world) feed(in Input) []Action {
	w.t.Helper()
	w.steps++
	if !w.failures { // healing: the cheap checks only
		acts, err := Apply(w.s, in)
		if cerr := w.s.Check(); cerr != nil {
			w.violation("after %T %+v: %v", in, in, cerr)
		}
		w.trace(in, acts, err)
		for _, a := range acts {
			if c, ok := a.(Command); ok && err == nil {
				w.queue = append(w.queue, c)
			}
		}
		return acts
	}
	before := w.s.Clone()
	twin := w.s.Clone()
	w.s.TakeChanges()
	var acts []Action
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				w.violation("Apply(%T %+v) panicked: %v", in, in, r)
			}
		}()
		acts, err = Apply(w.s, in)
	}()
	if cerr := w.s.Check(); cerr != nil {
		w.violation("after %T %+v: %v", in, in, cerr)
	}
	// Determinism: the twin, given the same input, ends the same.
	tacts, terr := Apply(twin, in)
	if !reflect.DeepEqual(acts, tacts) || (err == nil) != (terr == nil) || !sameState(w.s, twin) {
		w.violation("%T is not deterministic: %v / %v, %v / %v", in, acts, tacts, err, terr)
	}
	w.trace(in, acts, err)
	changes := w.s.TakeChanges()
	if err != nil {
		if !sameState(before, w.s) || !changes.Empty() {
			w.violation("%T failed (%v) but changed the state", in, err)
		}
		return nil
	}
	w.checkChanges(before, changes)
	w.persist(changes)
	if !w.s.idx.equal(w.s.Clone().index()) {
		w.violation("after %T the index is stale", in)
	}
	for _, a := range acts {
		if c, ok := a.(Command); ok {
			w.queue = append(w.queue, c)
		}
	}
	return acts
}

func (w *world) trace(in Input, acts []Action, err error) {
	if *traceWorld {
		w.t.Logf("%d +%s %T %+v -> err=%v", w.steps, w.now.Sub(t0), in, in, err)
		for _, a := range acts {
			w.t.Logf("    %s", a)
		}
	}
}

func sameState(a, b *State) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// checkChanges verifies that every entry that differs from before is named.
func (w *world) checkChanges(before *State, c Changes) {
	diff := func(kind string, named []string, a, b map[string][]byte) {
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if string(a[k]) != string(b[k]) && !slices.Contains(named, k) {
				w.violation("%s %s changed but is not in Changes %+v", kind, k, c)
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok && !slices.Contains(named, k) {
				w.violation("%s %s appeared but is not in Changes %+v", kind, k, c)
			}
		}
	}
	diff("host", c.Hosts, encodeAll(before.Hosts), encodeAll(w.s.Hosts))
	diff("vm", c.VMs, encodeAll(before.VMs), encodeAll(w.s.VMs))
	diff("group", c.Groups, encodeAll(before.Groups), encodeAll(w.s.Groups))
	mb, ma := before.Meta, w.s.Meta
	mb.Now, ma.Now = time.Time{}, time.Time{}
	jb, _ := json.Marshal(mb)
	ja, _ := json.Marshal(ma)
	if string(jb) != string(ja) && !c.Meta {
		w.violation("meta changed but Changes.Meta is false")
	}
}

func encodeAll[T any](m map[string]*T) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k], _ = json.Marshal(v)
	}
	return out
}

// answer executes queued command i and feeds its result; lost answers are
// fed as timeouts, with or without the command having run.
func (w *world) answer(i int, lost bool) {
	c := w.queue[i]
	w.queue = slices.Delete(w.queue, i, i+1)
	if lost {
		if w.pick.intn(2) == 0 {
			w.exec(c)
		}
		r := c.Op()
		r.At, r.Outcome = w.now, OutcomeRetryable
		w.feed(r)
		return
	}
	if r, ok := w.exec(c); ok {
		w.feed(r)
	}
}

// step performs one random event.
func (w *world) step() {
	p := w.pick
	h := w.hosts[w.names[p.intn(len(w.names))]]
	vm := w.vmIDs[p.intn(len(w.vmIDs))]
	switch p.intn(21) {
	case 0, 1, 2: // time passes
		w.now = w.now.Add(time.Duration(200+p.intn(3800)) * time.Millisecond)
		w.beat()
		w.feed(Tick{At: w.now})
	case 3, 4, 5, 6, 7: // an agent answers
		if len(w.queue) > 0 {
			w.answer(p.intn(len(w.queue)), p.intn(8) == 0)
		}
	case 8: // a host crashes
		h.up, h.doms = false, map[string]wdom{}
	case 9: // a host is cut off from the bus, or only its beats are lost
		if h.up && !h.cut && !h.mute {
			if p.intn(3) == 0 {
				h.mute = true
			} else {
				h.cut, h.cutAt = true, w.now
			}
		}
	case 10: // ... and comes back
		h.mute = false
		if h.cut {
			h.cut = false
			w.feed(NodeRecovered{At: w.now, Host: h.name, Incarnation: fmt.Sprint("i", h.inc), LastBeat: w.now})
		}
	case 11: // a crashed host boots
		if !h.up {
			w.boot(h)
			w.feed(NodeRecovered{At: w.now, Host: h.name, Incarnation: fmt.Sprint("i", h.inc), NewIncarnation: true})
		}
	case 12, 13: // the detector's verdict, now and then wrong
		if !h.up || h.cut || h.mute || p.intn(4) == 0 {
			// The shell adds when it last saw the agent renew its lease.
			w.feed(NodeFailed{At: w.now, Host: h.name, Incarnation: fmt.Sprint("i", h.inc), LastBeat: h.lastBeat, LastSeq: h.seq,
				LastLease: h.lastLease})
		}
	case 14: // a site detector's finding
		sev := []Severity{SeverityFatal, SeverityDegraded, SeverityOK, SeverityOK}[p.intn(4)]
		w.feed(NodeFault{At: w.now, Host: h.name, Severity: sev, Reason: "sensor"})
	case 15: // a domain crashes; its agent reports it if it can
		if _, ok := h.doms[vm]; ok && h.up {
			delete(h.doms, vm)
			if !h.cut {
				w.feed(VMFailed{At: w.now, Host: h.name, VM: vm, Reason: "crashed"})
			}
		}
	case 16: // a scheduled checkpoint, when every member runs
		if g := groupOf(w.vms[vm]); w.allRun(g) {
			w.commit(g)
		}
	case 17: // a new leader resumes from the persisted state
		if p.intn(2) == 0 {
			w.s = w.loadKV()
		} else {
			b, err := json.Marshal(w.s)
			if err != nil {
				w.violation("marshal: %v", err)
			}
			var s State
			if err := json.Unmarshal(b, &s); err != nil {
				w.violation("unmarshal: %v", err)
			}
			if !sameState(w.s, &s) {
				w.violation("state does not survive a JSON round trip")
			}
			w.s = &s
		}
		w.term++
		w.feed(Leader{At: w.now, Term: w.term})
	case 18: // an operator
		switch p.intn(6) {
		case 0:
			w.feed(Maintenance{At: w.now, Host: h.name, On: true, Drain: p.intn(2) == 0})
		case 1:
			w.feed(Maintenance{At: w.now, Host: h.name, On: false})
		case 2:
			w.feed(RestartVM{At: w.now, VM: vm})
		case 3:
			w.feed(MoveVM{At: w.now, VM: vm, Host: h.name})
		case 4:
			w.feed(ReleaseQuarantine{At: w.now, Host: h.name})
		case 5:
			w.feed(ResumeRestarts{At: w.now})
		}
	case 20: // the bus acknowledges an unarmed agent's lease
		if h.up && !h.cut && h.unarmed {
			w.arm(h)
		}
	case 19: // late answers to old sends, and duplicates
		if len(w.queue) > 0 {
			r := w.queue[p.intn(len(w.queue))].Op()
			r.At, r.Outcome = w.now, OutcomeOK
			r.Epoch.Seq--
			w.feed(r)
		}
	}
}

// heal ends every failure and lets the core finish its work.
func (w *world) heal() {
	w.failures = false
	for _, name := range w.names {
		h := w.hosts[name]
		if !h.up {
			w.boot(h)
			w.feed(NodeRecovered{At: w.now, Host: name, Incarnation: fmt.Sprint("i", h.inc), NewIncarnation: true})
		}
		if h.cut {
			h.cut = false
			w.feed(NodeRecovered{At: w.now, Host: name, Incarnation: fmt.Sprint("i", h.inc), LastBeat: w.now})
		}
		h.mute = false
		if h.unarmed {
			w.arm(h)
		}
		w.feed(NodeFault{At: w.now, Host: name, Severity: SeverityOK})
		w.feed(Maintenance{At: w.now, Host: name, On: false})
		w.feed(ReleaseQuarantine{At: w.now, Host: name})
	}
	w.feed(ResumeRestarts{At: w.now})
	for round := range 200 {
		// An operator restarts what was given up on.
		for _, vm := range w.vmIDs {
			if v := w.s.VMs[vm]; round%20 == 0 && v.State == VMUnrecoverable && !w.unrecoverableAllowed(v) &&
				w.s.Groups[groupOf(v.VMConfig)].Rollback == nil {
				w.feed(RestartVM{At: w.now, VM: vm})
			}
		}
		w.now = w.now.Add(2 * time.Second)
		for _, name := range w.names {
			// A late fence command may still power a host off: the
			// detector reports it, and it boots again.
			if h := w.hosts[name]; !h.up {
				w.feed(NodeFailed{At: w.now, Host: name, Incarnation: fmt.Sprint("i", h.inc), LastBeat: h.lastBeat, LastSeq: h.seq})
				w.boot(h)
			}
		}
		w.beat()
		w.feed(Tick{At: w.now})
		for len(w.queue) > 0 {
			w.answer(0, false)
		}
	}
}

// boot starts a crashed host with a new agent. Requests sent to the old one
// died with it (NATS request/reply keeps nothing): they time out.
func (w *world) boot(h *whost) {
	h.up, h.cut, h.mute, h.inc, h.seq, h.high, h.term = true, false, false, h.inc+1, 0, map[string]Epoch{}, 0
	h.unarmed = w.pick.intn(3) == 0 // a new agent on a bus slow to acknowledge its lease
	var lost []Command
	w.queue = slices.DeleteFunc(w.queue, func(c Command) bool {
		if c.Op().Host == h.name {
			lost = append(lost, c)
			return true
		}
		return false
	})
	for _, c := range lost {
		r := c.Op()
		r.At, r.Outcome = w.now, OutcomeRetryable
		w.feed(r)
	}
}

// allRun reports whether every member of g runs exactly once: only then can
// the coordinator checkpoint it.
func (w *world) allRun(g string) bool {
	for _, vm := range w.vmIDs {
		if groupOf(w.vms[vm]) != g {
			continue
		}
		if running, _ := w.copies(vm); len(running) != 1 {
			return false
		}
	}
	return true
}

// checkHealed: every VM that may be restarted runs once, where the core says.
func (w *world) checkHealed() {
	for _, vm := range w.vmIDs {
		v := w.s.VMs[vm]
		running, paused := w.copies(vm)
		switch v.State {
		case VMRunning:
			if len(running) != 1 || running[0] != v.Host || len(paused) != 0 {
				w.violation("vm %s believed running on %s, runs on %v, paused on %v\n%s", vm, v.Host, running, paused, w.describe())
			}
		case VMUnrecoverable:
			if v.Policy != PolicyNone && !w.unrecoverableAllowed(v) {
				w.violation("vm %s unrecoverable although its group has a usable checkpoint: %s", vm, v.Reason)
			}
			for _, h := range append(running, paused...) {
				if h != v.Host {
					w.violation("vm %s has a stray copy on %s (believed on %q)", vm, h, v.Host)
				}
			}
		default:
			w.violation("vm %s still %s after healing (host %q, op %+v)\n%s", vm, v.State, v.Host, v.Op, w.describe())
		}
	}
	for _, g := range w.s.Groups {
		seqs := map[int64]bool{}
		for _, m := range g.Members {
			if v := w.s.VMs[m]; v.State == VMRunning {
				seqs[w.hosts[v.Host].doms[m].seq] = true
			}
		}
		if len(seqs) > 1 && allRunning(w.s, g) {
			w.violation("group %s runs from several checkpoints: %v", g.Name, seqs)
		}
	}
}

func allRunning(s *State, g *Group) bool {
	for _, m := range g.Members {
		if s.VMs[m].State != VMRunning {
			return false
		}
	}
	return true
}

// unrecoverableAllowed: no usable checkpoint and a member that may not be
// cold-started, or the group's policy is none.
func (w *world) unrecoverableAllowed(v *VM) bool {
	g := w.s.Groups[groupOf(v.VMConfig)]
	if _, ok := g.latest(0); !ok {
		return true
	}
	for _, m := range g.Members {
		if w.s.VMs[m].Policy == PolicyNone {
			return true
		}
	}
	return false
}

func runWorld(t testing.TB, pick *picker, steps int) {
	w := newWorld(t, pick)
	for i := 0; i < steps && !pick.done(); i++ {
		w.step()
	}
	w.heal()
	w.checkHealed()
}

// TestProperty_RandomClusters runs seeded random histories.
func TestProperty_RandomClusters(t *testing.T) {
	runs := *worldRuns
	if testing.Short() {
		runs = 10
	}
	for seed := range runs {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runWorld(t, &picker{rng: rand.New(rand.NewPCG(uint64(seed), 6))}, 400)
		})
	}
}

// FuzzApply is the same property test driven by the fuzzer's bytes:
//
//	go test -run '^$' -fuzz FuzzApply -fuzztime 60s ./supervisor/core
func FuzzApply(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte("\x03\x01\x02\x08\x00\x0c\x00\x00\x03\x05\x03\x05\x03\x05"))
	f.Add([]byte("crash, partition, heal, leader change, answers, ticks"))
	f.Fuzz(func(t *testing.T, data []byte) {
		runWorld(t, &picker{data: data}, 1000)
	})
}
