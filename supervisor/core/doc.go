// Package core is the supervisor's decision core: a pure state machine that
// decides fencing, group rollback, placement and restart (DESIGN.md "Safety
// first", "Reactive restart", "The decision core").
//
// # Contract
//
//	actions, err := core.Apply(state, input)
//
// Apply takes one Input (a node event, a heartbeat summary, a checkpoint of
// the catalog, a command's Result, an operator request, a Tick, a Leader
// change) and returns the Actions it calls for: commands to agents (FenceHost,
// DestroyVM, RestoreVM, ColdStartVM, UnpauseVM), a request to the checkpoint
// coordinator (CheckpointGroup), and events to publish (Publish). It does no
// I/O, reads no clock (time arrives in the inputs' At), uses no randomness,
// starts no goroutine and does not log; it imports no other package of the
// project, nor nats, net, os or os/exec (deps_test.go enforces it). The same
// state and input always give the same state and actions.
//
// # Ownership: a State is updated in place
//
// Apply mutates *State and returns no new one. A copy-on-write State would
// copy maps of thousands of VMs on every input (Clone of a 1,000-host,
// 10,000-VM state costs milliseconds, BenchmarkClone), for no benefit: the
// shell calls Apply from the one goroutine that owns the state, as etcd/raft's
// node.run owns its RawNode. Clone gives a copy that shares nothing, for a
// status snapshot or a test. When Apply returns an error the input was ignored
// and the state is untouched; errors (ErrInvalid, ErrUnknownHost, ErrStale,
// ...) never ask for a retry.
//
// # Persistence and a new leader
//
// The shell persists after every Apply, before it executes the actions:
// TakeChanges names the hosts, VMs and groups that changed (one KV key each)
// and whether Meta changed; or it may store the whole State as one JSON
// document while it is small. Every field is exported and JSON-tagged;
// unexported fields are derived and rebuilt. A new leader loads the state,
// runs Check, applies SetPolicy with its configuration and then Leader with
// its (higher) term: every command in flight is sent again with an epoch of
// the new term, exactly once (the same term again is refused), and answers to
// the old epochs are stale. An action executed but not persisted can thus be
// executed twice; one persisted but not executed is sent again. The agents
// make this safe: every command is idempotent (restoring a VM already restored
// there from the same checkpoint succeeds, destroying a missing domain
// succeeds) and an agent refuses a command whose term is older than one it has
// obeyed, or whose epoch is older than one it has obeyed for the same VM (a
// late destroy must not kill the restore that followed it). Requests to an
// agent that restarted are lost, not replayed (NATS request/reply), so a new
// agent process starting with no memory of epochs is safe.
//
// Until the first Leader input (Term 0) Apply updates the state and returns
// no actions: a supervisor that does not lead plans but is not heard.
//
// # What the shell feeds, and how
//
//   - node.suspect, node.failed, node.recovered, node.fault -> NodeSuspect,
//     NodeFailed, NodeRecovered, NodeFault;
//   - heartbeats -> HostBeat, every beat or a summary every second or two,
//     and always well within fence_self_timeout: a host whose beats stop for
//     that long may have fenced itself, so its next beat makes it rejoin (no
//     work until its domain list was reconciled). The domain list also makes
//     a host destroy copies that run elsewhere, and shows VMs that vanished
//     without a vm.failed report;
//   - agents' lease renewals -> HostLeaseRenewed (with awaiting_reconcile),
//     about every second per host, and at once when awaiting_reconcile
//     changes;
//   - vm.failed from agents -> VMFailed; the VM inventory -> VMRegistered,
//     VMUnregistered; the checkpoint catalog and checkpoint.committed/deleted
//     -> CheckpointCommitted, CheckpointDeleted;
//   - every command's outcome -> Result (ResultOf(command, now, outcome, msg);
//     see Outcome for the mapping of agents' error codes); a command must be
//     answered once, a timeout being OutcomeRetryable;
//   - Tick at least every second while leading: retries and self-fence
//     deadlines fire on ticks;
//   - operator requests -> Maintenance, MoveVM, RestartVM, ReleaseQuarantine,
//     ResumeRestarts.
//
// The shell's clock stamps every input (At). Self-fence deadlines are
// computed from the last beat; FenceMargin absorbs the skew between the
// clocks involved. The self-fence rule assumes that an agent that cannot renew
// its liveness on the bus destroys its domains within fence_self_timeout; a
// shell that can also see the agent's liveness key expire may wait for that
// before feeding the Tick that passes the deadline.
//
// # Rules, where they live
//
//   - fence before restart (hostfail.go, rollback.go stepStopping): a copy on a
//     failed host is gone only when the host is fenced (fence command OK, or,
//     for a silent host, the self-fence deadline passed, or, after a fatal
//     fault, its agent confirmed every copy there destroyed); a RestoreVM is
//     sent only for a VM with no copy believed anywhere (State.Check
//     verifies it);
//   - a fatal node.fault (fault.go): the host is failed and fenced by its own
//     agent first, by the fence command if the agent cannot confirm, by its
//     self-fence deadline once silent; it stays failed or fenced until the
//     fault is cleared; moveBeforeFence is where live moves will go first;
//   - a VM failed on a healthy host rolls its group back without fencing
//     (vms.go onVMFailed);
//   - whole-group rollback to the latest usable committed checkpoint, unpause
//     only when all are restored from it (rollback.go); members on healthy
//     hosts are destroyed once the lost members' hosts are fenced, so that a
//     host that returns with its copy before that lets the rollback be
//     abandoned with nothing lost;
//   - placement (placement.go); retries with capped exponential backoff and
//     re-placement (results.go); fallback past a corrupt image, cold start,
//     unrecoverable (rollback.go retarget, startRollback); a VM with no
//     usable checkpoint on a failed host is reported unrecoverable only once
//     its host is fenced: a host that returns before still runs it
//     (uncheckpointed_host_returns.txt);
//   - a host whose agent fenced itself and awaits reconciliation: its
//     refusals (OutcomeHostNotReady) are no attempts of the VM's, and it
//     gets no work while it refuses or its lease says it awaits (ready.go);
//   - storm guard (storm.go), flapping (hostfail.go flap; a quarantined host
//     is placement's last resort, placement.go candidates), returning hosts
//     (hostrejoin.go rejoin, sync, checkDomain), VMs vanished from beats
//     (hostrejoin.go missing), epochs (commands.go, results.go, apply.go
//     onLeader).
//
// Each rule has a scenario script in testdata/ run by a TestRule_* test, and
// property_test.go drives random failures, partitions, results and leader
// changes against a simulated cluster, checking after every step that no VM
// ever has two live copies.
package core
