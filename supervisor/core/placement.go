package core

import (
	"cmp"
	"maps"
	"slices"
)

// place starts restores of pending members, highest priority first, within
// max_concurrent_restores, unless restarts are paused. A member that fits
// nowhere waits: every input (a beat with more free memory, a host back)
// tries again.
func (m *machine) place() {
	if m.s.Storm != nil {
		return
	}
	x := m.flush()
	var pending []*VM
	inFlight := 0
	for _, gname := range slices.Sorted(maps.Keys(x.busyGroups)) {
		g := m.s.Groups[gname]
		if g.Rollback == nil {
			continue
		}
		for _, name := range g.Members {
			switch v := m.s.VMs[name]; v.State {
			case VMPending:
				pending = append(pending, v)
			case VMRestoring:
				inFlight++
			}
		}
	}
	if len(pending) == 0 {
		return
	}
	slices.SortFunc(pending, func(a, b *VM) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		if c := cmp.Compare(groupOf(a.VMConfig), groupOf(b.VMConfig)); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	hosts, lastResort := m.candidates()
	for _, v := range pending {
		if inFlight >= m.p.MaxConcurrentRestores {
			return
		}
		g := m.s.Groups[groupOf(v.VMConfig)]
		c := m.choose(hosts, g, v)
		if c == nil {
			// A quarantined host is avoided, not forbidden: a VM that
			// fits on no other host runs there rather than nowhere.
			// The soak lane crashed each of four hosts four times in
			// 30 minutes; all four were quarantined and every VM
			// stayed down until an operator would have come.
			c = m.choose(lastResort, g, v)
		}
		if c == nil {
			continue
		}
		h := c.h
		c.free -= v.MemoryMiB
		inFlight++
		m.touchHost(h.Name)
		if h.Reserved == nil {
			h.Reserved = map[string]int64{}
		}
		h.Reserved[v.Name] = v.MemoryMiB
		g.Rollback.Committed = true
		m.touchGroup(g.Name)
		v.State = VMRestoring
		v.Op = &Op{Kind: restoreKind(g.Rollback.Seq), Host: h.Name, Seq: g.Rollback.Seq}
		m.sendVMOp(v, true)
	}
}

// candidate is a host that may get work and its free memory, kept up to
// date as one placement pass fills it.
type candidate struct {
	h    *Host
	free int64
}

// candidates are the hosts that may get work (placeable, and not held out
// as awaiting reconciliation: ready.go), and, as a last resort, the
// quarantined hosts that would otherwise take work; in no particular order:
// choose ranks them by a total order, so the map's order does not matter.
func (m *machine) candidates() (hosts, lastResort []candidate) {
	hosts = make([]candidate, 0, len(m.s.Hosts))
	for _, h := range m.s.Hosts {
		switch {
		case m.takesWork(h):
			hosts = append(hosts, candidate{h: h, free: h.free()})
		case h.Quarantined && m.takesWorkIfReleased(h):
			lastResort = append(lastResort, candidate{h: h, free: h.free()})
		}
	}
	return hosts, lastResort
}

// free is h's memory not yet promised to a VM.
func (h *Host) free() int64 {
	f := h.FreeMiB
	for _, r := range h.Reserved {
		f -= r
	}
	return f
}

// choose picks v's host: the operator's pin when it fits; else, among hosts
// with room that v has not failed on and that are not destroying a copy of v,
// the one with fewest members of v's group (spread), then the most free
// memory (so that load evens out). When only hosts v has failed on have room,
// it starts a new round over them.
func (m *machine) choose(hosts []candidate, g *Group, v *VM) *candidate {
	fits := func(c *candidate, tried bool) bool {
		return c.free >= v.MemoryMiB && c.h.Cleanup[v.Name] == nil && (!tried || !slices.Contains(v.Tried, c.h.Name))
	}
	if pin := g.Rollback.Pins[v.Name]; pin != "" {
		for i := range hosts {
			if c := &hosts[i]; c.h.Name == pin && fits(c, true) {
				return c
			}
		}
	}
	spread := m.spread(g, v)
	// fewer members of g, then more free memory, then the name
	better := func(a, b *candidate) bool {
		if sa, sb := spread[a.h.Name], spread[b.h.Name]; sa != sb {
			return sa < sb
		}
		if a.free != b.free {
			return a.free > b.free
		}
		return a.h.Name < b.h.Name
	}
	best := func(tried bool) *candidate {
		var b *candidate
		for i := range hosts {
			if c := &hosts[i]; fits(c, tried) && (b == nil || better(c, b)) {
				b = c
			}
		}
		return b
	}
	if c := best(true); c != nil {
		return c
	}
	if len(v.Tried) == 0 {
		return nil
	}
	c := best(false)
	if c != nil {
		m.touchVM(v.Name)
		v.Tried = nil
	}
	return c
}

// spread counts, per host, the members of g other than v there: their copy,
// or the target of their restore.
func (m *machine) spread(g *Group, v *VM) map[string]int {
	spread := map[string]int{}
	for _, name := range g.Members {
		if w := m.s.VMs[name]; name != v.Name {
			if w.Host != "" {
				spread[w.Host]++
			}
			if w.Op != nil && w.Op.Host != w.Host {
				spread[w.Op.Host]++
			}
		}
	}
	return spread
}
