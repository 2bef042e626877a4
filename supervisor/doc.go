// Package supervisor decides and drives recovery.
//
// Its core, package supervisor/core, is a pure state machine,
// core.Apply(*core.State, core.Input) -> []core.Action, with no I/O, clock,
// goroutines or logging inside, so every safety rule in DESIGN.md (fence
// before restart, one live copy, consistent group rollback) is tested
// deterministically. Around it the runtime shell holds the leader lease,
// consumes node events durably, executes actions with retries and timeouts, and
// records state in JetStream key-value buckets so a new leader resumes in-flight
// operations. The supervisor never imports xen: it acts on hosts only through
// commands to their agents.
//
// An input the core refuses (an unknown host, VM or group, a stale epoch, a
// malformed event) changes nothing; the shell counts it by reason in the bus's
// events.IgnoredInputs (Supervisor.Ignored) and logs it at most once per
// reason every events.IgnoreLogEvery (ignored.go).
package supervisor
