package core

import (
	"fmt"
	"slices"
)

// maxCheckpoints bounds the checkpoints remembered per group, newest first,
// should the catalog's deletions be missed: a rollback never needs to fall
// back further than a few corrupt images.
const maxCheckpoints = 32

// onCommitted records a committed checkpoint (from the catalog, at start, or
// checkpoint.committed). A drain waiting for it starts its rollback.
func (m *machine) onCommitted(in CheckpointCommitted) error {
	if in.Group == "" || in.Seq == 0 {
		return fmt.Errorf("%w: checkpoint %d of group %q", ErrInvalid, in.Seq, in.Group)
	}
	g := m.group(in.Group)
	m.touchGroup(g.Name)
	vms := slices.Sorted(slices.Values(in.VMs))
	i, found := slices.BinarySearchFunc(g.Checkpoints, in.Seq, func(c Checkpoint, seq uint64) int {
		// newest first: descending order
		switch {
		case c.Seq > seq:
			return -1
		case c.Seq < seq:
			return 1
		}
		return 0
	})
	if found {
		g.Checkpoints[i].VMs = vms
	} else {
		g.Checkpoints = slices.Insert(g.Checkpoints, i, Checkpoint{Seq: in.Seq, VMs: vms})
		if len(g.Checkpoints) > maxCheckpoints {
			g.Checkpoints = g.Checkpoints[:maxCheckpoints]
		}
	}
	if d := g.Drain; d != nil && in.Seq > d.After {
		if seq, ok := g.latest(0); ok && seq == in.Seq {
			m.startRollback(g, d.Reason, true, nil)
		}
	}
	return nil
}

func (m *machine) onDeleted(in CheckpointDeleted) error {
	g := m.s.Groups[in.Group]
	if g == nil {
		return fmt.Errorf("%w: %q", ErrUnknownGroup, in.Group)
	}
	i := slices.IndexFunc(g.Checkpoints, func(c Checkpoint) bool { return c.Seq == in.Seq })
	if i < 0 {
		return nil
	}
	m.touchGroup(g.Name)
	g.Checkpoints = slices.Delete(g.Checkpoints, i, i+1)
	if len(g.Members) == 0 && len(g.Checkpoints) == 0 && g.Rollback == nil && g.Drain == nil {
		delete(m.s.Groups, g.Name)
	}
	return nil
}
