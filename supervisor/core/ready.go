package core

import "time"

// This file is the rule for a host whose agent fenced itself and now awaits
// reconciliation (restarter/fence.go, the latch): until the leader has sent
// it vm.list, the agent refuses every restore, cold start and unpause
// (OutcomeHostNotReady). After a bus outage every host may be latched at once
// for the seconds until the leader reconciles them.
//
// Such a refusal says nothing about the VM or its image, so:
//   - it is not an attempt of the VM's: Attempts, HostFailures and Tried are
//     left as they were, and max_attempts never runs out on refusals;
//   - the VM goes back to placement (results.go), and the host gets no new
//     work for a backoff that doubles with each refusal in a row, up to
//     backoff_cap; so a host that stays latched is tried again, never given
//     up on, at most every backoff_cap, and each refusal is published as a
//     retryable vm.restart_failed naming the fence: nothing waits on it for
//     ever unseen;
//   - a lease renewal that says the agent awaits reconciliation keeps the
//     host out too, so that restores are not even sent there; but only for
//     backoff_cap after its lease first said so, after which refusals (and
//     their events) take over, and only for leaseAwaitHold after each such
//     renewal, so that a lease watch that stalls does not keep it out;
//   - a renewal that no longer awaits, or a restore, cold start or unpause
//     carried out there, ends it at once.

// leaseAwaitHold is how long one renewal that says "awaiting reconciliation"
// keeps the host out of placement. The shell feeds such renewals about every
// second; a few missed must not let restores through to be refused, and a
// feed that stopped must not hold the host for long.
const leaseAwaitHold = 3 * time.Second

// takesWork reports whether h, placeable, is not held out as not ready.
func (m *machine) takesWork(h *Host) bool {
	return h.placeable() && !m.now.Before(h.NotReadyUntil)
}

// takesWorkIfReleased reports whether h would take work but for its
// quarantine (placement's last resort).
func (m *machine) takesWorkIfReleased(h *Host) bool {
	released := *h
	released.Quarantined = false
	return m.takesWork(&released)
}

// notReady records that h refused a command because it awaits
// reconciliation.
func (m *machine) notReady(h *Host) {
	if h == nil {
		return
	}
	m.touchHost(h.Name)
	h.NotReady++
	h.NotReadyUntil = later(h.NotReadyUntil, m.now.Add(m.p.backoff(h.NotReady)))
}

// awaiting records a lease renewal of h that says whether its agent awaits
// reconciliation.
func (m *machine) awaiting(h *Host, awaits bool) {
	if !awaits {
		m.readyAgain(h)
		return
	}
	m.touchHost(h.Name)
	if h.AwaitingSince.IsZero() {
		h.AwaitingSince = m.now
	}
	hold := m.now.Add(leaseAwaitHold)
	if limit := h.AwaitingSince.Add(m.p.BackoffCap); hold.After(limit) {
		hold = limit
	}
	h.NotReadyUntil = later(h.NotReadyUntil, hold)
}

// readyAgain records that h takes work: its latch has ended.
func (m *machine) readyAgain(h *Host) {
	if h == nil || (h.NotReady == 0 && h.AwaitingSince.IsZero() && h.NotReadyUntil.IsZero()) {
		return
	}
	m.touchHost(h.Name)
	h.NotReady, h.AwaitingSince, h.NotReadyUntil = 0, time.Time{}, time.Time{}
}
