package core

import (
	"fmt"
	"maps"
	"slices"
)

// This file is the whole-group rollback: when one member is lost, every member
// goes back to the same checkpoint. Members whose copy may still run are
// stopped first (fenced with their host, or destroyed), then placed and
// restored paused, and the group is unpaused only when every member is
// restored from that checkpoint.

// lost handles a VM whose copy on v.Host is lost or in doubt (its host failed,
// it crashed, it vanished). committed says whether the loss is certain (a
// rollback started for it can no longer be abandoned when a host returns).
func (m *machine) lost(v *VM, reason string, committed bool) {
	m.touchVM(v.Name)
	g := m.s.Groups[groupOf(v.VMConfig)]
	switch {
	case g.Rollback == nil:
		m.startRollback(g, reason, committed, v)
	case g.Rollback.Unpausing:
		// Some members may already run again: they are no longer from
		// the same cut as a restore of this one would be.
		m.restartRollback(g, reason)
	default:
		m.resetMember(v)
		if committed {
			g.Rollback.Committed = true
		}
	}
}

// startRollback begins a rollback of g to its latest usable checkpoint. When
// there is none and not every member may be cold-started, or a member's
// policy is none, the members already lost (lost, and those without a live
// copy) are reported unrecoverable once the loss is certain (committed), and
// the others are left running: destroying them would not bring the group
// back.
func (m *machine) startRollback(g *Group, reason string, committed bool, lost *VM) {
	m.touchGroup(g.Name)
	seq, ok := g.latest(0)
	why := ""
	for _, name := range g.Members {
		if m.s.VMs[name].Policy == PolicyNone {
			why = "restart policy of " + name + " is none"
		} else if !ok && m.s.VMs[name].Policy != PolicyRestoreOrCold && why == "" {
			why = "no usable checkpoint and the restart policy of " + name + " forbids a cold start"
		}
	}
	if why != "" {
		if !committed && lost != nil && lost.State == VMRunning && lost.Op == nil {
			// Nothing can bring the lost members back, but they are
			// not surely lost: their host failed and is not fenced
			// yet. A host that returns brings them back running; the
			// verdict waits for the fence (fenced calls lost again,
			// committed). In CI a detector behind a stalled route
			// failed a live host before its first checkpoint, and its
			// running VM was reported unrecoverable for good.
			return
		}
		for _, name := range g.Members {
			if v := m.s.VMs[name]; (v == lost || m.isLost(v)) && v.State != VMUnrecoverable {
				m.unrecoverable(v, why)
			}
		}
		return
	}
	g.Rollback = &Rollback{Seq: seq, Reason: reason, Started: m.now, Epoch: m.epoch(), Committed: committed}
	if g.Drain != nil {
		g.Rollback.Pins = g.Drain.Pins
		g.Drain = nil
	}
	for _, name := range g.Members {
		v := m.s.VMs[name]
		m.touchVM(name)
		v.Attempts, v.HostFailures, v.Tried, v.Reason = 0, 0, nil, ""
		if v.State == VMUnplaced && v.Host == "" {
			// Never seen running: there is nothing to roll back, but
			// the group is restored as a whole.
			v.State = VMPending
		}
		m.resetMember(v)
	}
}

// isLost reports whether v has no copy that surely runs.
func (m *machine) isLost(v *VM) bool {
	if v.Host == "" || v.State == VMUnrecoverable {
		return true
	}
	return m.s.Hosts[v.Host].down()
}

// resetMember sends v back to the start of the rollback: stopping while a
// copy may exist, else pending. A destroy in flight keeps going.
func (m *machine) resetMember(v *VM) {
	m.touchVM(v.Name)
	if v.Op != nil {
		if v.Op.Kind == OpDestroy {
			v.State = VMStopping
			return
		}
		// An answer may never come for a cancelled op: assume its copy
		// exists, so that it is destroyed (the newer epoch of the
		// destroy wins over the cancelled command at the agent).
		v.Host = v.Op.Host
		v.Op = nil
	}
	if v.Host != "" {
		v.State = VMStopping
	} else {
		v.State = VMPending
	}
}

// restartRollback starts g's rollback over, to the same checkpoint: every
// member, including those already running again, is stopped and restored.
func (m *machine) restartRollback(g *Group, reason string) {
	m.touchGroup(g.Name)
	rb := g.Rollback
	rb.Unpausing, rb.Committed = false, true
	rb.Reason = reason
	for _, name := range g.Members {
		m.resetMember(m.s.VMs[name])
	}
}

// failRollback gives up on g: every member is reported unrecoverable. Copies
// that exist (paused restores, copies on hosts not yet fenced) stay where they
// are, recorded in Host, until an operator restarts the group.
func (m *machine) failRollback(g *Group, why string) {
	m.touchGroup(g.Name)
	for _, name := range g.Members {
		v := m.s.VMs[name]
		m.touchVM(name)
		if v.Op != nil {
			if v.Op.Kind != OpDestroy {
				v.Host = v.Op.Host
			}
			v.Op = nil
		}
		m.unrecoverable(v, why)
	}
	g.Rollback = nil
}

func (m *machine) unrecoverable(v *VM, why string) {
	m.touchVM(v.Name)
	v.State, v.Reason = VMUnrecoverable, why
	m.s.Counters.Unrecovered++
	m.publish(Event{Type: EventVMUnrecoverable, VM: v.Name, Group: v.Group, Reason: why})
}

// stepGroups moves every busy group: drains wait for their checkpoint,
// rollbacks stop members, resend what is due, and unpause when complete.
func (m *machine) stepGroups() {
	x := m.flush()
	for _, name := range slices.Sorted(maps.Keys(x.busyGroups)) {
		g := m.s.Groups[name]
		m.stepDrain(g)
		if g.Rollback != nil {
			m.stepRollback(g)
		}
	}
}

func (m *machine) stepRollback(g *Group) {
	rb := g.Rollback
	if !rb.Committed && m.allHome(g) {
		// Every copy we were about to replace still runs and nothing was
		// done yet: the hosts were cut off, not dead.
		m.touchGroup(g.Name)
		for _, name := range g.Members {
			m.touchVM(name)
			m.s.VMs[name].State = VMRunning
		}
		g.Rollback = nil
		return
	}
	restored := 0
	for _, name := range g.Members {
		v := m.s.VMs[name]
		if v.State == VMRestored && v.Seq != rb.Seq {
			// Restored from a checkpoint found corrupt since.
			m.touchVM(name)
			v.State = VMStopping
		}
		switch v.State {
		case VMStopping:
			m.stepStopping(g, v)
		case VMRestoring:
			if m.due(v.Op) {
				if v.Op.Seq != rb.Seq {
					v.Op.Seq, v.Op.Kind = rb.Seq, restoreKind(rb.Seq)
				}
				m.sendVMOp(v, true)
			}
		case VMUnpausing:
			if m.due(v.Op) {
				m.sendVMOp(v, false)
			}
		case VMRestored:
			restored++
		}
	}
	if !rb.Unpausing && restored == len(g.Members) {
		m.touchGroup(g.Name)
		rb.Unpausing = true
		for _, name := range g.Members {
			v := m.s.VMs[name]
			v.State, v.Op = VMUnpausing, &Op{Kind: OpUnpause, Host: v.Host}
			m.sendVMOp(v, false)
		}
	}
}

func restoreKind(seq uint64) OpKind {
	if seq == 0 {
		return OpColdStart
	}
	return OpRestore
}

// stepStopping gets rid of v's old copy: a failed host is waited for
// (fence), any other host that may answer is told to destroy it.
func (m *machine) stepStopping(g *Group, v *VM) {
	if v.Host == "" {
		if m.fenceFirst(v) {
			return // its copy is gone, its failed host not fenced yet
		}
		m.touchVM(v.Name)
		v.State, v.Op = VMPending, nil
		return
	}
	h := m.s.Hosts[v.Host]
	switch {
	case h.State == HostFenced:
		m.gone(v)
		v.State = VMPending
	case h.State == HostFailed:
		// Fence before restart: the copy may run until the host is
		// fenced (by command, by its self-fence deadline once silent,
		// or by its agent after a fatal fault: fault.go).
	case h.State == HostRejoining && !h.Synced:
		// Its domain list will tell whether the copy is still there.
	case v.Op == nil:
		if m.s.Storm != nil || (!g.Rollback.Committed && m.awaitsHost(g)) {
			// Survivors are kept while a lost member's host may still
			// come back with its copy: then nothing was lost and the
			// rollback is abandoned. Waiting costs little: the group
			// unpauses only once that member is restored anyway.
			return
		}
		g.Rollback.Committed = true
		m.touchGroup(g.Name)
		v.Op = &Op{Kind: OpDestroy, Host: v.Host}
		m.sendVMOp(v, false)
	case m.due(v.Op):
		m.sendVMOp(v, false)
	}
}

// awaitsHost reports whether a member's copy is on a host that is silent and
// not fenced yet, or back but not yet reconciled.
func (m *machine) awaitsHost(g *Group) bool {
	for _, name := range g.Members {
		v := m.s.VMs[name]
		if v.State != VMStopping || v.Host == "" {
			continue
		}
		h := m.s.Hosts[v.Host]
		if (h.State == HostFailed && h.FailedBy == FailedBySilence) || (h.State == HostRejoining && !h.Synced) {
			return true
		}
	}
	return false
}

// allHome reports whether every member still has its copy on a live host
// that reported it, so that the rollback can be abandoned.
func (m *machine) allHome(g *Group) bool {
	for _, name := range g.Members {
		v := m.s.VMs[name]
		if v.Host == "" || v.Op != nil || v.State != VMStopping {
			return false
		}
		switch h := m.s.Hosts[v.Host]; h.State {
		case HostHealthy, HostSuspect:
		case HostRejoining:
			if !h.Synced {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// unpaused records that v runs again; the last member completes the rollback.
func (m *machine) unpaused(g *Group, v *VM) {
	rb := g.Rollback
	m.touchVM(v.Name)
	v.State, v.Op = VMRunning, nil
	m.publish(Event{Type: EventVMRestarted, VM: v.Name, Group: v.Group, Host: v.Host, Seq: v.Seq,
		ColdStart: rb.Seq == 0, Duration: m.now.Sub(rb.Started), Epoch: rb.Epoch})
	members := make([]Member, 0, len(g.Members))
	for _, name := range g.Members {
		w := m.s.VMs[name]
		if w.State != VMRunning {
			return
		}
		members = append(members, Member{VM: name, Host: w.Host})
	}
	m.touchGroup(g.Name)
	g.Rollback = nil
	m.s.Counters.Rollbacks++
	if v.Group != "" {
		m.publish(Event{Type: EventGroupRolledBack, Group: g.Name, Seq: rb.Seq, Members: members,
			Reason: rb.Reason, Duration: m.now.Sub(rb.Started), Epoch: rb.Epoch})
	}
}

// retarget moves g's rollback to the checkpoint before a corrupt one (or to a
// cold start); members restored from the corrupt one are stopped and restored
// again, so that all come from one cut.
func (m *machine) retarget(g *Group, corrupt uint64) {
	m.touchGroup(g.Name)
	for i := range g.Checkpoints {
		if g.Checkpoints[i].Seq == corrupt {
			g.Checkpoints[i].Corrupt = true
		}
	}
	rb := g.Rollback
	if rb.Seq != corrupt {
		return // already moved on
	}
	if seq, ok := g.latest(corrupt); ok {
		rb.Seq = seq
		return
	}
	for _, name := range g.Members {
		if m.s.VMs[name].Policy != PolicyRestoreOrCold {
			m.failRollback(g, fmt.Sprintf("checkpoint %d failed verification, no older one is usable, and the restart policy of %s forbids a cold start", corrupt, name))
			return
		}
	}
	rb.Seq = 0
}
