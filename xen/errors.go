package xen

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, matched with errors.Is. Every error a driver returns wraps
// at most one of them together with the verb and the domain it concerns.
var (
	// ErrDomainNotFound: no domain of that name or id on this host.
	ErrDomainNotFound = errors.New("domain not found")
	// ErrDomainExists: a domain of that name already runs on this host.
	ErrDomainExists = errors.New("domain already exists")
	// ErrTimeout: the call's context expired; the xl child was killed. Such
	// an error also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("toolstack timed out")
	// ErrBadImage: a save image is missing, truncated, corrupt or not an
	// image at all. The supervisor falls back to an older checkpoint on it.
	ErrBadImage = errors.New("bad save image")
	// ErrNoMemory: the host has too little free memory for the domain.
	ErrNoMemory = errors.New("not enough free memory")
	// ErrGuestUnresponsive: the guest did not acknowledge the suspend request
	// a save sends it; the domain keeps running and no usable image exists.
	// A paused PV guest can never answer (seen on Xen 4.17: xl waits 60 s
	// and fails), so a checkpoint must not pause before it saves: `xl save
	// -p` suspends the guest and leaves it paused by itself.
	ErrGuestUnresponsive = errors.New("guest did not acknowledge the suspend request")
	// ErrDomainNotAlive: the domain is shut down, crashed, dying or left
	// suspended by an interrupted save; pause and unpause cannot make it run.
	// It must be destroyed (and restored from a checkpoint).
	ErrDomainNotAlive = errors.New("domain is not alive")
	// ErrBadArgument: a domain name or path xl would misread (empty, or
	// starting with '-', which xl's option parser would take for a flag).
	ErrBadArgument = errors.New("bad argument")
)

// ToolstackError is a failed xl invocation: which verb on which domain, how
// the process ended and what it said. Kind is one of the sentinel errors
// above when the failure was recognised, and Cause is an underlying error
// (context.DeadlineExceeded, an exec error); both take part in errors.Is.
type ToolstackError struct {
	Verb     string   // xl subcommand: "save", "restore", ...
	Domain   string   // the domain, config or image the call was about
	Args     []string // full argument list, for logs
	ExitCode int      // -1 when the process did not exit by itself
	Stderr   string   // what xl printed on stderr (capped)
	Kind     error
	Cause    error
}

func (e *ToolstackError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "xl %s", e.Verb)
	if e.Domain != "" {
		fmt.Fprintf(&b, " %s", e.Domain)
	}
	switch {
	case e.Kind != nil && e.Cause != nil:
		fmt.Fprintf(&b, ": %v: %v", e.Kind, e.Cause)
	case e.Kind != nil:
		fmt.Fprintf(&b, ": %v", e.Kind)
	case e.Cause != nil:
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " (exit status %d)", e.ExitCode)
	}
	if msg := lastLines(e.Stderr, 3); msg != "" {
		fmt.Fprintf(&b, ": %s", msg)
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see both Kind and Cause.
func (e *ToolstackError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// lastLines keeps the tail of xl's chatter: its last lines say what failed,
// while the first ones are progress ("Saving to ...").
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			keep = append(keep, l)
		}
	}
	for i, j := 0, len(keep)-1; i < j; i, j = i+1, j-1 {
		keep[i], keep[j] = keep[j], keep[i]
	}
	return strings.Join(keep, " | ")
}
