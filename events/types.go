package events

import "sort"

// Type is a CloudEvents type of xenft: "xenft.<kind>.<name>".
type Type string

// Every event type of xenft. DESIGN.md "Subjects and state" is the source.
const (
	TypeNodeSuspect     Type = "xenft.node.suspect"
	TypeNodeFailed      Type = "xenft.node.failed"
	TypeNodeRecovered   Type = "xenft.node.recovered"
	TypeNodeFault       Type = "xenft.node.fault"
	TypeNodeFenced      Type = "xenft.node.fenced"
	TypeNodeQuarantined Type = "xenft.node.quarantined"
	TypeNodeMaintenance Type = "xenft.node.maintenance"

	TypeCheckpointStarted   Type = "xenft.checkpoint.started"
	TypeCheckpointCommitted Type = "xenft.checkpoint.committed"
	TypeCheckpointAborted   Type = "xenft.checkpoint.aborted"
	TypeCheckpointDeleted   Type = "xenft.checkpoint.deleted"

	TypeVMFailed        Type = "xenft.vm.failed"
	TypeVMRestarting    Type = "xenft.vm.restarting"
	TypeVMRestarted     Type = "xenft.vm.restarted"
	TypeVMRestartFailed Type = "xenft.vm.restart_failed"
	TypeVMUnrecoverable Type = "xenft.vm.unrecoverable"

	TypeGroupRolledBack Type = "xenft.group.rolled_back"

	TypeSupervisorLeader          Type = "xenft.supervisor.leader"
	TypeSupervisorRestartsPaused  Type = "xenft.supervisor.restarts_paused"
	TypeSupervisorRestartsResumed Type = "xenft.supervisor.restarts_resumed"
	TypeSupervisorFenceFailed     Type = "xenft.supervisor.fence_failed"
	TypeSupervisorDrainFailed     Type = "xenft.supervisor.drain_failed"
	TypeSupervisorInputRejected   Type = "xenft.supervisor.input_rejected"
)

// Payload is the typed data of one event type. EntityID names what the event
// is about (a host, VM, group or supervisor); it is the last token of the NATS
// subject and the id in the CloudEvents subject "<entity>/<id>".
type Payload interface {
	EventType() Type
	EntityID() string
}

// typeInfo is what the registry knows of one type.
type typeInfo struct {
	kind    string // node, vm, group, checkpoint, supervisor
	name    string // failed, committed, ...
	entity  string // host, vm, group, supervisor: the CloudEvents subject's prefix
	newData func() Payload
}

var registry = map[Type]typeInfo{
	TypeNodeSuspect:               {"node", "suspect", "host", func() Payload { return new(NodeSuspect) }},
	TypeNodeFailed:                {"node", "failed", "host", func() Payload { return new(NodeFailed) }},
	TypeNodeRecovered:             {"node", "recovered", "host", func() Payload { return new(NodeRecovered) }},
	TypeNodeFault:                 {"node", "fault", "host", func() Payload { return new(NodeFault) }},
	TypeNodeFenced:                {"node", "fenced", "host", func() Payload { return new(NodeFenced) }},
	TypeNodeQuarantined:           {"node", "quarantined", "host", func() Payload { return new(NodeQuarantined) }},
	TypeNodeMaintenance:           {"node", "maintenance", "host", func() Payload { return new(NodeMaintenance) }},
	TypeCheckpointStarted:         {"checkpoint", "started", "group", func() Payload { return new(CheckpointStarted) }},
	TypeCheckpointCommitted:       {"checkpoint", "committed", "group", func() Payload { return new(CheckpointCommitted) }},
	TypeCheckpointAborted:         {"checkpoint", "aborted", "group", func() Payload { return new(CheckpointAborted) }},
	TypeCheckpointDeleted:         {"checkpoint", "deleted", "group", func() Payload { return new(CheckpointDeleted) }},
	TypeVMFailed:                  {"vm", "failed", "vm", func() Payload { return new(VMFailed) }},
	TypeVMRestarting:              {"vm", "restarting", "vm", func() Payload { return new(VMRestarting) }},
	TypeVMRestarted:               {"vm", "restarted", "vm", func() Payload { return new(VMRestarted) }},
	TypeVMRestartFailed:           {"vm", "restart_failed", "vm", func() Payload { return new(VMRestartFailed) }},
	TypeVMUnrecoverable:           {"vm", "unrecoverable", "vm", func() Payload { return new(VMUnrecoverable) }},
	TypeGroupRolledBack:           {"group", "rolled_back", "group", func() Payload { return new(GroupRolledBack) }},
	TypeSupervisorLeader:          {"supervisor", "leader", "supervisor", func() Payload { return new(SupervisorLeader) }},
	TypeSupervisorRestartsPaused:  {"supervisor", "restarts_paused", "supervisor", func() Payload { return new(SupervisorRestartsPaused) }},
	TypeSupervisorRestartsResumed: {"supervisor", "restarts_resumed", "supervisor", func() Payload { return new(SupervisorRestartsResumed) }},
	TypeSupervisorFenceFailed:     {"supervisor", "fence_failed", "supervisor", func() Payload { return new(SupervisorFenceFailed) }},
	TypeSupervisorDrainFailed:     {"supervisor", "drain_failed", "supervisor", func() Payload { return new(SupervisorDrainFailed) }},
	TypeSupervisorInputRejected:   {"supervisor", "input_rejected", "supervisor", func() Payload { return new(SupervisorInputRejected) }},
}

// Types returns every known event type, sorted.
func Types() []Type {
	ts := make([]Type, 0, len(registry))
	for t := range registry {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

// Known reports whether t is a type of xenft.
func (t Type) Known() bool { _, ok := registry[t]; return ok }

// Kind is the type's kind ("node" for xenft.node.failed), or "" if unknown.
func (t Type) Kind() string { return registry[t].kind }

// Name is the type's name within its kind ("failed"), or "" if unknown.
func (t Type) Name() string { return registry[t].name }

// Short is the type without the "xenft." prefix ("node.failed").
func (t Type) Short() string {
	if i := registry[t]; i.kind != "" {
		return i.kind + "." + i.name
	}
	return string(t)
}

// ParseType accepts a full type ("xenft.node.fault") or a short one
// ("node.fault") and reports whether it is known.
func ParseType(s string) (Type, bool) {
	if t := Type(s); t.Known() {
		return t, true
	}
	t := Type("xenft." + s)
	return t, t.Known()
}

func (NodeSuspect) EventType() Type               { return TypeNodeSuspect }
func (NodeFailed) EventType() Type                { return TypeNodeFailed }
func (NodeRecovered) EventType() Type             { return TypeNodeRecovered }
func (NodeFault) EventType() Type                 { return TypeNodeFault }
func (NodeFenced) EventType() Type                { return TypeNodeFenced }
func (NodeQuarantined) EventType() Type           { return TypeNodeQuarantined }
func (NodeMaintenance) EventType() Type           { return TypeNodeMaintenance }
func (CheckpointStarted) EventType() Type         { return TypeCheckpointStarted }
func (CheckpointCommitted) EventType() Type       { return TypeCheckpointCommitted }
func (CheckpointAborted) EventType() Type         { return TypeCheckpointAborted }
func (CheckpointDeleted) EventType() Type         { return TypeCheckpointDeleted }
func (VMFailed) EventType() Type                  { return TypeVMFailed }
func (VMRestarting) EventType() Type              { return TypeVMRestarting }
func (VMRestarted) EventType() Type               { return TypeVMRestarted }
func (VMRestartFailed) EventType() Type           { return TypeVMRestartFailed }
func (VMUnrecoverable) EventType() Type           { return TypeVMUnrecoverable }
func (GroupRolledBack) EventType() Type           { return TypeGroupRolledBack }
func (SupervisorLeader) EventType() Type          { return TypeSupervisorLeader }
func (SupervisorRestartsPaused) EventType() Type  { return TypeSupervisorRestartsPaused }
func (SupervisorRestartsResumed) EventType() Type { return TypeSupervisorRestartsResumed }
func (SupervisorFenceFailed) EventType() Type     { return TypeSupervisorFenceFailed }
func (SupervisorDrainFailed) EventType() Type     { return TypeSupervisorDrainFailed }
func (SupervisorInputRejected) EventType() Type   { return TypeSupervisorInputRejected }

func (d NodeSuspect) EntityID() string               { return d.Host }
func (d NodeFailed) EntityID() string                { return d.Host }
func (d NodeRecovered) EntityID() string             { return d.Host }
func (d NodeFault) EntityID() string                 { return d.Host }
func (d NodeFenced) EntityID() string                { return d.Host }
func (d NodeQuarantined) EntityID() string           { return d.Host }
func (d NodeMaintenance) EntityID() string           { return d.Host }
func (d CheckpointStarted) EntityID() string         { return d.Group }
func (d CheckpointCommitted) EntityID() string       { return d.Group }
func (d CheckpointAborted) EntityID() string         { return d.Group }
func (d CheckpointDeleted) EntityID() string         { return d.Group }
func (d VMFailed) EntityID() string                  { return d.VM }
func (d VMRestarting) EntityID() string              { return d.VM }
func (d VMRestarted) EntityID() string               { return d.VM }
func (d VMRestartFailed) EntityID() string           { return d.VM }
func (d VMUnrecoverable) EntityID() string           { return d.VM }
func (d GroupRolledBack) EntityID() string           { return d.Group }
func (d SupervisorLeader) EntityID() string          { return d.Supervisor }
func (d SupervisorRestartsPaused) EntityID() string  { return d.Supervisor }
func (d SupervisorRestartsResumed) EntityID() string { return d.Supervisor }
func (d SupervisorFenceFailed) EntityID() string     { return d.Supervisor }
func (d SupervisorDrainFailed) EntityID() string     { return d.Supervisor }
func (d SupervisorInputRejected) EntityID() string   { return d.Supervisor }
