package core

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// world is a simulated cluster that obeys the core's commands the way agents
// do, so that the property test can check the core against the truth rather
// than against its own beliefs: which domains really run where. Agents obey
// the contract doc.go states: commands are idempotent, an agent refuses a
// command for a VM older than one it obeyed for that VM, and an agent cut off
// from the bus destroys its domains after fence_self_timeout.
type world struct {
	t     testing.TB
	s     *State
	now   time.Time
	term  uint64
	hosts map[string]*whost
	names []string // host names, sorted
	vms   map[string]VMConfig
	vmIDs []string
	// catalog: the newest committed checkpoint per group, and the images
	// that fail verification ("group/seq/vm").
	ckpt    map[string]uint64
	corrupt map[string]bool
	queue   []Command // commands sent and not answered yet
	// failures makes agents fail commands at random (off while healing,
	// when the expensive per-step checks are skipped too)
	failures bool
	pick     *picker
	// kv is the state as a shell persists it: one key per changed host,
	// VM and group, and the meta, after every Apply (see Changes).
	kv    map[string][]byte
	steps int
}

// whost is one host as it really is.
type whost struct {
	name   string
	memMiB int64
	up     bool // powered and its agent running
	cut    bool // partitioned from the bus: no beats, no commands
	cutAt  time.Time
	// mute: its beats are lost (a stuck beacon), but its agent renews its
	// fence lease and obeys commands, so it never fences itself.
	mute bool
	// unarmed: its agent has had no lease renewal acknowledged since it
	// started, so it never fences itself; its beats say so, and it refuses
	// restores, cold starts and unpauses (restarter/fence.go, rule 0).
	unarmed   bool
	lastLease time.Time
	inc       int
	seq       uint64
	lastBeat  time.Time
	doms      map[string]wdom
	high      map[string]Epoch // per VM, the newest epoch obeyed
	term      uint64           // the newest leader term obeyed
	fenceCmd  bool             // has a fence command (power off)
}

// wdom is a domain: the checkpoint it was restored from (-1: the original,
// 0: cold start) and whether it runs or is paused.
type wdom struct {
	seq     int64
	running bool
}

func (w *world) violation(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("step %d at +%s: "+format, append([]any{w.steps, w.now.Sub(t0)}, args...)...)
}

// copies lists the hosts (up) that hold a domain of vm.
func (w *world) copies(vm string) (running, paused []string) {
	for _, name := range w.names {
		h := w.hosts[name]
		if d, ok := h.doms[vm]; ok && h.up {
			if d.running {
				running = append(running, name)
			} else {
				paused = append(paused, name)
			}
		}
	}
	return running, paused
}

// checkOneRunning is the safety property: no VM ever runs twice.
func (w *world) checkOneRunning() {
	for _, vm := range w.vmIDs {
		if running, _ := w.copies(vm); len(running) > 1 {
			w.violation("vm %s runs on %v", vm, running)
		}
	}
}

// admit applies the agent's epoch rule; false means stale_epoch (the shell
// drops such a reply: it lost the lease).
func (h *whost) admit(vm string, e Epoch) bool {
	if e.Term < h.term || e.Less(h.high[vm]) {
		return false
	}
	h.high[vm], h.term = e, e.Term
	return true
}

// exec runs c on the world and returns its result; ok is false when no answer
// is fed back (a stale_epoch reply).
func (w *world) exec(c Command) (Result, bool) {
	r := c.Op()
	r.At = w.now
	fail := func() (Outcome, bool) {
		if !w.failures {
			return "", false
		}
		switch w.pick.intn(10) {
		case 0:
			return OutcomeRetryable, true
		case 1:
			return OutcomePermanent, true
		case 2:
			// The agent fenced itself and awaits reconciliation: it
			// refuses without acting (restarter/fence.go, the latch).
			return OutcomeHostNotReady, true
		}
		return "", false
	}
	done := func(o Outcome) (Result, bool) { r.Outcome = o; return r, true }
	if g, ok := c.(CheckpointGroup); ok {
		if o, failed := fail(); failed {
			return done(o)
		}
		defer w.commit(g.Group)
		return done(OutcomeOK)
	}
	h := w.hosts[r.Host]
	if f, ok := c.(FenceHost); ok {
		if !h.fenceCmd {
			return done(OutcomePermanent)
		}
		if o, failed := fail(); failed && o == OutcomeRetryable {
			return done(o)
		}
		_ = f
		h.up, h.doms = false, map[string]wdom{}
		return done(OutcomeOK)
	}
	if !h.up || h.cut {
		return done(OutcomeRetryable) // no answer in time
	}
	if !h.admit(r.VM, r.Epoch) {
		return r, false
	}
	if _, destroy := c.(DestroyVM); h.unarmed && !destroy {
		return done(OutcomeHostNotReady) // not armed: takes on nothing
	}
	switch c := c.(type) {
	case DestroyVM:
		delete(h.doms, c.VM)
		return done(OutcomeOK)
	case RestoreVM, ColdStartVM:
		seq := int64(0)
		if rc, ok := c.(RestoreVM); ok {
			seq = int64(rc.Seq)
			if w.corrupt[fmt.Sprintf("%s/%d/%s", rc.Group, rc.Seq, rc.VM)] {
				return done(OutcomeImageCorrupt)
			}
		}
		if o, failed := fail(); failed {
			return done(o)
		}
		// Fence before restart, checked against the truth for the
		// restore the core awaits. A late send it gave up on may still
		// run here (a paused copy that nothing will unpause: its newer
		// commands for the VM never reached this agent); the beats then
		// show it and the core has it destroyed.
		if v := w.s.VMs[r.VM]; v != nil && v.Op != nil && v.Op.Epoch == r.Epoch {
			if running, _ := w.copies(r.VM); len(running) > 0 {
				w.violation("%s while %s runs on %v", c, r.VM, running)
			}
		}
		if d, ok := h.doms[r.VM]; ok && d.seq == seq {
			return done(OutcomeOK) // idempotent
		}
		h.doms[r.VM] = wdom{seq: seq}
		return done(OutcomeOK)
	case UnpauseVM:
		d, ok := h.doms[c.VM]
		if !ok {
			return done(OutcomePermanent)
		}
		if o, failed := fail(); failed && o != OutcomePermanent {
			return done(o)
		}
		d.running = true
		h.doms[c.VM] = d
		w.checkOneRunning()
		return done(OutcomeOK)
	}
	w.violation("unknown command %T", c)
	return r, false
}

// commit records a new checkpoint of g in the catalog; now and then one of
// its images is corrupt.
func (w *world) commit(g string) {
	var members []string
	for _, vm := range w.vmIDs {
		if groupOf(w.vms[vm]) == g {
			members = append(members, vm)
		}
	}
	w.ckpt[g]++
	seq := w.ckpt[g]
	if w.failures && w.pick.intn(6) == 0 {
		w.corrupt[fmt.Sprintf("%s/%d/%s", g, seq, members[w.pick.intn(len(members))])] = true
	}
	w.feed(CheckpointCommitted{At: w.now, Group: g, Seq: seq, VMs: members})
}

// beat delivers a heartbeat of every host that can reach the bus, and lets
// cut-off agents fence themselves.
func (w *world) beat() {
	for _, name := range w.names {
		h := w.hosts[name]
		if h.up && h.cut && !h.unarmed && !w.now.Before(h.cutAt.Add(w.s.Policy.FenceSelfTimeout)) {
			h.doms = map[string]wdom{}
		}
		if !h.up || h.cut {
			continue
		}
		if h.mute {
			w.arm(h)
			continue
		}
		h.seq++
		h.lastBeat = w.now
		free := h.memMiB
		for vm := range h.doms {
			free -= w.vms[vm].MemoryMiB
		}
		w.feed(HostBeat{At: w.now, Host: name, Incarnation: fmt.Sprint("i", h.inc), Seq: h.seq,
			CapacityMiB: h.memMiB, FreeMiB: max(free, 0), Domains: slices.Sorted(maps.Keys(h.doms)), FenceUnarmed: h.unarmed})
	}
}

// arm delivers a lease renewal of h's agent: the bus acknowledged it, and
// from now on the agent fences itself when cut off.
func (w *world) arm(h *whost) {
	h.unarmed, h.lastLease = false, w.now
	w.feed(HostLeaseRenewed{At: w.now, Host: h.name, Incarnation: fmt.Sprint("i", h.inc)})
}

// persist writes what changed into the key-value store.
func (w *world) persist(c Changes) {
	if w.kv == nil {
		w.kv = map[string][]byte{}
		c = Changes{Meta: true}
		for k := range w.s.Hosts {
			c.Hosts = append(c.Hosts, k)
		}
		for k := range w.s.VMs {
			c.VMs = append(c.VMs, k)
		}
		for k := range w.s.Groups {
			c.Groups = append(c.Groups, k)
		}
	}
	put := func(key string, v any, present bool) {
		if !present {
			delete(w.kv, key)
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			w.violation("marshal %s: %v", key, err)
		}
		w.kv[key] = b
	}
	if c.Meta {
		put("meta", w.s.Meta, true)
	}
	for _, k := range c.Hosts {
		h, ok := w.s.Hosts[k]
		put("host/"+k, h, ok)
	}
	for _, k := range c.VMs {
		v, ok := w.s.VMs[k]
		put("vm/"+k, v, ok)
	}
	for _, k := range c.Groups {
		g, ok := w.s.Groups[k]
		put("group/"+k, g, ok)
	}
}

// loadKV rebuilds the state from the key-value store, as a new leader does,
// and checks that it is the state (but for Now, which is not worth a write).
func (w *world) loadKV() *State {
	s := &State{Hosts: map[string]*Host{}, VMs: map[string]*VM{}, Groups: map[string]*Group{}}
	for key, b := range w.kv {
		kind, name, _ := strings.Cut(key, "/")
		var err error
		switch kind {
		case "meta":
			err = json.Unmarshal(b, &s.Meta)
		case "host":
			h := new(Host)
			err, s.Hosts[name] = json.Unmarshal(b, h), h
		case "vm":
			v := new(VM)
			err, s.VMs[name] = json.Unmarshal(b, v), v
		case "group":
			g := new(Group)
			err, s.Groups[name] = json.Unmarshal(b, g), g
		}
		if err != nil {
			w.violation("load %s: %v", key, err)
		}
	}
	if err := s.Check(); err != nil {
		w.violation("state loaded from the KV: %v", err)
	}
	s.Now = w.s.Now
	if !sameState(s, w.s) {
		w.violation("the state rebuilt from the changed entries differs from the live one")
	}
	return s
}

// describe renders the world, for failure messages.
func (w *world) describe() string {
	var b strings.Builder
	for _, name := range w.names {
		h := w.hosts[name]
		fmt.Fprintf(&b, "  %s up=%t cut=%t doms=%v\n", name, h.up, h.cut, h.doms)
	}
	return b.String()
}
