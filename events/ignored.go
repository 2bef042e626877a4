package events

import (
	"maps"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Reasons an input from the bus is ignored, the labels of IgnoredInputs.
// docs/operations.md says which component counts which, and why.
const (
	// IgnoredUnknownHost, IgnoredUnknownVM, IgnoredUnknownGroup: the input
	// names a host, VM or group the receiver does not know (never heard
	// of, a typo, or removed since).
	IgnoredUnknownHost  = "unknown_host"
	IgnoredUnknownVM    = "unknown_vm"
	IgnoredUnknownGroup = "unknown_group"
	// IgnoredStaleEpoch: the input comes from an authority that has been
	// replaced: a command of an older leader term, the answer to a
	// command epoch a retry or a new leader superseded, a beat of an agent
	// incarnation that has restarted since.
	IgnoredStaleEpoch = "stale_epoch"
	// IgnoredStale: a report about a state that has moved on: vm.failed of
	// a copy the supervisor no longer believes in, a probe reply that came
	// after probe_timeout or says nothing of the incarnation watched now.
	IgnoredStale = "stale"
	// IgnoredDuplicate: seen already: a heartbeat whose sequence number is
	// not above the host's latest.
	IgnoredDuplicate = "duplicate"
	// IgnoredInvalidEvent: an event that fails Decode (size, JSON, type,
	// schema, subject) or whose content the supervisor finds malformed.
	IgnoredInvalidEvent = "invalid_event"
	// IgnoredInvalidHeartbeat: a heartbeat or probe reply that does not
	// decode, or that speaks for another host than its subject's.
	IgnoredInvalidHeartbeat = "invalid_heartbeat"
	// IgnoredInvalidRequest: a command to an agent with an unknown verb, a
	// body that is not JSON, or one its handler refused as bad_request.
	IgnoredInvalidRequest = "invalid_request"
	// IgnoredInvalidInput: anything else the supervisor's core found
	// malformed (a VM registration, a command result).
	IgnoredInvalidInput = "invalid_input"
	// IgnoredUntrustedSource: an event whose publisher may not tell it
	// (its role, or supervisor.trusted_sources); the supervisor also
	// publishes supervisor.input_rejected.
	IgnoredUntrustedSource = "untrusted_source"
)

// IgnoreLogEvery is how often, at most, IgnoredInputs logs a line per
// reason: a flood of garbage costs one line per reason per interval, and
// the line after a quiet spell says how many were not logged.
const IgnoreLogEvery = 10 * time.Second

// IgnoredInputs counts inputs ignored by reason and logs them, rate-limited
// per reason (IgnoreLogEvery). The zero value is ready; it is safe for
// concurrent use. A Bus has one (Bus.Ignored) that its consumers, tails and
// command server use, and the roles built on a Bus count into it too, so one
// process role has one set of counters.
type IgnoredInputs struct {
	mu     sync.Mutex
	counts map[string]uint64
	lines  map[string]*ignoreLine
	every  time.Duration    // 0: IgnoreLogEvery
	now    func() time.Time // nil: the wall clock (clock.go)
}

type ignoreLine struct {
	last       time.Time
	suppressed uint64
}

// SetLogInterval changes how often a line per reason is logged at most (d
// <= 0 restores IgnoreLogEvery). Tests set it long, so that a burst is
// always inside one interval however slow the machine.
func (ig *IgnoredInputs) SetLogInterval(d time.Duration) {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	ig.every = d
}

// Inc counts one input ignored for reason, without logging, and returns
// the reason's total.
func (ig *IgnoredInputs) Inc(reason string) uint64 {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	return ig.inc(reason)
}

func (ig *IgnoredInputs) inc(reason string) uint64 {
	if ig.counts == nil {
		ig.counts = map[string]uint64{}
	}
	ig.counts[reason]++
	return ig.counts[reason]
}

// Ignore counts one input ignored for reason and logs it on log: "ignored
// input" with reason, input (what it was: "node.fault", "heartbeat",
// "command") and args (which host, VM, verb, event id, the error), then the
// reason's total and how many were not logged since its last line. Within the log interval of that line it only counts. Unknown
// names and invalid inputs are warnings; stale and duplicate inputs, the
// ordinary aftermath of a failover or a network that repeats itself, are
// info.
func (ig *IgnoredInputs) Ignore(log hclog.Logger, reason, input string, args ...any) {
	now := wall.Now
	ig.mu.Lock()
	total := ig.inc(reason)
	if ig.now != nil {
		now = ig.now
	}
	every := ig.every
	if every <= 0 {
		every = IgnoreLogEvery
	}
	if ig.lines == nil {
		ig.lines = map[string]*ignoreLine{}
	}
	l := ig.lines[reason]
	if l == nil {
		l = &ignoreLine{}
		ig.lines[reason] = l
	}
	t := now()
	if !l.last.IsZero() && t.Sub(l.last) < every {
		l.suppressed++
		ig.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = t, 0
	ig.mu.Unlock()
	if log == nil {
		return
	}
	kv := make([]any, 0, len(args)+8)
	kv = append(kv, "reason", reason, "input", input)
	kv = append(kv, args...)
	kv = append(kv, "total", total, "suppressed_since_last", suppressed)
	switch reason {
	case IgnoredStaleEpoch, IgnoredStale, IgnoredDuplicate:
		log.Info("ignored input", kv...)
	default:
		log.Warn("ignored input", kv...)
	}
}

// Snapshot returns the counts so far by reason; reasons never seen are
// absent. The map is the caller's.
func (ig *IgnoredInputs) Snapshot() map[string]uint64 {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	out := make(map[string]uint64, len(ig.counts))
	maps.Copy(out, ig.counts)
	return out
}

// Total is the number of inputs ignored, whatever the reason.
func (ig *IgnoredInputs) Total() uint64 {
	ig.mu.Lock()
	defer ig.mu.Unlock()
	var n uint64
	for _, c := range ig.counts {
		n += c
	}
	return n
}
