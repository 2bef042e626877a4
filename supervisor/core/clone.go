package core

import (
	"maps"
	"slices"
)

// Clone returns a deep copy of s that shares nothing with it, for a status
// snapshot handed to another goroutine, or a test that keeps the state before
// an Apply. Pending Changes are not copied.
func (s *State) Clone() *State {
	c := &State{Meta: s.Meta}
	if s.Storm != nil {
		st := *s.Storm
		c.Storm = &st
	}
	c.Hosts = make(map[string]*Host, len(s.Hosts))
	for k, h := range s.Hosts {
		c.Hosts[k] = h.clone()
	}
	c.VMs = make(map[string]*VM, len(s.VMs))
	for k, v := range s.VMs {
		c.VMs[k] = v.clone()
	}
	c.Groups = make(map[string]*Group, len(s.Groups))
	for k, g := range s.Groups {
		c.Groups[k] = g.clone()
	}
	return c
}

func (o *Op) clone() *Op {
	if o == nil {
		return nil
	}
	c := *o
	return &c
}

func (h *Host) clone() *Host {
	c := *h
	c.Reserved = maps.Clone(h.Reserved)
	c.Failures = slices.Clone(h.Failures)
	c.Fence = h.Fence.clone()
	if h.Cleanup != nil {
		c.Cleanup = make(map[string]*Op, len(h.Cleanup))
		for k, op := range h.Cleanup {
			c.Cleanup[k] = op.clone()
		}
	}
	return &c
}

func (v *VM) clone() *VM {
	c := *v
	c.Op = v.Op.clone()
	c.Tried = slices.Clone(v.Tried)
	return &c
}

func (g *Group) clone() *Group {
	c := *g
	c.Members = slices.Clone(g.Members)
	c.Checkpoints = slices.Clone(g.Checkpoints)
	for i := range c.Checkpoints {
		c.Checkpoints[i].VMs = slices.Clone(g.Checkpoints[i].VMs)
	}
	if g.Rollback != nil {
		rb := *g.Rollback
		rb.Pins = maps.Clone(g.Rollback.Pins)
		c.Rollback = &rb
	}
	if g.Drain != nil {
		d := *g.Drain
		d.Op = g.Drain.Op.clone()
		d.Pins = maps.Clone(g.Drain.Pins)
		c.Drain = &d
	}
	return &c
}
