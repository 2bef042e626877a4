package supervisor

import (
	"errors"
	"fmt"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor/core"
)

// This file makes the inputs the supervisor ignores visible: the core refuses
// an input with an error (core/errors.go) and changes nothing; the shell
// counts it by reason in the bus's IgnoredInputs and logs it, at most once
// per reason every events.IgnoreLogEvery. The core itself never logs.

// Ignored counts, by reason, the inputs this supervisor ignored while it led
// (events its core refused, invalid events its consumer dropped, heartbeats
// it could not read), together with whatever else ignored input on the same
// bus. Reasons are the events.Ignored* constants. Safe to call from any
// goroutine.
func (s *Supervisor) Ignored() map[string]uint64 { return s.bus.Ignored().Snapshot() }

// ignore counts and logs an input the core refused with err. An operator's
// request is not counted: the refusal is its answer.
func (sh *shell) ignore(it item, err error) {
	reason := ignoreReason(it.in, err)
	if reason == "" {
		sh.log.Debug("request refused", "input", fmt.Sprintf("%T", it.in), "error", err)
		return
	}
	input, kv := describe(it.in)
	kv = append(kv, it.about...)
	kv = append(kv, "error", err)
	sh.s.bus.Ignored().Ignore(sh.log, reason, input, kv...)
}

// ignoreReason is the reason an input refused with err is counted under, or
// "" for an operator's request.
func ignoreReason(in core.Input, err error) string {
	switch in.(type) {
	case core.Maintenance, core.RestartVM, core.MoveVM, core.ReleaseQuarantine, core.ResumeRestarts:
		return ""
	}
	switch {
	case errors.Is(err, core.ErrUnknownHost):
		return events.IgnoredUnknownHost
	case errors.Is(err, core.ErrUnknownVM):
		return events.IgnoredUnknownVM
	case errors.Is(err, core.ErrUnknownGroup):
		return events.IgnoredUnknownGroup
	case errors.Is(err, core.ErrStaleTerm):
		return events.IgnoredStaleEpoch
	case errors.Is(err, core.ErrStale):
		switch in.(type) {
		case core.HostBeat: // a beat not newer than the last one fed
			return events.IgnoredDuplicate
		case core.Result: // the answer to an epoch a retry or a new term superseded
			return events.IgnoredStaleEpoch
		}
		return events.IgnoredStale
	case errors.Is(err, core.ErrInvalid):
		switch {
		case fromEvent(in):
			return events.IgnoredInvalidEvent
		case isBeat(in):
			return events.IgnoredInvalidHeartbeat
		}
	}
	return events.IgnoredInvalidInput
}

func fromEvent(in core.Input) bool {
	switch in.(type) {
	case core.NodeSuspect, core.NodeFailed, core.NodeRecovered, core.NodeFault, core.VMFailed,
		core.CheckpointCommitted, core.CheckpointDeleted:
		return true
	}
	return false
}

func isBeat(in core.Input) bool { _, ok := in.(core.HostBeat); return ok }

// describe names an input as an operator knows it (the event type, for
// those that came as events) and the fields that identify it.
func describe(in core.Input) (string, []any) {
	switch in := in.(type) {
	case core.NodeSuspect:
		return events.TypeNodeSuspect.Short(), []any{"host", in.Host}
	case core.NodeFailed:
		return events.TypeNodeFailed.Short(), []any{"host", in.Host, "incarnation", in.Incarnation}
	case core.NodeRecovered:
		return events.TypeNodeRecovered.Short(), []any{"host", in.Host, "incarnation", in.Incarnation}
	case core.NodeFault:
		return events.TypeNodeFault.Short(), []any{"host", in.Host, "severity", in.Severity}
	case core.VMFailed:
		return events.TypeVMFailed.Short(), []any{"vm", in.VM, "host", in.Host}
	case core.CheckpointCommitted:
		return events.TypeCheckpointCommitted.Short(), []any{"group", in.Group, "seq", in.Seq}
	case core.CheckpointDeleted:
		return events.TypeCheckpointDeleted.Short(), []any{"group", in.Group, "seq", in.Seq}
	case core.HostBeat:
		return "heartbeat", []any{"host", in.Host, "incarnation", in.Incarnation, "seq", in.Seq}
	case core.HostLeaseRenewed:
		return "lease renewal", []any{"host", in.Host, "incarnation", in.Incarnation}
	case core.VMRegistered:
		return "vm registration", []any{"vm", in.Config.Name}
	case core.VMUnregistered:
		return "vm removal", []any{"vm", in.VM}
	case core.Result:
		return "command result", []any{"kind", in.Kind, "host", in.Host, "vm", in.VM, "group", in.Group, "epoch", in.Epoch.String()}
	}
	return fmt.Sprintf("%T", in), nil
}
