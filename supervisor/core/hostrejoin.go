package core

import (
	"maps"
	"slices"
	"time"
)

// This file is the return of a failed or fenced host: it gets no work until
// it has reported its domains and destroyed those that must not run there
// (never two live copies).

// silentTooLong reports whether a beat at t comes fence_self_timeout or more
// after the previous one: long enough for the agent to have fenced itself.
func (m *machine) silentTooLong(h *Host, t time.Time) bool {
	return !h.LastBeat.IsZero() && !t.IsZero() && t.Sub(h.LastBeat) >= m.p.FenceSelfTimeout
}

// rejoin: a failed or fenced host is alive. It gets no work until it has
// reported its domains (Synced) and destroyed those that must not run there.
func (m *machine) rejoin(h *Host) {
	if faultHolds(h) {
		m.faultyAlive(h) // it stays out until the fault is cleared
		return
	}
	m.touchHost(h.Name)
	h.State, h.Synced, h.Fence, h.FenceDeadline, h.FailedBy = HostRejoining, false, nil, time.Time{}, ""
}

// sync reconciles a rejoining host's first domain list: copies believed there
// that it no longer runs are gone; the rest stay until their group decides.
//
// A live copy (running, restored, being unpaused) is believed on a host that
// did not fail, and such a host rejoins only because its beats reached us
// after a silence. Unless its agent restarted (new incarnation: the list is
// the new agent's, taken after whatever the old one did), the same agent may
// have taken that list before a restore or unpause it has answered since:
// those copies are left to missing, which waits for missingBeats more beats
// before it calls them gone. Calling them gone at once restored the VM
// elsewhere while the copy just restored here ran (e2e, a supervisor whose
// beat feed lagged behind fence_self_timeout).
func (m *machine) sync(h *Host, domains map[string]bool, restarted bool) {
	h.Synced = true
	for _, name := range m.flush().vmsOn(h.Name) {
		v := m.s.VMs[name]
		if v.Host != h.Name || domains[name] {
			continue
		}
		live := v.State == VMRunning || v.State == VMRestored || v.State == VMUnpausing
		if live && !restarted {
			continue
		}
		m.gone(v)
		if live {
			m.lost(v, "vm "+name+" gone from "+h.Name, true)
		}
	}
}

// missingBeats is how many beats after the first one that does not list a
// VM it must still be missing before it counts as gone: a beat taken just
// before a restore finished may arrive after its result.
const missingBeats = 2

// missing notices VMs believed on h that its beats stopped listing: a domain
// that vanished while its agent could not report vm.failed (a crash during a
// partition, a lost report). Only settled copies are checked; an operation in
// flight answers for itself.
func (m *machine) missing(h *Host, seq uint64, domains map[string]bool) {
	for _, name := range m.flush().vmsOn(h.Name) {
		v := m.s.VMs[name]
		if v.Host != h.Name || v.Op != nil {
			continue
		}
		switch {
		case domains[name]:
			if v.Missing != 0 {
				m.touchVM(name)
				v.Missing = 0
			}
		case v.State != VMRunning && v.State != VMRestored && v.State != VMUnrecoverable:
		case v.Missing == 0:
			m.touchVM(name)
			v.Missing = seq
		case seq >= v.Missing+missingBeats:
			m.gone(v)
			if v.State != VMUnrecoverable {
				m.lost(v, "vm "+name+" vanished from "+h.Name, true)
			}
		}
	}
}

// checkDomain decides about one domain a host reports: ours and expected
// there, adopted, or a copy that must be destroyed (never two live copies).
func (m *machine) checkDomain(h *Host, name string) {
	v := m.s.VMs[name]
	if v == nil || v.Host == h.Name || (v.Op != nil && v.Op.Host == h.Name) || h.Cleanup[name] != nil {
		return
	}
	if v.Host == "" {
		switch {
		case v.State == VMUnplaced || v.State == VMUnrecoverable:
			// First sighting, or a copy we had given up on: it is the
			// only one.
			m.touchVM(name)
			v.Host, v.State, v.Reason = h.Name, VMRunning, ""
			return
		case v.Prev == h.Name && v.State == VMPending && h.State == HostRejoining:
			// A host back from a partition still runs the copy we
			// thought dead; if nothing was done yet its group may
			// abandon the rollback.
			if g := m.s.Groups[groupOf(v.VMConfig)]; g.Rollback != nil && !g.Rollback.Committed {
				m.touchVM(name)
				v.Host, v.State = h.Name, VMStopping
				return
			}
		}
	}
	m.cleanup(h, name, "stale")
}

// cleanup has host h destroy its domain of vm.
func (m *machine) cleanup(h *Host, vm, reason string) {
	if h.State == HostFailed || h.State == HostFenced || h.Cleanup[vm] != nil {
		return
	}
	if h.Cleanup == nil {
		h.Cleanup = map[string]*Op{}
	}
	h.Cleanup[vm] = &Op{Kind: OpDestroy, Host: h.Name, Reason: reason}
	m.sendCleanup(h, vm)
}

// stepRejoined gives a rejoining host back to placement once it has reported
// its domains and nothing that must go still runs there.
func (m *machine) stepRejoined() {
	x := m.flush()
	for _, name := range slices.Sorted(maps.Keys(x.busyHosts)) {
		h := m.s.Hosts[name]
		if h.State != HostRejoining || !h.Synced || len(h.Cleanup) > 0 {
			continue
		}
		clean := true
		for _, vm := range x.vmsOn(name) {
			if v := m.s.VMs[vm]; v.Host == name && v.State == VMStopping {
				clean = false
				break
			}
		}
		if clean {
			m.touchHost(name)
			h.State = HostHealthy
		}
	}
	m.flush()
}
