package core

import "errors"

// Errors of Apply, matched with errors.Is; each is wrapped with the host, VM,
// group or epoch concerned. An error means the input was ignored: the state
// is unchanged and there are no actions. None asks for a retry: the shell
// logs it, counts it and acknowledges the input.
var (
	// ErrInvalid: the input is malformed (empty name, unknown kind, bad
	// policy, negative memory...).
	ErrInvalid = errors.New("invalid input")
	// ErrUnknownHost, ErrUnknownVM, ErrUnknownGroup: the input names what
	// the state does not know (never heard of, or unregistered since).
	ErrUnknownHost  = errors.New("unknown host")
	ErrUnknownVM    = errors.New("unknown VM")
	ErrUnknownGroup = errors.New("unknown group")
	// ErrStale: the input answers a command that is no longer awaited (its
	// epoch was superseded by a retry or a new leader, or the operation was
	// cancelled), or reports on a copy the state no longer believes in.
	ErrStale = errors.New("stale input")
	// ErrStaleTerm: a Leader input whose term is not newer than the state's.
	ErrStaleTerm = errors.New("leader term is not newer")
	// ErrBusy: an operator request conflicts with a recovery in progress.
	ErrBusy = errors.New("busy")
)
