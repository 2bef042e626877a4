package restarter

import "github.com/xenft/xenft/restarter/protocol"

// The restarter's verbs and messages are defined in package protocol, which
// the supervisor imports (it may not import this package: it drives xen).
// These aliases let agent-side code and tests say restarter.RestoreRequest.
const (
	VerbRestore   = protocol.VerbRestore
	VerbDestroy   = protocol.VerbDestroy
	VerbUnpause   = protocol.VerbUnpause
	VerbColdStart = protocol.VerbColdStart
	VerbList      = protocol.VerbList
	VerbPeek      = protocol.VerbPeek
)

type (
	RestoreRequest   = protocol.RestoreRequest
	RestoreReply     = protocol.RestoreReply
	DestroyRequest   = protocol.DestroyRequest
	DestroyReply     = protocol.DestroyReply
	UnpauseRequest   = protocol.UnpauseRequest
	UnpauseReply     = protocol.UnpauseReply
	ColdStartRequest = protocol.ColdStartRequest
	ColdStartReply   = protocol.ColdStartReply
	ListRequest      = protocol.ListRequest
	ListReply        = protocol.ListReply
	PeekRequest      = protocol.PeekRequest
	Domain           = protocol.Domain
	Fence            = protocol.Fence
	HostLease        = protocol.HostLease
	GrantRequest     = protocol.GrantRequest
	GrantReply       = protocol.GrantReply
)
