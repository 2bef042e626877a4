package core

import (
	"fmt"
	"time"
)

// This file is a site detector's fault report (node.fault), and the fence of
// a host failed by a fatal one: its own agent's.
//
// A fatal fault acts like node.failed (DESIGN "Reactive restart"): the host
// is failed, its groups roll back, and none of its VMs is restored elsewhere
// before the host is fenced. But such a host usually still beats, and an
// agent that beats does not fence itself, so no self-fence deadline applies
// while it does. Its fence is, whichever comes first:
//
//   - its agent: the host is told to destroy every copy the core believes
//     there (DestroyVM, reason "fence", kept in Host.Cleanup with the stale
//     copies it had to destroy already); when every one is confirmed, the
//     host is fenced with method "agent" (node.fenced), and its VMs are
//     restored elsewhere. A VM whose copy is confirmed gone waits for the
//     others (rollback.go stepStopping), so that node.fenced comes before
//     any restore of the host's VMs, as with the other methods;
//   - the fence command, sent only once the agent cannot confirm (a destroy
//     failed or timed out: the agent is unreachable, or refused), so that a
//     host whose agent answers is not powered off for nothing;
//   - its self-fence deadline, once it goes silent (node.failed).
//
// Like a power-off or a self-fence, the agent's fence ends every copy of
// ours there, including VMs that will not be restored (restart policy none,
// no usable checkpoint): the detector said the host must not run them. A
// detector that wants them kept reports "degraded" (a drain).
//
// While the fault stands (until severity ok, or degraded), the host stays
// failed or fenced and gets no work, whatever its beats say; its next beat
// after that makes it rejoin, and its domain list is reconciled then.
// A fault cleared before the agent's fence completed calls it off: the
// host rejoins with its next beat and the rollbacks' own destroys take over,
// or it fails by silence.

// fenceReason is the DestroyVM reason of the agent's fence.
const fenceReason = "fence"

func (m *machine) onFault(in NodeFault) error {
	h, err := m.host(in.Host)
	if err != nil {
		return err
	}
	switch in.Severity {
	case SeverityFatal:
		m.touchHost(h.Name)
		h.Fault, h.FaultReason = SeverityFatal, in.Reason
		if m.moveBeforeFence(h) {
			return nil
		}
		// Stale copies the host was told to destroy are part of its
		// fence: it is not fenced while one may still run.
		stale := h.Cleanup
		m.hostFailed(h, FailedByFault, h.BeatSeq, time.Time{}, "host "+h.Name+" fault: "+in.Reason)
		if h.State == HostFailed && h.Cleanup == nil {
			h.Cleanup = stale
		}
	case SeverityDegraded:
		m.touchHost(h.Name)
		m.fatalCleared(h)
		h.Fault, h.FaultReason = SeverityDegraded, in.Reason
		m.drainHost(h, "host "+h.Name+" degraded: "+in.Reason)
	case SeverityOK:
		m.touchHost(h.Name)
		m.fatalCleared(h)
		h.Fault, h.FaultReason = "", ""
	default:
		return fmt.Errorf("%w: severity %q of %s", ErrInvalid, in.Severity, in.Host)
	}
	return nil
}

// moveBeforeFence is the hook for moving VMs off a host with a fatal fault
// without losing work. Today there are no live moves (a drain is a
// checkpoint and a rollback, as costly as a restore after the fault), so it
// moves nothing and returns false: the host is failed and fenced at once,
// and its groups go back to their latest consistent checkpoint.
//
// Once issue "Proactive fault tolerance" brings live (or cold, no-rollback)
// moves, this is where a fatal fault on a reachable host (its agent beats
// and answers) first moves what it can, within a bound, before the rest is
// fenced: it returns true while moves are under way, and the host is failed
// (hostFailed, then the agent's fence below) once they end or the bound
// passes. A host that is not reachable is failed at once, as now.
func (m *machine) moveBeforeFence(*Host) bool { return false }

// fenceByAgent runs the fence of a failed host with a fatal fault (see the
// top of this file) and reports whether its fence command must wait. It is
// called by stepHosts for every failed host while restarts are not paused
// and its self-fence deadline has not passed.
func (m *machine) fenceByAgent(h *Host) (wait bool) {
	switch {
	case h.Fault == SeverityFatal:
	case h.FailedBy == FailedByFault:
		// The fault was cleared before the host was fenced: there is
		// nothing to fence it for. It rejoins with its next beat, or is
		// failed by silence.
		return true
	default:
		return false // failed by silence: fence command or deadline
	}
	for _, name := range m.flush().vmsOn(h.Name) {
		if v := m.s.VMs[name]; v.Host == h.Name && h.Cleanup[name] == nil {
			if h.Cleanup == nil {
				h.Cleanup = map[string]*Op{}
			}
			h.Cleanup[name] = &Op{Kind: OpDestroy, Host: h.Name, Reason: fenceReason}
			m.sendCleanup(h, name)
			g := m.s.Groups[groupOf(v.VMConfig)]
			if g.Rollback == nil && v.State == VMRunning {
				// Its loss was left undecided while the host might
				// return (rollback.go startRollback): now it is certain.
				m.lost(v, "host "+h.Name+" has a fatal fault: its agent destroys "+name, true)
			}
			if g.Rollback != nil && !g.Rollback.Committed {
				// The copy may be gone from now on: the rollback
				// can no longer be abandoned if the host returns.
				m.touchGroup(g.Name)
				g.Rollback.Committed = true
			}
		}
	}
	if len(h.Cleanup) == 0 {
		// Every copy believed there is confirmed gone (results.go).
		m.fenced(h, FenceMethodAgent, Epoch{})
		return true
	}
	if h.Fence != nil {
		return false // the command was sent already: it goes on
	}
	for _, op := range h.Cleanup {
		if op.Failures > 0 {
			return false // the agent cannot confirm: the command goes
		}
	}
	return true
}

// fatalCleared calls off the agent's fence of h when its fatal fault is
// cleared (ok) or downgraded (degraded) before it completed. Its destroys
// still in flight are answered as stale; the copies stay believed on h, and
// the rollbacks destroy them once h has rejoined (or its fence ends them if
// it fails by silence). Stale-copy destroys it had before stay.
func (m *machine) fatalCleared(h *Host) {
	if h.Fault != SeverityFatal || h.State != HostFailed {
		return
	}
	for vm, op := range h.Cleanup {
		if op.Reason == fenceReason {
			delete(h.Cleanup, vm)
		}
	}
	if len(h.Cleanup) == 0 {
		h.Cleanup = nil
	}
}

// faultHolds reports whether h's fatal fault keeps it failed or fenced
// whatever its beats say: rejoin does nothing until the fault is cleared.
func faultHolds(h *Host) bool {
	return h.Fault == SeverityFatal && (h.State == HostFailed || h.State == HostFenced)
}

// faultyAlive: h, failed or fenced with a fatal fault standing, beats (it
// would rejoin if not for the fault). A host failed by silence is silent no
// more: its self-fence deadline no longer applies (its agent renews, or
// restarted), and its agent's fence takes over, as for a fault on a host
// that never went silent. It fails by silence again if its beats stop.
func (m *machine) faultyAlive(h *Host) {
	if h.State == HostFailed && h.FailedBy == FailedBySilence {
		m.touchHost(h.Name)
		h.FailedBy, h.FenceDeadline = FailedByFault, time.Time{}
	}
}

// fenceFirst reports whether v, in a rollback, must wait before it is
// placed: its copy on its previous host is confirmed gone, but that host is
// failed and not yet fenced (the agent's fence confirms one copy at a time).
func (m *machine) fenceFirst(v *VM) bool {
	h := m.s.Hosts[v.Prev]
	return h != nil && h.State == HostFailed
}

// fenceOutlook says what will fence h now that its fence command failed,
// for supervisor.fence_failed: no event may claim a wait that does not
// happen.
func (m *machine) fenceOutlook(h *Host) string {
	deadline := ""
	if !h.FenceDeadline.IsZero() {
		// Renewals of its agent's lease push it back (hosts.go onLease).
		deadline = "its self-fence deadline passes (now " + h.FenceDeadline.UTC().Format(time.RFC3339Nano) +
			"; each lease renewal of its agent pushes it back)"
	}
	switch {
	case h.Fault == SeverityFatal && len(h.Cleanup) > 0 && deadline != "":
		return "host " + h.Name + " is fenced when its agent confirms its VMs destroyed (asked again with backoff), or when " + deadline
	case h.Fault == SeverityFatal && len(h.Cleanup) > 0:
		return "host " + h.Name + " still beats, so no self-fence deadline applies: it is fenced when its agent confirms its VMs destroyed (asked again with backoff), or by its self-fence deadline once it goes silent"
	case deadline != "":
		return "host " + h.Name + " counts as fenced when " + deadline
	case h.FailedBy == FailedByFault:
		return "the fault of host " + h.Name + " was cleared: it rejoins with its next beat, or is failed by silence"
	case h.FenceUnarmed:
		return "the agent of host " + h.Name + " had not armed its self-fence when it failed (no lease renewal acknowledged since it started), " +
			"so no self-fence deadline applies: its VMs wait until it returns, a lease renewal arms it (its deadline then counts from it), or a fence command succeeds"
	}
	return "host " + h.Name + " has no self-fence deadline: its VMs are not restored until it is fenced or returns"
}

// joinText joins two parts of a message.
func joinText(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
