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
	hosts := m.candidates()
	for _, v := range pending {
		if inFlight >= m.p.MaxConcurrentRestores {
			return
		}
		g := m.s.Groups[groupOf(v.VMConfig)]
		h := m.choose(hosts, g, v)
		if h == nil {
			continue
		}
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

// candidates are the hosts that may get work, sorted by name so that ties
// between equal hosts break the same way every time.
func (m *machine) candidates() []*Host {
	var hs []*Host
	for _, h := range m.s.Hosts {
		if h.placeable() {
			hs = append(hs, h)
		}
	}
	slices.SortFunc(hs, func(a, b *Host) int { return cmp.Compare(a.Name, b.Name) })
	return hs
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
func (m *machine) choose(hosts []*Host, g *Group, v *VM) *Host {
	fits := func(h *Host, tried bool) bool {
		return h.free() >= v.MemoryMiB && h.Cleanup[v.Name] == nil && (!tried || !slices.Contains(v.Tried, h.Name))
	}
	if pin := g.Rollback.Pins[v.Name]; pin != "" {
		if h := m.s.Hosts[pin]; h != nil && h.placeable() && fits(h, true) {
			return h
		}
	}
	// Members of g per host (their copy or their restore target).
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
	best := func(tried bool) *Host {
		var b *Host
		for _, h := range hosts {
			if !fits(h, tried) {
				continue
			}
			if b == nil || spread[h.Name] < spread[b.Name] ||
				(spread[h.Name] == spread[b.Name] && h.free() > b.free()) {
				b = h
			}
		}
		return b
	}
	if h := best(true); h != nil {
		return h
	}
	if len(v.Tried) == 0 {
		return nil
	}
	h := best(false)
	if h != nil {
		m.touchVM(v.Name)
		v.Tried = nil
	}
	return h
}
