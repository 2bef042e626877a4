package events

import "time"

// Epoch orders the supervisor's operations: Term is the leader term that issued
// the operation and Seq a sequence within that term. Agents refuse commands
// whose epoch is older than one they have already obeyed.
type Epoch struct {
	Term uint64 `json:"term"`
	Seq  uint64 `json:"seq"`
}

// Less reports whether e was issued before o.
func (e Epoch) Less(o Epoch) bool {
	if e.Term != o.Term {
		return e.Term < o.Term
	}
	return e.Seq < o.Seq
}

// Severity grades a site detector's finding (node.fault).
type Severity string

// Severities of node.fault. Fatal acts like node.failed; degraded asks for
// proactive migration; ok clears an earlier finding.
const (
	SeverityFatal    Severity = "fatal"
	SeverityDegraded Severity = "degraded"
	SeverityOK       Severity = "ok"
)

// NodeSuspect is the data of node.suspect: the detector's suspicion of a host
// crossed phi_suspect.
type NodeSuspect struct {
	Host        string    `json:"host"`
	Incarnation string    `json:"incarnation"`
	Phi         float64   `json:"phi"`
	LastBeat    time.Time `json:"last_beat"`
	LastSeq     uint64    `json:"last_seq"`
	Detector    string    `json:"detector"`
}

// Failure reasons of node.failed.
const (
	FailedByPhi     = "phi"     // phi crossed phi_fail
	FailedBySilence = "silence" // no beat at all for max_silence
)

// NodeFailed is the data of node.failed: the host is considered dead.
type NodeFailed struct {
	Host        string    `json:"host"`
	Incarnation string    `json:"incarnation"`
	Phi         float64   `json:"phi"`
	LastBeat    time.Time `json:"last_beat"`
	LastSeq     uint64    `json:"last_seq"`
	Detector    string    `json:"detector"`
	Reason      string    `json:"reason"`
}

// NodeRecovered is the data of node.recovered: beats came back. When
// NewIncarnation is true the agent restarted and the domains it ran before are
// gone.
type NodeRecovered struct {
	Host                string    `json:"host"`
	Incarnation         string    `json:"incarnation"`
	PreviousIncarnation string    `json:"previous_incarnation,omitempty"`
	NewIncarnation      bool      `json:"new_incarnation"`
	LastBeat            time.Time `json:"last_beat"`
	LastSeq             uint64    `json:"last_seq"`
	Detector            string    `json:"detector"`
}

// NodeFault is the data of node.fault, published by site detectors (IPMI, ECC,
// sensors, scripts) in any language.
type NodeFault struct {
	Host     string   `json:"host"`
	Severity Severity `json:"severity"`
	Reason   string   `json:"reason"`
	Detector string   `json:"detector,omitempty"`
}

// Fencing methods of node.fenced.
const (
	FenceSelf    = "self"    // the self-fence deadline passed since the last beat
	FenceCommand = "command" // a configured fence command succeeded
	// FenceAgent: after a fatal node.fault, the host's own agent confirmed
	// every domain of the supervisor's there destroyed.
	FenceAgent = "agent"
)

// NodeFenced is the data of node.fenced: the host can no longer run domains.
type NodeFenced struct {
	Host        string `json:"host"`
	Incarnation string `json:"incarnation,omitempty"`
	Method      string `json:"method"`
	Epoch       Epoch  `json:"epoch"`
}

// NodeQuarantined is the data of node.quarantined: the host failed too often and
// gets no work until an operator releases it.
type NodeQuarantined struct {
	Host     string `json:"host"`
	Failures int    `json:"failures"`
	WindowMs int64  `json:"window_ms"`
	Reason   string `json:"reason"`
}

// NodeMaintenance is the data of node.maintenance: an operator took the host
// out of (Enabled) or back into placement.
type NodeMaintenance struct {
	Host    string `json:"host"`
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason,omitempty"`
	By      string `json:"by,omitempty"`
}

// Member names one VM of a group and the host it ran on.
type Member struct {
	VM   string `json:"vm"`
	Host string `json:"host"`
}

// CheckpointStarted is the data of checkpoint.started.
type CheckpointStarted struct {
	Group   string   `json:"group"`
	Seq     uint64   `json:"seq"`
	Members []Member `json:"members"`
	Epoch   Epoch    `json:"epoch"`
}

// CheckpointImage describes one member's saved image in a committed checkpoint.
type CheckpointImage struct {
	VM           string `json:"vm"`
	Host         string `json:"host"`
	ImageKey     string `json:"image_key"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	PausedMs     int64  `json:"paused_ms"`
	DiskSnapshot string `json:"disk_snapshot,omitempty"`
}

// CheckpointCommitted is the data of checkpoint.committed: every member saved,
// the record is the group's newest consistent cut.
type CheckpointCommitted struct {
	Group      string            `json:"group"`
	Seq        uint64            `json:"seq"`
	Images     []CheckpointImage `json:"images"`
	DurationMs int64             `json:"duration_ms"`
	Epoch      Epoch             `json:"epoch"`
}

// CheckpointAborted is the data of checkpoint.aborted. VM and Host name the
// member that failed, when one did.
type CheckpointAborted struct {
	Group  string `json:"group"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
	VM     string `json:"vm,omitempty"`
	Host   string `json:"host,omitempty"`
	Epoch  Epoch  `json:"epoch"`
}

// CheckpointDeleted is the data of checkpoint.deleted (retention or cleanup).
type CheckpointDeleted struct {
	Group  string `json:"group"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// VMFailed is the data of vm.failed: a domain vanished or crashed on a healthy
// host without a command from the supervisor.
type VMFailed struct {
	VM     string `json:"vm"`
	Group  string `json:"group,omitempty"`
	Host   string `json:"host"`
	Reason string `json:"reason"`
}

// VMRestarting is the data of vm.restarting. CheckpointSeq is 0 for a cold
// start from configuration.
type VMRestarting struct {
	VM            string `json:"vm"`
	Group         string `json:"group,omitempty"`
	FromHost      string `json:"from_host,omitempty"`
	ToHost        string `json:"to_host"`
	CheckpointSeq uint64 `json:"checkpoint_seq"`
	ColdStart     bool   `json:"cold_start"`
	Attempt       int    `json:"attempt"`
	Epoch         Epoch  `json:"epoch"`
}

// VMRestarted is the data of vm.restarted: the VM runs again on Host.
type VMRestarted struct {
	VM            string `json:"vm"`
	Group         string `json:"group,omitempty"`
	Host          string `json:"host"`
	CheckpointSeq uint64 `json:"checkpoint_seq"`
	ColdStart     bool   `json:"cold_start"`
	DurationMs    int64  `json:"duration_ms"`
	Epoch         Epoch  `json:"epoch"`
}

// VMRestartFailed is the data of vm.restart_failed: one attempt failed.
type VMRestartFailed struct {
	VM        string `json:"vm"`
	Group     string `json:"group,omitempty"`
	Host      string `json:"host"`
	Attempt   int    `json:"attempt"`
	Error     string `json:"error"`
	Retryable bool   `json:"retryable"`
	Epoch     Epoch  `json:"epoch"`
}

// VMUnrecoverable is the data of vm.unrecoverable: no checkpoint verifies and
// the VM's policy forbids a cold start, or every host refused it.
type VMUnrecoverable struct {
	VM     string `json:"vm"`
	Group  string `json:"group,omitempty"`
	Reason string `json:"reason"`
}

// GroupRolledBack is the data of group.rolled_back: every member of the group
// runs again from the same checkpoint.
type GroupRolledBack struct {
	Group         string   `json:"group"`
	CheckpointSeq uint64   `json:"checkpoint_seq"`
	Members       []Member `json:"members"`
	Reason        string   `json:"reason"`
	DurationMs    int64    `json:"duration_ms"`
	Epoch         Epoch    `json:"epoch"`
}

// SupervisorLeader is the data of supervisor.leader: Supervisor holds the lease
// for Term since Since.
type SupervisorLeader struct {
	Supervisor string    `json:"supervisor"`
	Term       uint64    `json:"term"`
	Since      time.Time `json:"since"`
}

// SupervisorRestartsPaused is the data of supervisor.restarts_paused: the
// storm guard saw too many hosts fail at once and assumes the supervisor is
// cut off, so it restarts nothing until the condition clears.
type SupervisorRestartsPaused struct {
	Supervisor string `json:"supervisor"`
	Reason     string `json:"reason"`
}

// SupervisorRestartsResumed is the data of supervisor.restarts_resumed.
type SupervisorRestartsResumed struct {
	Supervisor string `json:"supervisor"`
	Reason     string `json:"reason"`
}

// SupervisorFenceFailed is the data of supervisor.fence_failed: a fence
// command failed (or none is configured). Error ends with what fences the
// host instead: its self-fence deadline once silent, or, after a fatal
// fault, its agent's confirmation.
type SupervisorFenceFailed struct {
	Supervisor string `json:"supervisor"`
	Host       string `json:"host"`
	Error      string `json:"error"`
	Attempt    int    `json:"attempt"`
	Retryable  bool   `json:"retryable"`
}

// SupervisorInputRejected is the data of supervisor.input_rejected: the
// leader refused to act on an event because of who published it (its role
// may not tell that, or supervisor.trusted_sources does not list it). It
// names the publisher the subject proves and the source the envelope claims,
// which a forger chooses.
type SupervisorInputRejected struct {
	Supervisor    string `json:"supervisor"`
	RejectedType  string `json:"event_type"`
	EventID       string `json:"event_id"`
	Host          string `json:"host,omitempty"`
	Publisher     string `json:"publisher"`
	ClaimedSource string `json:"claimed_source"`
	Reason        string `json:"reason"`
}

// SupervisorDrainFailed is the data of supervisor.drain_failed: the
// checkpoint before moving a group off a degraded host failed.
type SupervisorDrainFailed struct {
	Supervisor string `json:"supervisor"`
	Group      string `json:"group"`
	Error      string `json:"error"`
}
