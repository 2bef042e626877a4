package supervisor

import (
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor/core"
)

// eventPayload maps the core's event to the bus's, or nil for none.
func eventPayload(supervisorID string, e core.Event) events.Payload {
	ep := events.Epoch{Term: e.Epoch.Term, Seq: e.Epoch.Seq}
	members := func() []events.Member {
		out := make([]events.Member, len(e.Members))
		for i, m := range e.Members {
			out[i] = events.Member{VM: m.VM, Host: m.Host}
		}
		return out
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	switch e.Type {
	case core.EventNodeFenced:
		return events.NodeFenced{Host: e.Host, Incarnation: e.Incarnation, Method: e.Method, Epoch: ep}
	case core.EventNodeQuarantined:
		return events.NodeQuarantined{Host: e.Host, Failures: e.Failures, WindowMs: e.Window.Milliseconds(), Reason: or(e.Reason, "flapping")}
	case core.EventNodeMaintenance:
		return events.NodeMaintenance{Host: e.Host, Enabled: e.Enabled, Reason: e.Reason, By: e.By}
	case core.EventVMRestarting:
		return events.VMRestarting{VM: e.VM, Group: e.Group, FromHost: e.FromHost, ToHost: e.Host, CheckpointSeq: e.Seq, ColdStart: e.ColdStart, Attempt: max(e.Attempt, 1), Epoch: ep}
	case core.EventVMRestarted:
		return events.VMRestarted{VM: e.VM, Group: e.Group, Host: e.Host, CheckpointSeq: e.Seq, ColdStart: e.ColdStart, DurationMs: e.Duration.Milliseconds(), Epoch: ep}
	case core.EventVMRestartFailed:
		return events.VMRestartFailed{VM: e.VM, Group: e.Group, Host: e.Host, Attempt: max(e.Attempt, 1), Error: or(e.Error, "unknown error"), Retryable: e.Retryable, Epoch: ep}
	case core.EventVMUnrecoverable:
		return events.VMUnrecoverable{VM: e.VM, Group: e.Group, Reason: or(e.Reason, "unrecoverable")}
	case core.EventGroupRolledBack:
		return events.GroupRolledBack{Group: e.Group, CheckpointSeq: e.Seq, Members: members(), Reason: or(e.Reason, "rollback"), DurationMs: e.Duration.Milliseconds(), Epoch: ep}
	case core.EventRestartsPaused:
		return events.SupervisorRestartsPaused{Supervisor: supervisorID, Reason: or(e.Reason, "storm guard")}
	case core.EventRestartsResumed:
		return events.SupervisorRestartsResumed{Supervisor: supervisorID, Reason: or(e.Reason, "storm cleared")}
	case core.EventFenceFailed:
		return events.SupervisorFenceFailed{Supervisor: supervisorID, Host: e.Host, Error: or(e.Error, "fence failed"), Attempt: e.Attempt, Retryable: e.Retryable}
	case core.EventDrainFailed:
		return events.SupervisorDrainFailed{Supervisor: supervisorID, Group: e.Group, Error: or(e.Error, "drain failed")}
	}
	return nil
}
