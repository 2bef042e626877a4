package core

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// This file is a host's life: beats, suspicion, failure, fencing, and the
// return of a host that must first destroy what now runs elsewhere.

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
	// A beat the detector had not seen when it declared the host failed
	// proves the host is alive again.
	fresh := in.Incarnation != h.Incarnation || in.Seq > h.FailSeq
	restarted := h.Incarnation != "" && in.Incarnation != h.Incarnation
	silent := m.silentTooLong(h, m.now)
	switch {
	case in.Incarnation != h.Incarnation:
		h.FenceUnarmed = in.FenceUnarmed
	case h.State != HostFailed:
		// Arming is for good within an incarnation: a beat sent before
		// the first renewal and fed late does not disarm it. A failed
		// host keeps the flag it failed with, and so its deadline.
		h.FenceUnarmed = h.FenceUnarmed && in.FenceUnarmed
	}
	h.Incarnation, h.BeatSeq = in.Incarnation, in.Seq
	h.LastBeat = later(h.LastBeat, m.now)
	h.CapacityMiB, h.FreeMiB = in.CapacityMiB, in.FreeMiB
	// A new incarnation is a new agent, perhaps a rebooted host, and an
	// agent silent for fence_self_timeout may have destroyed its domains:
	// neither reports vm.failed for what it lost. Its domain list tells.
	if h.State == HostFailed && restarted {
		m.flap(h) // it died and came back before it was fenced: a real failure
	}
	if ((h.State == HostFailed || h.State == HostFenced) && fresh) || restarted || silent {
		m.rejoin(h)
	}
	domains := make(map[string]bool, len(in.Domains))
	for _, d := range in.Domains {
		domains[d] = true
	}
	if h.State == HostRejoining && !h.Synced {
		m.sync(h, domains, restarted)
	}
	if h.State != HostFailed && h.State != HostFenced {
		for _, d := range slices.Sorted(maps.Keys(domains)) {
			m.checkDomain(h, d)
		}
		if h.State != HostRejoining || h.Synced {
			m.missing(h, in.Seq, domains)
		}
	}
	// Memory of VMs placed here is counted in FreeMiB once a beat shows them.
	for vm := range h.Reserved {
		v := m.s.VMs[vm]
		if domains[vm] || v == nil || (v.Host != h.Name && (v.Op == nil || v.Op.Host != h.Name)) {
			delete(h.Reserved, vm)
		}
	}
	return nil
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

// hostFailed declares h dead (by silence) or not to be trusted (by a fatal
// fault): it is fenced, and every VM on it is lost for its group.
// lastLease is when the agent was last seen renewing its lease (zero: not
// known).
func (m *machine) hostFailed(h *Host, by string, lastSeq uint64, lastLease time.Time, reason string) {
	switch h.State {
	case HostFailed:
		// A second detector, or silence after a fault report: only
		// silence makes the self-fence deadline count.
		if by == FailedBySilence {
			h.FailedBy = by
			// Never earlier than a deadline a lease renewal pushed back.
			if h.armed() {
				h.FenceDeadline = later(h.FenceDeadline, m.p.selfFenceDeadline(later(h.LastBeat, lastLease), h.SelfTimeout))
			}
		}
		return
	case HostFenced:
		return
	}
	h.State, h.FailedBy, h.FailedAt, h.Synced = HostFailed, by, m.now, false
	h.FailSeq = max(h.BeatSeq, lastSeq)
	h.FenceDeadline = time.Time{}
	if by == FailedBySilence && h.armed() {
		last := later(h.LastBeat, lastLease)
		if last.IsZero() {
			last = m.now
		}
		h.FenceDeadline = m.p.selfFenceDeadline(last, h.SelfTimeout)
	}
	h.Fence, h.Cleanup, h.Reserved = nil, nil, nil
	// Not counted for flapping yet: only a failure that proves real (the
	// host fenced, or back as a new incarnation: flap) does. In the soak
	// lane detectors accused starved or frozen hosts every few minutes,
	// the hosts came back with the same incarnation each time, and all
	// four ended quarantined: the group they were to be restored to stayed
	// pending for 20 minutes with every host healthy.
	// What runs on h, or was being done there, is now in doubt.
	for _, name := range m.flush().vmsOn(h.Name) {
		v := m.s.VMs[name]
		m.touchVM(name)
		if v.Op != nil && v.Op.Host == h.Name {
			if v.Op.Kind != OpDestroy {
				v.Host = h.Name // a restore may have left a copy there
			}
			v.Op = nil
		}
		if v.Host == h.Name {
			m.lost(v, reason, false)
		}
	}
}

// flap records a failure and quarantines a host that fails too often.
func (m *machine) flap(h *Host) {
	from := m.now.Add(-m.p.FlapWindow)
	h.Failures = slices.DeleteFunc(h.Failures, func(t time.Time) bool { return !t.After(from) })
	at := h.FailedAt // counted when it proved real, dated when it happened
	if at.IsZero() || !at.After(from) {
		at = m.now
	}
	h.Failures = append(h.Failures, at)
	if len(h.Failures) > m.p.FlapThreshold && !h.Quarantined {
		h.Quarantined = true
		m.s.Counters.Quarantines++
		m.publish(Event{Type: EventNodeQuarantined, Host: h.Name, Failures: len(h.Failures), Window: m.p.FlapWindow,
			Reason: fmt.Sprintf("%d failures within %s (flap_threshold %d)", len(h.Failures), m.p.FlapWindow, m.p.FlapThreshold)})
	}
}

// fenced records that h surely runs nothing: every copy believed there is
// gone.
func (m *machine) fenced(h *Host, method string, e Epoch) {
	m.touchHost(h.Name)
	if h.State == HostFailed {
		m.flap(h)
	}
	h.State, h.Fence, h.Cleanup, h.Reserved, h.Synced = HostFenced, nil, nil, nil, false
	h.FenceDeadline = time.Time{}
	m.s.Counters.Fences++
	if e.IsZero() {
		e = m.epoch()
	}
	m.publish(Event{Type: EventNodeFenced, Host: h.Name, Incarnation: h.Incarnation, Method: method, Epoch: e})
	for _, name := range m.flush().vmsOn(h.Name) {
		v := m.s.VMs[name]
		m.touchVM(name)
		if v.Op != nil && v.Op.Host == h.Name {
			// Only a fence command succeeding on a host that had come
			// back gets here: its work is gone with it.
			if v.Op.Kind != OpDestroy {
				v.Host = h.Name
			}
			v.Op = nil
		}
		if v.Host == h.Name {
			m.gone(v)
			if v.State == VMRunning || v.State == VMRestored || v.State == VMUnpausing {
				m.lost(v, "host "+h.Name+" fenced", true)
			} else if v.State == VMRestoring {
				v.State = VMPending
			}
		}
	}
}

// gone records that v's copy on v.Host no longer exists; a destroy of it in
// flight is moot.
func (m *machine) gone(v *VM) {
	m.touchVM(v.Name)
	if v.Op != nil && v.Op.Kind == OpDestroy && v.Op.Host == v.Host {
		v.Op = nil
	}
	if v.Host != "" {
		v.Prev = v.Host
	}
	v.Host, v.Seq, v.Missing = "", 0, 0
}

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

// stepHosts fences what can be fenced and sends what is due.
func (m *machine) stepHosts() {
	x := m.flush()
	for _, name := range slices.Sorted(maps.Keys(x.busyHosts)) {
		h := m.s.Hosts[name]
		if h.State == HostFailed {
			switch {
			case m.s.Storm != nil:
				// We may be the one cut off: a fence command could
				// power off a healthy host, and a silence we alone
				// observe does not mean its agent could not renew its
				// liveness and fenced itself.
			case !h.FenceDeadline.IsZero() && !m.now.Before(h.FenceDeadline):
				m.fenced(h, FenceMethodSelf, Epoch{})
			case m.fenceByAgent(h):
				// A fatal fault: its agent is asked first (fault.go).
			case h.Fence == nil:
				h.Fence = &Op{Kind: OpFence, Host: h.Name}
				m.sendFence(h)
			case m.due(h.Fence):
				m.sendFence(h)
			}
		}
		for _, vm := range slices.Sorted(maps.Keys(h.Cleanup)) {
			if m.due(h.Cleanup[vm]) {
				m.sendCleanup(h, vm)
			}
		}
	}
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
