package core

import "time"

// This file turns the ops recorded in the state into commands. Each send takes
// a fresh epoch, so an answer to an earlier send of the same op is stale.

func (m *machine) send(op *Op) Epoch {
	op.Epoch = m.epoch()
	op.Due = time.Time{}
	op.Sends++
	return op.Epoch
}

func (m *machine) sendFence(h *Host) {
	m.touchHost(h.Name)
	m.emit(FenceHost{Host: h.Name, Epoch: m.send(h.Fence), SelfFenceDeadline: h.FenceDeadline})
}

func (m *machine) sendCleanup(h *Host, vm string) {
	m.touchHost(h.Name)
	op := h.Cleanup[vm]
	m.emit(DestroyVM{Host: h.Name, VM: vm, Epoch: m.send(op), Reason: op.Reason})
}

func (m *machine) sendCheckpoint(g *Group) {
	m.touchGroup(g.Name)
	g.Drain.Accepted = false
	m.emit(CheckpointGroup{Group: g.Name, Epoch: m.send(g.Drain.Op), Reason: g.Drain.Reason})
}

// sendVMOp sends v's op. attempt is false when the same attempt is sent again
// under a new leader: it is not counted and not announced again.
func (m *machine) sendVMOp(v *VM, attempt bool) {
	m.touchVM(v.Name)
	op := v.Op
	e := m.send(op)
	switch op.Kind {
	case OpDestroy:
		m.emit(DestroyVM{Host: op.Host, VM: v.Name, Epoch: e, Reason: "rollback"})
	case OpRestore, OpColdStart:
		if attempt {
			v.Attempts++
			m.s.Counters.Restores++
		}
		if op.Kind == OpRestore {
			m.emit(RestoreVM{Host: op.Host, VM: v.Name, Group: groupOf(v.VMConfig), Seq: op.Seq,
				MemoryMiB: v.MemoryMiB, Epoch: e, Paused: true})
		} else {
			m.emit(ColdStartVM{Host: op.Host, VM: v.Name, Group: groupOf(v.VMConfig),
				MemoryMiB: v.MemoryMiB, Epoch: e, Paused: true})
		}
		if attempt {
			m.publish(Event{Type: EventVMRestarting, VM: v.Name, Group: v.Group, FromHost: v.Prev,
				Host: op.Host, Seq: op.Seq, ColdStart: op.Kind == OpColdStart, Attempt: v.Attempts, Epoch: e})
		}
	case OpUnpause:
		m.emit(UnpauseVM{Host: op.Host, VM: v.Name, Group: groupOf(v.VMConfig), Epoch: e})
	}
}
