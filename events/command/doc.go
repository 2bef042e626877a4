// Package command is the protocol of xenft's commands: a sender (the
// supervisor, or its checkpoint coordinator) asks one host's agent to act and
// waits for the answer. Nothing is kept; results that matter become events.
//
// # On the wire
//
// A command is a NATS request on <prefix>.cmd.<host>.<verb> (verbs such as
// vm.restore or checkpoint.capture). Its body is the verb's request as JSON;
// the agent answers on the request's reply subject with the envelope Reply:
//
//	{"result": <the verb's reply as JSON>}
//	{"error": {"code": "<code>", "message": "<why>"}}
//
// A success may carry no result. The error also carries keys Host and Verb,
// empty on the wire: the sender knows them from the subject and fills them in. Answer builds the envelope at the agent,
// Decode reads it at the sender, where the error comes back as an *Error
// naming the host and verb. The transport (subjects, timeouts, the
// subscription that runs handlers) is package events: Bus.ServeCommands and
// Bus.Command.
//
// # What a code tells the sender
//
// A failed command is an *Error whose Code decides whether to try again:
//
//	retryable    try again, maybe elsewhere: the toolstack was busy, a call
//	             timed out, the store was unreachable, or no answer came at
//	             all (no agent, a slow one, a connection that dropped).
//	not_ready    the host takes no command of this kind for now, whatever it
//	             asks (a self-fenced agent awaiting the leader's
//	             reconciliation): try again later, elsewhere meanwhile; it
//	             says nothing of the request.
//	permanent    this request will not succeed here; a handler's plain error,
//	             a panic and an undecodable reply are permanent too.
//	stale_epoch  the agent obeyed a newer leader epoch: the sender lost the
//	             leadership and must stop.
//	not_found    the domain or image does not exist.
//	corrupt      an image failed verification.
//	bad_request  the request could not be decoded, or its verb is unknown.
//
// Error.Retryable is true for retryable and not_ready. Commands are
// idempotent, so sending one again after an answer was lost is safe.
//
// # Concurrency
//
// The package holds no state: a Handler is called concurrently, once per
// command (Bus.ServeCommands runs each in its own goroutine), and must be
// safe for that; Answer, Decode and Typed are safe from any goroutine.
//
// This package imports nothing of the project (deps_test.go): package
// events and every agent and supervisor package import it.
package command
