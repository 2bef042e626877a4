package core

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// This file is a host's liveness: beats, lease renewals, suspicion, and the
// detectors' verdicts. A failure and its fence are in hostfail.go, the
// return of a host in hostrejoin.go.

func (m *machine) host(name string) (*Host, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty host name", ErrInvalid)
	}
	h := m.s.Hosts[name]
	if h == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownHost, name)
	}
	return h, nil
}

// onBeat records a heartbeat summary. The first beat of a host registers it.
func (m *machine) onBeat(in HostBeat) error {
	if in.Host == "" || in.FreeMiB < 0 || in.CapacityMiB < 0 {
		return fmt.Errorf("%w: beat of %q with capacity %d MiB, free %d MiB", ErrInvalid, in.Host, in.CapacityMiB, in.FreeMiB)
	}
	h := m.s.Hosts[in.Host]
	if h == nil {
		h = &Host{Name: in.Host, State: HostHealthy}
		m.s.Hosts[in.Host] = h
	} else if in.Incarnation == h.Incarnation && in.Seq <= h.BeatSeq {
		return fmt.Errorf("%w: beat %d of %s is not newer than %d", ErrStale, in.Seq, in.Host, h.BeatSeq)
	}
	m.touchHost(h.Name)
	restarted := h.Incarnation != "" && in.Incarnation != h.Incarnation
	back := m.beatBringsBack(h, in)
	m.updateArming(h, in)
	h.Incarnation, h.BeatSeq = in.Incarnation, in.Seq
	h.LastBeat = later(h.LastBeat, m.now)
	h.CapacityMiB, h.FreeMiB = in.CapacityMiB, in.FreeMiB
	// A new incarnation is a new agent, perhaps a rebooted host, and an
	// agent silent for fence_self_timeout may have destroyed its domains:
	// neither reports vm.failed for what it lost. Its domain list tells.
	if h.State == HostFailed && restarted {
		m.flap(h) // it died and came back before it was fenced: a real failure
	}
	if back {
		m.rejoin(h)
	}
	domains := make(map[string]bool, len(in.Domains))
	for _, d := range in.Domains {
		domains[d] = true
	}
	m.reconcileDomains(h, in.Seq, domains, restarted)
	m.releaseReservations(h, domains)
	return nil
}

// beatBringsBack reports whether h, beating in, must rejoin (report its
// domains, destroy what runs elsewhere) before it gets work: it is failed or
// fenced and the beat is one the detector had not seen when it failed it,
// or it is a new incarnation (a new agent, perhaps a rebooted host), or it
// was silent long enough to have fenced itself. Read before the beat is
// recorded.
func (m *machine) beatBringsBack(h *Host, in HostBeat) bool {
	newIncarnation := in.Incarnation != h.Incarnation
	restarted := h.Incarnation != "" && newIncarnation
	unseenByDetector := newIncarnation || in.Seq > h.FailSeq
	down := h.State == HostFailed || h.State == HostFenced
	return (down && unseenByDetector) || restarted || m.silentTooLong(h, m.now)
}

// updateArming takes the beat's word on whether the agent's self-fence is
// armed. Arming is for good within an incarnation: a beat sent before the
// first renewal and fed late does not disarm it. A failed host keeps the
// flag it failed with, and so its deadline.
func (m *machine) updateArming(h *Host, in HostBeat) {
	switch {
	case in.Incarnation != h.Incarnation:
		h.FenceUnarmed = in.FenceUnarmed
	case h.State != HostFailed:
		h.FenceUnarmed = h.FenceUnarmed && in.FenceUnarmed
	}
}

// reconcileDomains compares the domains a beat lists with what the state
// believes runs on h: a rejoining host's first list is synced; on a host up,
// a domain that must not run there is destroyed and a VM missing from it is
// counted towards vanished.
func (m *machine) reconcileDomains(h *Host, seq uint64, domains map[string]bool, restarted bool) {
	if h.State == HostRejoining && !h.Synced {
		m.sync(h, domains, restarted)
	}
	if h.State == HostFailed || h.State == HostFenced {
		return
	}
	for _, d := range slices.Sorted(maps.Keys(domains)) {
		m.checkDomain(h, d)
	}
	if h.State != HostRejoining || h.Synced {
		m.missing(h, seq, domains)
	}
}

// releaseReservations forgets the memory reserved on h for VMs placed
// there once a beat shows them (FreeMiB counts them then), or once they no
// longer go there.
func (m *machine) releaseReservations(h *Host, domains map[string]bool) {
	for vm := range h.Reserved {
		v := m.s.VMs[vm]
		if domains[vm] || v == nil || (v.Host != h.Name && (v.Op == nil || v.Op.Host != h.Name)) {
			delete(h.Reserved, vm)
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return norm(b)
	}
	return a
}

// onLease: an agent that renews its lease has not fenced itself. Only a
// host failed by silence and waiting for its self-fence deadline has
// anything to learn from that; other hosts only record the agent's
// self-timeout when it changes (rarely: at the agent's start), and whether
// the agent awaits reconciliation after a self-fence (ready.go).
func (m *machine) onLease(in HostLeaseRenewed) error {
	if in.Host == "" || in.SelfTimeout < 0 {
		return fmt.Errorf("%w: lease renewal of %q with self-timeout %s", ErrInvalid, in.Host, in.SelfTimeout)
	}
	h := m.s.Hosts[in.Host]
	if h == nil {
		return nil // not beating yet: it registers with its first beat
	}
	if in.SelfTimeout != h.SelfTimeout {
		m.touchHost(h.Name)
		h.SelfTimeout = in.SelfTimeout
	}
	m.awaiting(h, in.AwaitingReconcile)
	armedNow := h.FenceUnarmed && in.Incarnation != "" && in.Incarnation == h.Incarnation
	if armedNow {
		// The agent that beats has had a renewal acknowledged: from now
		// on it fences itself when it loses the bus (armed).
		m.touchHost(h.Name)
		h.FenceUnarmed = false
	}
	if h.State == HostFailed && h.FailedBy == FailedBySilence && !h.FenceUnarmed {
		renewed := m.now
		if !in.RenewedAt.IsZero() && in.RenewedAt.Before(m.now) {
			renewed = norm(in.RenewedAt)
		}
		if d := m.p.selfFenceDeadline(renewed, h.SelfTimeout); d.After(h.FenceDeadline) {
			m.touchHost(h.Name)
			h.FenceDeadline = d
		}
	}
	return nil
}

// armed reports whether h's self-fence can be counted on: its agent said
// in its beats that a lease renewal of its incarnation was acknowledged, or
// such a renewal was seen since. An unarmed agent (the bus never
// acknowledged its lease since it started: a cluster still forming, a
// bucket being created) does not destroy its guests when renewals fail,
// because failing renewals are then no evidence that it is cut off; so a
// silent unarmed host never counts as self-fenced by a deadline.
func (h *Host) armed() bool { return !h.FenceUnarmed }

func (m *machine) onSuspect(in NodeSuspect) error {
	h, err := m.host(in.Host)
	if err != nil {
		return err
	}
	if h.State == HostHealthy {
		m.touchHost(h.Name)
		h.State = HostSuspect
		h.LastBeat = later(h.LastBeat, in.LastBeat)
	}
	return nil
}

func (m *machine) onFailed(in NodeFailed) error {
	h, err := m.host(in.Host)
	if err != nil {
		return err
	}
	m.touchHost(h.Name)
	h.LastBeat = later(h.LastBeat, in.LastBeat)
	m.hostFailed(h, FailedBySilence, in.LastSeq, in.LastLease, "host "+h.Name+" failed")
	return nil
}

func (m *machine) onRecovered(in NodeRecovered) error {
	h, err := m.host(in.Host)
	if err != nil {
		return err
	}
	m.touchHost(h.Name)
	// LastBeat of node.recovered is the beat that brought the host back.
	silent := m.silentTooLong(h, in.LastBeat)
	h.LastBeat = later(h.LastBeat, in.LastBeat)
	if h.State == HostFailed && in.NewIncarnation {
		m.flap(h) // it died and came back before it was fenced: a real failure
	}
	switch {
	case h.State == HostFailed || h.State == HostFenced || in.NewIncarnation || silent:
		m.rejoin(h)
	case h.State == HostSuspect:
		h.State = HostHealthy
	}
	return nil
}
