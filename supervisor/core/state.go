package core

import (
	"slices"
	"time"
)

// State is everything the supervisor knows and has decided. It is plain data:
// every field is exported and serialisable to JSON, so the shell can persist
// it (whole, or one entry per host, VM and group plus Meta, see Changes) and a
// new leader can resume from it.
//
// A State is owned by one goroutine; Apply updates it in place.
type State struct {
	Meta
	Hosts  map[string]*Host  `json:"hosts"`
	VMs    map[string]*VM    `json:"vms"`
	Groups map[string]*Group `json:"groups"`

	idx     *index    // derived, rebuilt on demand; never persisted
	changed changeSet // entries changed since TakeChanges
}

// Meta is the part of State that is not per host, VM or group.
type Meta struct {
	Policy Policy `json:"policy"`
	// Term is the leader term this state acts for (0: not leading yet) and
	// OpSeq the last sequence number issued in it: epochs are (Term, OpSeq).
	Term  uint64 `json:"term"`
	OpSeq uint64 `json:"op_seq"`
	// Now is the latest time an input carried; time never goes back.
	Now time.Time `json:"now,omitzero"`
	// Storm is set while restarts are paused (see storm.go).
	Storm *Storm `json:"storm,omitempty"`
	// StormResumed is when an operator last resumed restarts: failures
	// before it no longer count towards a storm.
	StormResumed time.Time `json:"storm_resumed,omitzero"`
	Counters     Counters  `json:"counters"`
}

// Storm says why restarts are paused.
type Storm struct {
	Since  time.Time `json:"since"`
	Failed int       `json:"failed"` // hosts failed within the window and still down
	Hosts  int       `json:"hosts"`  // hosts known
	Reason string    `json:"reason"`
}

// Counters count decisions, for status and metrics.
type Counters struct {
	Fences       uint64 `json:"fences"`        // hosts fenced (by command or deadline)
	Restores     uint64 `json:"restores"`      // restore and cold-start commands issued
	RestoreFails uint64 `json:"restore_fails"` // failed restore or cold-start results
	Rollbacks    uint64 `json:"rollbacks"`     // group rollbacks completed
	Unrecovered  uint64 `json:"unrecovered"`   // VMs reported unrecoverable
	Storms       uint64 `json:"storms"`        // times restarts were paused
	Quarantines  uint64 `json:"quarantines"`   // hosts quarantined
}

// HostState is a host's liveness as the supervisor sees it.
type HostState string

// Host states. Placement uses only healthy hosts that are neither in
// maintenance, quarantined nor reported faulty.
const (
	HostHealthy HostState = "healthy"
	// HostSuspect: a detector suspects the host; it gets no new work.
	HostSuspect HostState = "suspect"
	// HostFailed: declared dead; its VMs may still run until it is fenced
	// (fence command succeeded, self-fence deadline passed, or, after a
	// fatal fault, its agent confirmed them destroyed: fault.go).
	HostFailed HostState = "failed"
	// HostFenced: it surely runs nothing any more.
	HostFenced HostState = "fenced"
	// HostRejoining: a failed or fenced host beats again. It gets no work
	// until it has reported its domains and destroyed those that now run
	// elsewhere (or are being restored elsewhere).
	HostRejoining HostState = "rejoining"
)

// How a host was declared failed; only silence lets the self-fence deadline
// count as fencing, since a host that still beats has not fenced itself.
const (
	FailedBySilence = "silence"
	FailedByFault   = "fault"
)

// Host is one Xen host (its agent).
type Host struct {
	Name        string    `json:"name"`
	State       HostState `json:"state"`
	FailedBy    string    `json:"failed_by,omitempty"`
	Incarnation string    `json:"incarnation,omitempty"`
	// BeatSeq is the sequence of the newest beat of Incarnation seen, and
	// FailSeq the newest one seen when the host failed: a later beat proves
	// the host is alive again.
	BeatSeq  uint64    `json:"beat_seq,omitempty"`
	FailSeq  uint64    `json:"fail_seq,omitempty"`
	LastBeat time.Time `json:"last_beat,omitzero"`
	// CapacityMiB and FreeMiB as of the last beat. Reserved is memory of
	// VMs placed here that the last beat did not show yet (VM -> MiB): free
	// memory for placement is FreeMiB minus their sum.
	CapacityMiB int64            `json:"capacity_mib"`
	FreeMiB     int64            `json:"free_mib"`
	Reserved    map[string]int64 `json:"reserved,omitempty"`
	Maintenance bool             `json:"maintenance,omitempty"`
	Quarantined bool             `json:"quarantined,omitempty"`
	// Fault is the severity a site detector last reported ("degraded" or
	// "fatal"); "" once it reports "ok". A faulty host gets no new work.
	Fault       Severity `json:"fault,omitempty"`
	FaultReason string   `json:"fault_reason,omitempty"`
	// Failures are the times the host failed within the flap window.
	Failures []time.Time `json:"failures,omitempty"`
	FailedAt time.Time   `json:"failed_at,omitzero"`
	// FenceDeadline is the self-fence deadline of a host failed by silence:
	// the later of its last beat and its agent's last lease renewal, plus
	// fence_self_timeout (or the agent's SelfTimeout, if longer) plus
	// fence_margin. Zero otherwise.
	FenceDeadline time.Time `json:"fence_deadline,omitzero"`
	// FenceUnarmed: the host's agent said in its newest beat that its
	// self-fence is not armed (it has had no lease renewal acknowledged
	// since it started), and no renewal of that incarnation was seen since.
	// A host failed by silence while unarmed gets no self-fence deadline:
	// only a fence command, or its return, ends its VMs' wait.
	FenceUnarmed bool `json:"fence_unarmed,omitempty"`
	// SelfTimeout is the fence.self_timeout its agent's lease announces.
	SelfTimeout time.Duration `json:"self_timeout,omitempty"`
	// Fence is the fence command in flight or waiting to be sent again.
	Fence *Op `json:"fence,omitempty"`
	// Synced is set on a rejoining host once a beat's domain list has been
	// reconciled.
	Synced bool `json:"synced,omitempty"`
	// Cleanup holds destroy commands for domains this host runs that must
	// not run here (VM name -> op): stale copies after a partition, or a
	// failed restore's leftovers.
	Cleanup map[string]*Op `json:"cleanup,omitempty"`
	// NotReady counts the commands the host refused in a row because its
	// agent fenced itself and awaits reconciliation (OutcomeHostNotReady),
	// AwaitingSince is when its lease first said so, and NotReadyUntil is
	// when it may get new work again. See ready.go.
	NotReady      int       `json:"not_ready,omitempty"`
	AwaitingSince time.Time `json:"awaiting_since,omitzero"`
	NotReadyUntil time.Time `json:"not_ready_until,omitzero"`
}

// RestartPolicy says what the supervisor may do for a lost VM.
type RestartPolicy string

// Restart policies.
const (
	// PolicyRestore restores the VM (with its group) from the latest
	// verified committed checkpoint; without one it is unrecoverable.
	PolicyRestore RestartPolicy = "restore"
	// PolicyRestoreOrCold restores as PolicyRestore does, and cold-starts
	// from configuration when no checkpoint verifies.
	PolicyRestoreOrCold RestartPolicy = "restore-or-cold"
	// PolicyNone never restarts the VM: a lost VM is reported unrecoverable
	// and its group is left alone.
	PolicyNone RestartPolicy = "none"
)

// VMState is where a VM stands.
type VMState string

// VM states. A recovery moves a member stopping -> pending -> restoring ->
// restored -> unpausing -> running.
const (
	VMUnplaced VMState = "unplaced" // registered; no copy seen yet
	VMRunning  VMState = "running"
	// VMStopping: its copy on Host must be gone (fenced or destroyed)
	// before it is restored anywhere.
	VMStopping  VMState = "stopping"
	VMPending   VMState = "pending"   // no copy; waits for placement
	VMRestoring VMState = "restoring" // restore or cold start in flight (Op)
	VMRestored  VMState = "restored"  // paused copy on Host from checkpoint Seq
	VMUnpausing VMState = "unpausing"
	// VMUnrecoverable: given up until an operator restarts it; Host may
	// still name a paused copy or a copy on a host not yet fenced.
	VMUnrecoverable VMState = "unrecoverable"
)

// VMConfig is what an operator registers.
type VMConfig struct {
	Name string `json:"name"`
	// Group is the group that rolls back together; "" makes the VM a group
	// of one named after the VM (the catalog's group for its checkpoints).
	Group     string        `json:"group,omitempty"`
	MemoryMiB int64         `json:"memory_mib"`
	Priority  int           `json:"priority"` // higher is placed first
	Policy    RestartPolicy `json:"policy"`
}

// VM is one managed domain.
type VM struct {
	VMConfig
	State VMState `json:"state"`
	// Host is where the one copy the supervisor believes may exist is
	// ("": none). A restore is only ever sent while Host is "".
	Host string `json:"host,omitempty"`
	// Prev is the host of the copy a recovery replaces, for events.
	Prev string `json:"prev,omitempty"`
	// Seq is the checkpoint the copy on Host was restored from (0: cold
	// start or unknown).
	Seq uint64 `json:"seq,omitempty"`
	Op  *Op    `json:"op,omitempty"`
	// Attempts counts restore attempts in this recovery, HostFailures the
	// consecutive failures on Op.Host, and Tried the hosts given up on.
	Attempts     int      `json:"attempts,omitempty"`
	HostFailures int      `json:"host_failures,omitempty"`
	Tried        []string `json:"tried,omitempty"`
	// Reason says why the VM is unrecoverable.
	Reason string `json:"reason,omitempty"`
	// Missing is the sequence of the first beat of Host that did not list
	// the VM (0: listed); see missing in hostrejoin.go.
	Missing uint64 `json:"missing,omitempty"`
}

// Group is a set of VMs that roll back together.
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"` // sorted
	// Checkpoints are the committed checkpoints the catalog reported,
	// newest first.
	Checkpoints []Checkpoint `json:"checkpoints,omitempty"`
	Rollback    *Rollback    `json:"rollback,omitempty"`
	// Drain waits for a fresh checkpoint before rolling back onto other
	// hosts (maintenance, degraded host, operator move).
	Drain *Drain `json:"drain,omitempty"`
}

// Checkpoint is one committed checkpoint of a group.
type Checkpoint struct {
	Seq uint64 `json:"seq"`
	// VMs are the members it holds images of; empty means unknown (then it
	// is assumed to hold every member).
	VMs []string `json:"vms,omitempty"`
	// Corrupt is set when an image failed verification on restore.
	Corrupt bool `json:"corrupt,omitempty"`
}

// Rollback is a group's recovery in progress.
type Rollback struct {
	// Seq is the checkpoint every member is restored from; 0 is a cold
	// start from configuration.
	Seq     uint64    `json:"seq"`
	Reason  string    `json:"reason"`
	Started time.Time `json:"started"`
	Epoch   Epoch     `json:"epoch"`
	// Committed is set once a destroy, restore or cold start was sent:
	// from then on the rollback can no longer be abandoned when hosts
	// return.
	Committed bool `json:"committed,omitempty"`
	// Unpausing is set once every member was restored from Seq.
	Unpausing bool `json:"unpausing,omitempty"`
	// Pins asks for a VM on a host (operator move), when it fits.
	Pins map[string]string `json:"pins,omitempty"`
}

// Drain is a rollback that waits for a checkpoint newer than After.
type Drain struct {
	Reason string `json:"reason"`
	Host   string `json:"host,omitempty"` // the host drained, if any
	After  uint64 `json:"after"`
	Op     *Op    `json:"op,omitempty"` // the checkpoint request
	// Accepted: the coordinator took the request; the checkpoint is awaited.
	Accepted bool              `json:"accepted,omitempty"`
	Pins     map[string]string `json:"pins,omitempty"`
}

// OpKind is the kind of a command.
type OpKind string

// Command kinds.
const (
	OpFence      OpKind = "fence"
	OpDestroy    OpKind = "destroy"
	OpRestore    OpKind = "restore"
	OpColdStart  OpKind = "cold-start"
	OpUnpause    OpKind = "unpause"
	OpCheckpoint OpKind = "checkpoint"
)

// Op is one command the supervisor drives to completion.
type Op struct {
	Kind OpKind `json:"kind"`
	Host string `json:"host,omitempty"`
	Seq  uint64 `json:"seq,omitempty"` // checkpoint of a restore
	// Epoch is the epoch of the latest send.
	Epoch Epoch `json:"epoch"`
	// Due is zero while a send awaits its result; otherwise the command is
	// (re)sent at the first input at or after Due.
	Due time.Time `json:"due,omitzero"`
	// Sends counts the times it was sent; Failures the failed results.
	Sends    int `json:"sends"`
	Failures int `json:"failures,omitempty"`
	// Abandoned: failed for good; kept as a record, never sent again.
	Abandoned bool `json:"abandoned,omitempty"`
	// Reason of a cleanup destroy ("stale" or "cleanup").
	Reason string `json:"reason,omitempty"`
}

// NewState returns an empty state with policy p (which should be valid).
func NewState(p Policy) *State {
	return &State{
		Meta:   Meta{Policy: p},
		Hosts:  map[string]*Host{},
		VMs:    map[string]*VM{},
		Groups: map[string]*Group{},
	}
}

// groupOf is the name of v's group.
func groupOf(c VMConfig) string {
	if c.Group != "" {
		return c.Group
	}
	return c.Name
}

// placeable reports whether h may get new work.
func (h *Host) placeable() bool {
	return h.State == HostHealthy && !h.Maintenance && !h.Quarantined && h.Fault == ""
}

// down reports whether h counts as failed for the storm guard.
func (h *Host) down() bool { return h.State == HostFailed || h.State == HostFenced }

// inRollback reports whether v is a member of a recovery in progress.
func (v *VM) inRollback() bool {
	switch v.State {
	case VMStopping, VMPending, VMRestoring, VMRestored, VMUnpausing:
		return true
	}
	return false
}

// latest is the newest usable checkpoint of g for its current members.
func (g *Group) latest(below uint64) (uint64, bool) {
	for _, c := range g.Checkpoints {
		if c.Corrupt || (below != 0 && c.Seq >= below) || !c.covers(g.Members) {
			continue
		}
		return c.Seq, true
	}
	return 0, false
}

// covers reports whether c holds an image of every member.
func (c Checkpoint) covers(members []string) bool {
	if len(c.VMs) == 0 {
		return true
	}
	for _, m := range members {
		if !slices.Contains(c.VMs, m) {
			return false
		}
	}
	return true
}
