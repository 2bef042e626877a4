package core

import "fmt"

// stormCheck is the storm guard. If more than max_failed_fraction of the known
// hosts failed within storm_window and are still down (failed or fenced),
// this supervisor more likely lost its view of the cluster (or the detector
// did) than that many hosts died: restarts pause. While paused, no fence
// command, rollback destroy, restore or cold start is sent, and a passed
// self-fence deadline does not count as fencing (a silence only we observe
// does not prove the agent could not renew its liveness). Commands already
// sent run to completion, stale copies on returning hosts are still destroyed,
// restored groups are still unpaused. Rollbacks are planned, so that they go
// ahead, or are abandoned as their hosts return with their domains, when the
// pause ends.
//
// Restarts resume when no more than max_failed_fraction of the hosts is down,
// whenever they failed (hosts came back), or when an operator resumes them
// (ResumeRestarts): failures before that no longer count, and only new ones
// can pause again.
func (m *machine) stormCheck() {
	total := len(m.s.Hosts)
	if total == 0 {
		return
	}
	since := m.now.Add(-m.p.StormWindow)
	if m.s.StormResumed.After(since) {
		since = m.s.StormResumed
	}
	down, recent := 0, 0
	x := m.flush()
	for name := range x.busyHosts {
		if h := m.s.Hosts[name]; h.down() {
			down++
			if h.FailedAt.After(since) {
				recent++
			}
		}
	}
	limit := m.p.MaxFailedFraction * float64(total)
	switch {
	case m.s.Storm == nil && float64(recent) > limit:
		m.s.Storm = &Storm{Since: m.now, Failed: recent, Hosts: total,
			Reason: fmt.Sprintf("%d of %d hosts failed within %s (max_failed_fraction %g): this supervisor may be cut off; restarts paused",
				recent, total, m.p.StormWindow, m.p.MaxFailedFraction)}
		m.s.Counters.Storms++
		m.publish(Event{Type: EventRestartsPaused, Failures: recent, Window: m.p.StormWindow, Reason: m.s.Storm.Reason})
	case m.s.Storm != nil && float64(down) <= limit:
		m.s.Storm = nil
		m.publish(Event{Type: EventRestartsResumed, Failures: down,
			Reason: fmt.Sprintf("%d of %d hosts down (max_failed_fraction %g): restarts resumed", down, total, m.p.MaxFailedFraction)})
	}
}
