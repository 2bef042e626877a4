package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor/core"
)

// Operator requests, answered by the leader on <prefix>.supervisor.op once
// the decision core has applied them and the state is recorded.
const (
	OpMaintenance = "maintenance"        // Host on/off (Drain restarts its VMs elsewhere first)
	OpRelease     = "release-quarantine" // Host
	OpResume      = "resume-restarts"    // after a storm pause
	OpRestartVM   = "restart-vm"         // VM (e.g. one reported unrecoverable)
	OpMoveVM      = "move-vm"            // VM to Host
)

// OperatorRequest is one operator command.
type OperatorRequest struct {
	Op     string `json:"op"`
	Host   string `json:"host,omitempty"`
	VM     string `json:"vm,omitempty"`
	On     bool   `json:"on,omitempty"`
	Drain  bool   `json:"drain,omitempty"`
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

type operatorReply struct {
	Error string `json:"error,omitempty"`
}

// input is the core's input for r, or an error naming what is wrong.
func (r OperatorRequest) input(now time.Time) (core.Input, error) {
	need := func(field, v string) error {
		if v == "" {
			return fmt.Errorf("%s: %s is required", r.Op, field)
		}
		return nil
	}
	switch r.Op {
	case OpMaintenance:
		return core.Maintenance{At: now, Host: r.Host, On: r.On, Drain: r.Drain, Reason: r.Reason, By: r.By}, need("host", r.Host)
	case OpRelease:
		return core.ReleaseQuarantine{At: now, Host: r.Host}, need("host", r.Host)
	case OpResume:
		return core.ResumeRestarts{At: now}, nil
	case OpRestartVM:
		return core.RestartVM{At: now, VM: r.VM}, need("vm", r.VM)
	case OpMoveVM:
		if err := need("vm", r.VM); err != nil {
			return nil, err
		}
		return core.MoveVM{At: now, VM: r.VM, Host: r.Host}, need("host", r.Host)
	}
	return nil, fmt.Errorf("unknown operator request %q", r.Op)
}

// answerOperator applies one request through the shell.
func (s *Supervisor) answerOperator(ctx context.Context, sh *shell, m *nats.Msg) {
	var req OperatorRequest
	reply := func(err error) {
		var r operatorReply
		if err != nil {
			r.Error = err.Error()
		}
		b, _ := json.Marshal(r)
		_ = m.Respond(b)
	}
	if err := json.Unmarshal(m.Data, &req); err != nil {
		reply(fmt.Errorf("bad request: %w", err))
		return
	}
	in, err := req.input(s.clock.Now())
	if err != nil {
		reply(err)
		return
	}
	o := sh.apply(ctx, in)
	reply(errors.Join(o.apply, o.persist))
}

// RequestOperator sends an operator request to the leading supervisor and
// returns its answer (the CLI's host and vm commands).
func RequestOperator(ctx context.Context, bus *events.Bus, req OperatorRequest, timeout time.Duration) error {
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := bus.Conn().RequestWithContext(ctx, bus.Subjects().Supervisor("op"), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return ErrNoLeader
	}
	if err != nil {
		return fmt.Errorf("%s request: %w", req.Op, err)
	}
	var rep operatorReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("%s reply: %w", req.Op, err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return nil
}
