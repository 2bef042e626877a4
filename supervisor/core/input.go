package core

import "time"

// Input is one thing that happened, as the shell hands it to Apply. The shell
// translates bus events, command results, timer ticks and operator requests
// into these types; the core never sees the bus.
//
// Every input carries At, the shell's clock when it handed the input over
// (not the publisher's clock): all times in State are on that one clock, except
// the LastBeat of node events, whose skew FenceMargin absorbs. A zero At means
// "no later than the last input".
type Input interface {
	at() time.Time
}

// Tick is the passing of time: retries and self-fence deadlines that are due
// fire. The shell ticks at least every second while it leads.
type Tick struct {
	At time.Time `json:"at"`
}

// SetPolicy installs a policy (at start, and on a configuration reload). An
// invalid policy is refused.
type SetPolicy struct {
	At     time.Time `json:"at"`
	Policy Policy    `json:"policy"`
}

// Leader says this supervisor holds the lease for Term. A higher term than
// the state's re-sends every command in flight with a fresh epoch, exactly
// once: the state records the new epochs, and the same term again is refused.
type Leader struct {
	At   time.Time `json:"at"`
	Term uint64    `json:"term"`
}

// HostBeat summarises a host's latest heartbeat: the shell may pass every
// beat or a summary every few seconds (at least once per fence_self_timeout).
// Domains are the domains it runs (running or paused), by name; a returning
// host's list decides which of its domains must be destroyed.
type HostBeat struct {
	At          time.Time `json:"at"`
	Host        string    `json:"host"`
	Incarnation string    `json:"incarnation"`
	Seq         uint64    `json:"seq"`
	CapacityMiB int64     `json:"capacity_mib"`
	FreeMiB     int64     `json:"free_mib"`
	Domains     []string  `json:"domains"`
	// FenceUnarmed: the beat says its agent's self-fence is not armed yet
	// (no lease renewal of this incarnation acknowledged so far). Such an
	// agent does not fence itself, so a host failed while the flag holds
	// is fenced by command or not at all (hosts.go, armed).
	FenceUnarmed bool `json:"fence_unarmed,omitempty"`
}

// HostLeaseRenewed: the host's agent renewed its fence lease (xenft_hosts)
// at RenewedAt (zero: at At): when the shell saw the renewal, or, for one
// stored before the shell watched, when the server stored it. An agent
// that renews is on the bus and has not
// fenced itself, whatever its beats say (its beacon may be stuck, its beats
// lost), so a host failed by silence does not count as self-fenced until
// fence_self_timeout + fence_margin after its newest renewal either.
// SelfTimeout is the agent's own fence.self_timeout, from the lease: when it
// is longer than the policy's, the longer is what the deadline waits for.
// AwaitingReconcile is the lease's awaiting_reconcile: the agent fenced
// itself and refuses restores, cold starts and unpauses until a leader has
// reconciled it (see OutcomeHostNotReady); the shell feeds a renewal at
// once when this changes, and about every second while it holds.
// Incarnation is the agent run that renewed: a renewal by the incarnation
// that beats now arms its self-fence as far as the core is concerned.
type HostLeaseRenewed struct {
	At                time.Time     `json:"at"`
	Host              string        `json:"host"`
	Incarnation       string        `json:"incarnation,omitempty"`
	RenewedAt         time.Time     `json:"renewed_at,omitzero"`
	SelfTimeout       time.Duration `json:"self_timeout,omitempty"`
	AwaitingReconcile bool          `json:"awaiting_reconcile,omitempty"`
}

// NodeSuspect is a detector's suspicion (node.suspect).
type NodeSuspect struct {
	At       time.Time `json:"at"`
	Host     string    `json:"host"`
	LastBeat time.Time `json:"last_beat,omitzero"`
}

// NodeFailed is a detector's verdict (node.failed): the host is silent.
// LastBeat and LastSeq are the last beat the detector received. LastLease is
// when the shell last saw the host's agent renew its fence lease (zero: not
// seen): the self-fence deadline counts from the later of the two.
type NodeFailed struct {
	At          time.Time `json:"at"`
	Host        string    `json:"host"`
	Incarnation string    `json:"incarnation,omitempty"`
	LastBeat    time.Time `json:"last_beat,omitzero"`
	LastLease   time.Time `json:"last_lease,omitzero"`
	LastSeq     uint64    `json:"last_seq,omitempty"`
	Reason      string    `json:"reason,omitempty"`
}

// NodeRecovered is node.recovered: beats came back. The host rejoins; its
// next HostBeat decides what it must destroy.
type NodeRecovered struct {
	At             time.Time `json:"at"`
	Host           string    `json:"host"`
	Incarnation    string    `json:"incarnation,omitempty"`
	NewIncarnation bool      `json:"new_incarnation,omitempty"`
	LastBeat       time.Time `json:"last_beat,omitzero"`
	LastSeq        uint64    `json:"last_seq,omitempty"`
}

// Severity grades a site detector's finding.
type Severity string

// Severities of node.fault, as on the bus.
const (
	SeverityFatal    Severity = "fatal"    // acts like node.failed
	SeverityDegraded Severity = "degraded" // drain the host
	SeverityOK       Severity = "ok"       // clears an earlier finding
)

// NodeFault is a site detector's finding (node.fault).
type NodeFault struct {
	At       time.Time `json:"at"`
	Host     string    `json:"host"`
	Severity Severity  `json:"severity"`
	Reason   string    `json:"reason,omitempty"`
}

// VMRegistered adds or updates a VM. Host, when set, is where it runs now.
type VMRegistered struct {
	At     time.Time `json:"at"`
	Config VMConfig  `json:"config"`
	Host   string    `json:"host,omitempty"`
}

// VMUnregistered stops managing a VM (refused while it is being recovered).
type VMUnregistered struct {
	At time.Time `json:"at"`
	VM string    `json:"vm"`
}

// CheckpointCommitted is checkpoint.committed as the catalog reports it. VMs
// are the members it holds images of (empty: assume all).
type CheckpointCommitted struct {
	At    time.Time `json:"at"`
	Group string    `json:"group"`
	Seq   uint64    `json:"seq"`
	VMs   []string  `json:"vms,omitempty"`
}

// CheckpointDeleted is checkpoint.deleted.
type CheckpointDeleted struct {
	At    time.Time `json:"at"`
	Group string    `json:"group"`
	Seq   uint64    `json:"seq"`
}

// VMFailed is an agent's report that a domain vanished or crashed on a host
// without a command from us (vm.failed).
type VMFailed struct {
	At     time.Time `json:"at"`
	Host   string    `json:"host"`
	VM     string    `json:"vm"`
	Reason string    `json:"reason,omitempty"`
}

// Outcome is how a command ended.
type Outcome string

// Outcomes. The shell maps the agent's error codes: retryable (and no answer
// in time) -> OutcomeRetryable; not_ready -> OutcomeHostNotReady; corrupt,
// and not_found of a restore's image -> OutcomeImageCorrupt; not_found of a
// destroy -> OutcomeOK (the domain is gone); permanent and bad_request ->
// OutcomePermanent. A stale_epoch reply means this supervisor lost the
// lease: drop it, do not feed it back.
const (
	OutcomeOK        Outcome = "ok"
	OutcomeRetryable Outcome = "retryable"
	// OutcomeHostNotReady: the host refused the command without trying it
	// because its agent fenced itself and takes no restore, cold start or
	// unpause until a leader has reconciled it. It says nothing about the
	// VM or its image: it is retried, but is no attempt of the VM's (see
	// ready.go).
	OutcomeHostNotReady Outcome = "host-not-ready"
	OutcomePermanent    Outcome = "permanent"
	OutcomeImageCorrupt Outcome = "image-corrupt"
)

// Result answers one command; build it with ResultOf. Every command must be
// answered once (a timeout is OutcomeRetryable), or its operation waits until
// the next leader change re-sends it.
type Result struct {
	At      time.Time `json:"at"`
	Kind    OpKind    `json:"kind"`
	Host    string    `json:"host,omitempty"`
	VM      string    `json:"vm,omitempty"`
	Group   string    `json:"group,omitempty"`
	Epoch   Epoch     `json:"epoch"`
	Outcome Outcome   `json:"outcome"`
	Error   string    `json:"error,omitempty"`
}

// Maintenance takes a host out of placement (On) or back. With Drain, every
// group with a member on it is checkpointed and rolled back onto other hosts.
type Maintenance struct {
	At     time.Time `json:"at"`
	Host   string    `json:"host"`
	On     bool      `json:"on"`
	Drain  bool      `json:"drain,omitempty"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
}

// RestartVM rolls a VM's group back to its latest usable checkpoint now, with
// fresh attempt counts (after it was reported unrecoverable, for instance).
type RestartVM struct {
	At time.Time `json:"at"`
	VM string    `json:"vm"`
}

// MoveVM checkpoints a VM's group and rolls it back with the VM on Host.
type MoveVM struct {
	At   time.Time `json:"at"`
	VM   string    `json:"vm"`
	Host string    `json:"host"`
}

// ReleaseQuarantine gives a quarantined host back to placement and forgets
// its failures.
type ReleaseQuarantine struct {
	At   time.Time `json:"at"`
	Host string    `json:"host"`
}

// ResumeRestarts ends a storm pause by an operator's decision: failures
// before now no longer count towards a storm.
type ResumeRestarts struct {
	At time.Time `json:"at"`
}

func (i Tick) at() time.Time                { return i.At }
func (i SetPolicy) at() time.Time           { return i.At }
func (i Leader) at() time.Time              { return i.At }
func (i HostLeaseRenewed) at() time.Time    { return i.At }
func (i HostBeat) at() time.Time            { return i.At }
func (i NodeSuspect) at() time.Time         { return i.At }
func (i NodeFailed) at() time.Time          { return i.At }
func (i NodeRecovered) at() time.Time       { return i.At }
func (i NodeFault) at() time.Time           { return i.At }
func (i VMRegistered) at() time.Time        { return i.At }
func (i VMUnregistered) at() time.Time      { return i.At }
func (i CheckpointCommitted) at() time.Time { return i.At }
func (i CheckpointDeleted) at() time.Time   { return i.At }
func (i VMFailed) at() time.Time            { return i.At }
func (i Result) at() time.Time              { return i.At }
func (i Maintenance) at() time.Time         { return i.At }
func (i RestartVM) at() time.Time           { return i.At }
func (i MoveVM) at() time.Time              { return i.At }
func (i ReleaseQuarantine) at() time.Time   { return i.At }
func (i ResumeRestarts) at() time.Time      { return i.At }
