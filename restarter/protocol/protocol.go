// Package protocol is the restarter's command protocol on
// <prefix>.cmd.<host>.<verb>: the verbs, their requests and replies, and the
// host lease record every agent keeps in the xenft_hosts bucket.
//
// It is a package of its own, importing nothing of the project but events
// and the request checks of internal/reqcheck (which import the store's key
// rule), because the supervisor speaks it and must not import package
// restarter, which drives the xen toolstack (supervisor/deps_test.go).
//
// Every request carries the sender's epoch; the agent refuses an epoch whose
// term is older than one it has obeyed (events.EpochGuard, shared with the
// checkpointer) and, per VM, an epoch older than the newest it has obeyed for
// that VM. Failures come back as *command.Error (package events/command)
// with these codes:
//
//	vm.restore    not_found: no image under image_key; corrupt: the image's
//	              size or sha256 differ from the request; permanent: a domain
//	              of that name already runs here (destroy it first), no
//	              memory, a configuration it cannot read; not_ready: the host is
//	              self-fenced and not reconciled yet (see ListReply.Fence,
//	              HostLease.AwaitingReconcile); retryable: timeouts,
//	              toolstack errors, store unreachable; bad_request: a
//	              configuration naming another domain.
//	vm.destroy    never not_found: destroying a missing domain succeeds;
//	              never not_ready: a self-fenced host destroys.
//	vm.unpause    not_found: no such domain; permanent: it is crashed or
//	              shut down, or was paused by a self-fence; not_ready: the
//	              host is self-fenced.
//	vm.coldstart  as vm.restore, without image errors.
//	vm.list       none in practice (retryable if xl fails).
//	vm.peek       as vm.list.
//
// stale_epoch on any verb means the sender lost the leadership; bad_request
// on any verb, that the request's Validate refused it (validate.go) and
// nothing was done: sending it again cannot succeed.
package protocol

import (
	"time"

	"github.com/xenft/xenft/events"
)

// Verbs of the restarter.
const (
	VerbRestore   = "vm.restore"
	VerbDestroy   = "vm.destroy"
	VerbUnpause   = "vm.unpause"
	VerbColdStart = "vm.coldstart"
	VerbList      = "vm.list"
	// VerbPeek is vm.list without an epoch, and nothing else: since it
	// cannot admit a term or end a self-fence, per-role permissions let an
	// operator send it (xenft status) where every other verb is the
	// supervisors' alone.
	VerbPeek = events.VerbPeek
)

// RestoreRequest asks a host to fetch a checkpoint image from the store into
// its spool, verifying size and checksum on the way, and to restore it
// (`xl restore -p`). ImageKey, Size and SHA256 are the catalog's record of
// the member (checkpointer.Member).
type RestoreRequest struct {
	VM       string `json:"vm"`
	Group    string `json:"group"`
	Seq      uint64 `json:"seq"`
	ImageKey string `json:"image_key"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	// ConfigPath, when set, is an xl configuration on the host to restore
	// under instead of the one stored in the image; its name must be VM.
	ConfigPath string `json:"config_path,omitempty"`
	// Paused leaves the domain paused (the default: a group is unpaused
	// only once every member is restored).
	Paused *bool        `json:"paused,omitempty"`
	Epoch  events.Epoch `json:"epoch"`
}

// WantPaused is Paused with its default, true.
func (r RestoreRequest) WantPaused() bool { return r.Paused == nil || *r.Paused }

// RestoreReply reports a restore.
type RestoreReply struct {
	VM    string `json:"vm"`
	DomID int    `json:"domid"`
	// State is the domain's state afterwards: "paused", or "running" when
	// Paused was false.
	State string `json:"state"`
	// AlreadyRestored: this agent had already restored VM from this
	// checkpoint and that domain still lives; nothing was done (a retry).
	AlreadyRestored bool  `json:"already_restored,omitempty"`
	FetchMs         int64 `json:"fetch_ms"`
	RestoreMs       int64 `json:"restore_ms"`
	TotalMs         int64 `json:"total_ms"`
}

// DestroyRequest asks a host to destroy a domain. The goal is "no copy
// here": a missing domain is success.
type DestroyRequest struct {
	VM    string       `json:"vm"`
	Epoch events.Epoch `json:"epoch"`
}

// DestroyReply says whether there was something to destroy.
type DestroyReply struct {
	Existed bool `json:"existed"`
	DomID   int  `json:"domid,omitempty"`
}

// UnpauseRequest asks a host to unpause a (restored) domain.
type UnpauseRequest struct {
	VM    string       `json:"vm"`
	Epoch events.Epoch `json:"epoch"`
}

// UnpauseReply reports an unpause.
type UnpauseReply struct {
	DomID     int  `json:"domid"`
	WasPaused bool `json:"was_paused"`
}

// ColdStartRequest asks a host to create a domain from its xl
// configuration, whose name must be VM.
type ColdStartRequest struct {
	VM         string       `json:"vm"`
	ConfigPath string       `json:"config_path"`
	Paused     *bool        `json:"paused,omitempty"` // default true
	Epoch      events.Epoch `json:"epoch"`
}

// WantPaused is Paused with its default, true.
func (r ColdStartRequest) WantPaused() bool { return r.Paused == nil || *r.Paused }

// ColdStartReply reports a cold start.
type ColdStartReply struct {
	VM    string `json:"vm"`
	DomID int    `json:"domid"`
	State string `json:"state"`
	// AlreadyStarted: this agent had already cold-started VM and that
	// domain still lives; nothing was done (a retry).
	AlreadyStarted bool  `json:"already_started,omitempty"`
	StartMs        int64 `json:"start_ms"`
}

// ListRequest asks for the host's domains. A zero Epoch is a read-only look
// (an operator's); a leader's epoch is admitted like any command's and, after
// a self-fence, is the reconciliation that lets the host take restores again.
type ListRequest struct {
	Epoch events.Epoch `json:"epoch,omitzero"`
}

// PeekRequest asks for the host's domains, read-only (VerbPeek). Its reply
// is a ListReply.
type PeekRequest struct{}

// ListReply is what runs on the host and whether it is self-fenced.
type ListReply struct {
	Host        string   `json:"host"`
	Incarnation string   `json:"incarnation"`
	Domains     []Domain `json:"domains"`
	Fence       Fence    `json:"fence"`
}

// Domain is one guest domain (Domain-0 is never listed).
type Domain struct {
	Name      string `json:"name"`
	DomID     int    `json:"domid"`
	UUID      string `json:"uuid,omitempty"`
	State     string `json:"state"` // running, blocked, paused, shutdown, crashed, dying
	Flags     string `json:"flags,omitempty"`
	MemoryMiB uint64 `json:"memory_mib"`
	// Progress is the simulated workload's counter (sim driver only).
	Progress uint64 `json:"progress,omitempty"`
}

// Fence is the agent's self-fence state.
type Fence struct {
	// Fenced: the agent self-fenced and is not reconciled yet; it refuses
	// vm.restore, vm.coldstart and vm.unpause and destroys every domain
	// that appears.
	Fenced bool `json:"fenced"`
	// Generation counts the self-fences of this incarnation.
	Generation uint64    `json:"generation"`
	FencedAt   time.Time `json:"fenced_at,omitzero"`
	// RenewedSinceFence: the lease was renewed after the fence; a vm.list
	// with a leader's epoch now reconciles the host.
	RenewedSinceFence bool `json:"renewed_since_fence,omitempty"`
	// LastRenewal is when the newest successful renewal was sent.
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	// LastGrant is when the newest request the leader granted was sent
	// (restarter/grant.go); zero if none was.
	LastGrant time.Time `json:"last_grant,omitzero"`
}

// HostLease is the value an agent renews under key <host> in the
// xenft_hosts bucket every fence.renew_interval. An agent that could not
// renew it for SelfTimeoutMs has destroyed its domains; the KV entry's own
// (server) timestamp is the better clock for that deadline, RenewedAt being
// the agent's.
type HostLease struct {
	Host            string    `json:"host"`
	Incarnation     string    `json:"incarnation"`
	RenewedAt       time.Time `json:"renewed_at"`
	RenewIntervalMs int64     `json:"renew_interval_ms"`
	SelfTimeoutMs   int64     `json:"self_timeout_ms"`
	// FenceGeneration counts the self-fences of this incarnation; it grows
	// when the agent fenced since the previous renewal.
	FenceGeneration uint64 `json:"fence_generation"`
	// AwaitingReconcile: self-fenced and waiting for a vm.list with a
	// leader's epoch before it takes restores again.
	AwaitingReconcile bool `json:"awaiting_reconcile,omitempty"`
	// ObeyedTerm is the newest leader term this agent has obeyed (it keeps
	// it on its own disk): a supervisor takes a term above every one it
	// sees here, even if the bus handed out its revision again.
	ObeyedTerm uint64 `json:"obeyed_term,omitempty"`
}

// GrantSubjectVerb is the supervisor verb (events.Subjects.Supervisor) of
// host lease grants: an agent asks on "hostlease.<host>", and only the
// leading supervisor answers.
const GrantSubjectVerb = "hostlease"

// GrantRequest asks the leading supervisor to count this agent as alive: a
// host lease renewal over core NATS, beside the one in the xenft_hosts
// bucket, that does not wait on a JetStream quorum write.
type GrantRequest struct {
	Host        string `json:"host"`
	Incarnation string `json:"incarnation"`
}

// GrantReply is the leader's answer. Granted means: this leader holds its
// lease, the host is not failed in its state, and it recorded the grant
// before it replied, so that if the host fails later its self-fence
// deadline counts from no earlier than this grant. Reason says why not.
type GrantReply struct {
	Granted bool   `json:"granted"`
	Term    uint64 `json:"term"`
	Reason  string `json:"reason,omitempty"`
}
