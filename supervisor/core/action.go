package core

import (
	"fmt"
	"strings"
	"time"
)

// Action is an effect Apply asks for, as a value. The shell executes them in
// order after persisting the state that decided them. Commands (FenceHost,
// DestroyVM, RestoreVM, ColdStartVM, UnpauseVM, CheckpointGroup) are answered
// with a Result built by ResultOf; Publish is fire-and-forget.
type Action interface {
	fmt.Stringer
	isAction()
}

// Command is an Action that expects a Result.
type Command interface {
	Action
	// Op identifies the command: its kind, target and epoch.
	Op() Result
}

// FenceHost asks for the host's fence command (e.g. power off). Without a
// configured command the shell answers OutcomePermanent at once: then the
// self-fence deadline of a silent host decides, or, after a fatal fault, the
// host's agent (fault.go). The core says which in supervisor.fence_failed.
type FenceHost struct {
	Host  string `json:"host"`
	Epoch Epoch  `json:"epoch"`
	// SelfFenceDeadline is when the host will count as fenced anyway (zero
	// for a host failed by a fault report, which may still run).
	SelfFenceDeadline time.Time `json:"self_fence_deadline,omitzero"`
}

// DestroyVM asks host's agent to destroy the VM's domain there. Destroying a
// domain that does not exist succeeds.
type DestroyVM struct {
	Host  string `json:"host"`
	VM    string `json:"vm"`
	Epoch Epoch  `json:"epoch"`
	// Reason: "rollback" (a member is rolled back), "stale" (the host runs
	// a copy that lives elsewhere), "cleanup" (after a failed restore) or
	// "fence" (the host's fence by its agent after a fatal fault).
	Reason string `json:"reason"`
}

// RestoreVM asks host's restarter to fetch the VM's image of checkpoint Seq of
// Group, verify it and restore it paused. Restoring a VM already restored
// there from the same checkpoint succeeds without a second copy.
type RestoreVM struct {
	Host      string `json:"host"`
	VM        string `json:"vm"`
	Group     string `json:"group"`
	Seq       uint64 `json:"seq"`
	MemoryMiB int64  `json:"memory_mib"`
	Epoch     Epoch  `json:"epoch"`
	Paused    bool   `json:"paused"`
}

// ColdStartVM asks host's restarter to create the VM from its configuration,
// paused, when its group has no checkpoint and every member's policy allows.
type ColdStartVM struct {
	Host      string `json:"host"`
	VM        string `json:"vm"`
	Group     string `json:"group"`
	MemoryMiB int64  `json:"memory_mib"`
	Epoch     Epoch  `json:"epoch"`
	Paused    bool   `json:"paused"`
}

// UnpauseVM asks host's agent to unpause the VM. The unpauses of a group are
// issued together, once every member is restored.
type UnpauseVM struct {
	Host  string `json:"host"`
	VM    string `json:"vm"`
	Group string `json:"group"`
	Epoch Epoch  `json:"epoch"`
}

// CheckpointGroup asks the checkpoint coordinator for a checkpoint of Group
// now (a drain or a move waits for it). The shell answers OutcomeOK once the
// coordinator accepted; the checkpoint itself arrives as CheckpointCommitted.
// A failure (an abort) is retried.
type CheckpointGroup struct {
	Group  string `json:"group"`
	Epoch  Epoch  `json:"epoch"`
	Reason string `json:"reason"`
}

// Publish asks for an event on the bus.
type Publish struct {
	Event Event `json:"event"`
}

// Event is what the shell publishes. Type is the bus's short type
// ("vm.restarted", "supervisor.restarts_paused"); the fields that matter for
// that type are set (for vm.restarting, Host is the target host and FromHost
// the lost one).
type Event struct {
	Type        string        `json:"type"`
	Host        string        `json:"host,omitempty"`
	VM          string        `json:"vm,omitempty"`
	Group       string        `json:"group,omitempty"`
	FromHost    string        `json:"from_host,omitempty"`
	Seq         uint64        `json:"checkpoint_seq,omitempty"`
	ColdStart   bool          `json:"cold_start,omitempty"`
	Attempt     int           `json:"attempt,omitempty"`
	Epoch       Epoch         `json:"epoch,omitzero"`
	Method      string        `json:"method,omitempty"`
	Incarnation string        `json:"incarnation,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	Error       string        `json:"error,omitempty"`
	Retryable   bool          `json:"retryable,omitempty"`
	Enabled     bool          `json:"enabled,omitempty"`
	By          string        `json:"by,omitempty"`
	Failures    int           `json:"failures,omitempty"`
	Window      time.Duration `json:"window,omitempty"`
	Members     []Member      `json:"members,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
}

// Member is one VM of a group and its host, as group.rolled_back lists them.
type Member struct {
	VM   string `json:"vm"`
	Host string `json:"host"`
}

// Event types, as the bus's short types.
const (
	EventNodeFenced      = "node.fenced"
	EventNodeQuarantined = "node.quarantined"
	EventNodeMaintenance = "node.maintenance"
	EventVMRestarting    = "vm.restarting"
	EventVMRestarted     = "vm.restarted"
	EventVMRestartFailed = "vm.restart_failed"
	EventVMUnrecoverable = "vm.unrecoverable"
	EventGroupRolledBack = "group.rolled_back"

	EventRestartsPaused  = "supervisor.restarts_paused"
	EventRestartsResumed = "supervisor.restarts_resumed"
	EventFenceFailed     = "supervisor.fence_failed"
	EventDrainFailed     = "supervisor.drain_failed"
)

// Fencing methods of node.fenced, as on the bus.
const (
	FenceMethodSelf    = "self"    // the self-fence deadline passed
	FenceMethodCommand = "command" // the fence command succeeded
	// FenceMethodAgent: after a fatal fault, the host's own agent
	// confirmed every copy believed there destroyed (fault.go).
	FenceMethodAgent = "agent"
)

func (FenceHost) isAction()       {}
func (DestroyVM) isAction()       {}
func (RestoreVM) isAction()       {}
func (ColdStartVM) isAction()     {}
func (UnpauseVM) isAction()       {}
func (CheckpointGroup) isAction() {}
func (Publish) isAction()         {}

// Op returns the Result skeleton that answers a (Outcome and At unset).
func (a FenceHost) Op() Result { return Result{Kind: OpFence, Host: a.Host, Epoch: a.Epoch} }
func (a DestroyVM) Op() Result {
	return Result{Kind: OpDestroy, Host: a.Host, VM: a.VM, Epoch: a.Epoch}
}
func (a RestoreVM) Op() Result {
	return Result{Kind: OpRestore, Host: a.Host, VM: a.VM, Epoch: a.Epoch}
}
func (a ColdStartVM) Op() Result {
	return Result{Kind: OpColdStart, Host: a.Host, VM: a.VM, Epoch: a.Epoch}
}
func (a UnpauseVM) Op() Result {
	return Result{Kind: OpUnpause, Host: a.Host, VM: a.VM, Epoch: a.Epoch}
}
func (a CheckpointGroup) Op() Result {
	return Result{Kind: OpCheckpoint, Group: a.Group, Epoch: a.Epoch}
}

// ResultOf builds the Result answering c.
func ResultOf(c Command, at time.Time, o Outcome, errText string) Result {
	r := c.Op()
	r.At, r.Outcome, r.Error = at, o, errText
	return r
}

func (a FenceHost) String() string {
	s := fmt.Sprintf("fence host=%s epoch=%s", a.Host, a.Epoch)
	if !a.SelfFenceDeadline.IsZero() {
		s += " self-fence-deadline=" + a.SelfFenceDeadline.UTC().Format(time.RFC3339Nano)
	}
	return s
}

func (a DestroyVM) String() string {
	return fmt.Sprintf("destroy vm=%s host=%s epoch=%s reason=%s", a.VM, a.Host, a.Epoch, a.Reason)
}

func (a RestoreVM) String() string {
	return fmt.Sprintf("restore vm=%s host=%s group=%s seq=%d epoch=%s paused=%t", a.VM, a.Host, a.Group, a.Seq, a.Epoch, a.Paused)
}

func (a ColdStartVM) String() string {
	return fmt.Sprintf("cold-start vm=%s host=%s group=%s epoch=%s paused=%t", a.VM, a.Host, a.Group, a.Epoch, a.Paused)
}

func (a UnpauseVM) String() string {
	return fmt.Sprintf("unpause vm=%s host=%s group=%s epoch=%s", a.VM, a.Host, a.Group, a.Epoch)
}

func (a CheckpointGroup) String() string {
	return fmt.Sprintf("checkpoint group=%s epoch=%s reason=%q", a.Group, a.Epoch, a.Reason)
}

func (a Publish) String() string { return "publish " + a.Event.String() }

// String lists the set fields of e in a fixed order.
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Type)
	kv := func(k string, v any, set bool) {
		if set {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
	}
	kv("host", e.Host, e.Host != "")
	kv("vm", e.VM, e.VM != "")
	kv("group", e.Group, e.Group != "")
	kv("from", e.FromHost, e.FromHost != "")
	kv("seq", e.Seq, e.Seq != 0)
	kv("cold", e.ColdStart, e.ColdStart)
	kv("attempt", e.Attempt, e.Attempt != 0)
	kv("epoch", e.Epoch, !e.Epoch.IsZero())
	kv("method", e.Method, e.Method != "")
	kv("enabled", e.Enabled, e.Type == EventNodeMaintenance)
	kv("by", e.By, e.By != "")
	kv("failures", e.Failures, e.Failures != 0)
	kv("window", e.Window, e.Window != 0)
	kv("error", fmt.Sprintf("%q", e.Error), e.Error != "")
	kv("retryable", e.Retryable, e.Type == EventVMRestartFailed)
	if len(e.Members) > 0 {
		ms := make([]string, len(e.Members))
		for i, m := range e.Members {
			ms[i] = m.VM + "@" + m.Host
		}
		kv("members", strings.Join(ms, ","), true)
	}
	kv("duration", e.Duration, e.Duration != 0)
	kv("reason", fmt.Sprintf("%q", e.Reason), e.Reason != "")
	return b.String()
}
