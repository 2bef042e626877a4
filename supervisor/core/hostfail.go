package core

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// This file is a host's failure: declared failed (by silence or a fatal
// fault), fenced (by command, self-fence deadline or its agent), and what
// that means for the VMs believed there.

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
