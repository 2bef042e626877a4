package core

import "testing"

// Each test proves one rule of DESIGN.md ("Safety first", "Reactive restart")
// and issue 6, mostly by a scenario script in testdata whose comments say what
// it shows.

// TestRule_WholeGroupRollback: a lost member rolls its whole group back to the
// latest committed checkpoint; members on healthy hosts are destroyed and
// restored too; the group is unpaused only when every member is restored.
func TestRule_WholeGroupRollback(t *testing.T) { runScript(t, "group_rollback.txt") }

// TestRule_FenceBeforeRestart: no restore of a failed host's VM before the
// fence command succeeded or the self-fence deadline passed (by tick time).
func TestRule_FenceBeforeRestart(t *testing.T) { runScript(t, "fence_before_restart.txt") }

// TestRule_OneLiveCopy_RenewingLeaseHoldsTheSelfFenceDeadline: a host failed
// by silence whose agent still renews its fence lease has not fenced itself;
// its deadline counts from the newest renewal, and from the agent's own
// self-timeout when that is longer than the policy's.
func TestRule_OneLiveCopy_RenewingLeaseHoldsTheSelfFenceDeadline(t *testing.T) {
	runScript(t, "lease_holds_self_fence.txt")
}

// TestRule_OneLiveCopy_SilentHostKeepsARestoredVM: a host that rejoins after
// a silence keeps a VM just restored there that its first, older, domain
// list does not show; it is lost only if later beats confirm it is gone.
func TestRule_OneLiveCopy_SilentHostKeepsARestoredVM(t *testing.T) {
	runScript(t, "silent_host_keeps_restored_vm.txt")
}

// TestRule_FenceBeforeRestart_FatalFault: a host failed by a fatal fault report
// while it beats is fenced by its agent (node.fenced, method agent) once every
// copy there is confirmed destroyed, before any of its VMs is restored; it
// stays fenced until the fault is cleared (fault.go, fault_test.go).
func TestRule_FenceBeforeRestart_FatalFault(t *testing.T) { runScript(t, "fence_fault.txt") }

// TestRule_VMFailedOnHealthyHost: vm.failed rolls the VM's group back without
// fencing its host.
func TestRule_VMFailedOnHealthyHost(t *testing.T) { runScript(t, "vm_failed.txt") }

// TestRule_Placement: healthy hosts only, free memory net of placements
// decided, spread, priority order, max_concurrent_restores.
func TestRule_Placement(t *testing.T) { runScript(t, "placement.txt") }

// TestRule_Placement_WaitsForRoom: no host with room means waiting, not
// failing; more room lets the VM go.
func TestRule_Placement_WaitsForRoom(t *testing.T) { runScript(t, "placement_room.txt") }

// TestRule_RestoreRetryThenReplace: backoff retries on one host, then
// another host after restore_attempts_per_host failures or a permanent error.
func TestRule_RestoreRetryThenReplace(t *testing.T) { runScript(t, "restore_retry.txt") }

// TestRule_RestoreAttemptsExhausted: max_attempts failures make the VM and
// its group unrecoverable; an operator restart starts afresh.
func TestRule_RestoreAttemptsExhausted(t *testing.T) { runScript(t, "restore_exhausted.txt") }

// TestRule_CorruptImageFallsBack: an image that fails verification moves the
// whole group to the previous committed checkpoint.
func TestRule_CorruptImageFallsBack(t *testing.T) { runScript(t, "corrupt_image.txt") }

// TestRule_ColdStartOrUnrecoverable: no checkpoint: cold start when policy
// allows, else vm.unrecoverable; policy none is never restarted.
func TestRule_ColdStartOrUnrecoverable(t *testing.T) { runScript(t, "cold_start.txt") }

// TestRule_StormGuard: more than max_failed_fraction of hosts failing within
// storm_window pauses restarts, publishes why, and resumes when enough hosts
// are back; rollbacks that sent nothing are abandoned when their hosts return
// with their domains.
func TestRule_StormGuard(t *testing.T) { runScript(t, "storm.txt") }

// TestRule_StormGuard_OperatorResume: an operator resumes; old failures no
// longer count; max_concurrent_restores still holds.
func TestRule_StormGuard_OperatorResume(t *testing.T) { runScript(t, "storm_resume.txt") }

// TestRule_Flapping: more than flap_threshold failures within flap_window
// quarantine a host until released; a quarantined host is a last resort for
// placement, never a reason to leave a VM down.
func TestRule_Flapping(t *testing.T) { runScript(t, "flapping.txt") }

// TestRule_ReturningHostDestroysStaleCopies: a host back from a partition
// destroys every domain that now runs elsewhere before it gets work.
func TestRule_ReturningHostDestroysStaleCopies(t *testing.T) { runScript(t, "partition_return.txt") }

// TestRule_ReturningHostNewIncarnation: a restarted host's domain list proves
// its old copies gone.
func TestRule_ReturningHostNewIncarnation(t *testing.T) { runScript(t, "restart_incarnation.txt") }

// TestRule_LeaderChangeMidRollback: a new leader resumes persisted state and
// re-sends in-flight commands with new epochs exactly once; the old term's
// answers are stale.
func TestRule_LeaderChangeMidRollback(t *testing.T) { runScript(t, "leader_change.txt") }

// TestRule_StaleResultsIgnored: only the latest send of an awaited operation
// is answered; everything else is ErrStale (or ErrInvalid/ErrUnknownVM).
func TestRule_StaleResultsIgnored(t *testing.T) { runScript(t, "stale_results.txt") }

// TestOperator_MaintenanceDrainMove: maintenance drains through a fresh
// checkpoint; a move pins the VM; maintenance off cancels pending drains.
func TestOperator_MaintenanceDrainMove(t *testing.T) { runScript(t, "maintenance.txt") }

// TestRule_VMVanishedFromBeats: a VM its host's beats stop listing is lost,
// even without a vm.failed report.
func TestRule_VMVanishedFromBeats(t *testing.T) { runScript(t, "vm_vanished.txt") }

// TestRule_ReturningHostBeforeFence_AbandonsRollback: a rollback that sent
// nothing is abandoned when the lost member's host returns with its copy.
func TestRule_ReturningHostBeforeFence_AbandonsRollback(t *testing.T) {
	runScript(t, "partition_abandon.txt")
}

// TestRefusalsByAnUnreconciledHostDoNotUseUpRestoreAttempts: a restore
// refused because its host fenced itself and awaits reconciliation
// (OutcomeHostNotReady) is no attempt of the VM's and does not count the host
// out for it; the VM is placed again, the host held out with a backoff, and
// max_attempts never runs out on such refusals (ready.go).
func TestRefusalsByAnUnreconciledHostDoNotUseUpRestoreAttempts(t *testing.T) {
	runScript(t, "unreconciled_refusals.txt")
}

// TestHostAwaitingReconcileGetsNoRestores: a host whose lease says it awaits
// reconciliation is held out of placement, briefly after each renewal and
// for at most backoff_cap in all; a renewal that no longer awaits lets it
// take work at once (ready.go).
func TestHostAwaitingReconcileGetsNoRestores(t *testing.T) {
	runScript(t, "unreconciled_lease.txt")
}

// TestUnpauseRefusedByAnUnreconciledHostRestartsTheRollback: an unpause
// refused because the host fenced itself since the restore rolls the group
// back again at once, elsewhere, without counting an attempt of the VM's.
func TestUnpauseRefusedByAnUnreconciledHostRestartsTheRollback(t *testing.T) {
	runScript(t, "unreconciled_unpause.txt")
}

// TestRule_OneLiveCopy_UnarmedAgentIsNotSelfFenced: a host whose agent had no
// lease renewal acknowledged since it started does not fence itself, so a
// deadline never counts it as fenced; a renewal by the incarnation that
// beats arms it, and its deadline counts from that renewal.
func TestRule_OneLiveCopy_UnarmedAgentIsNotSelfFenced(t *testing.T) {
	runScript(t, "unarmed_self_fence.txt")
}

func TestRule_OneLiveCopy_UncheckpointedVMIsNotGivenUpBeforeItsHostIsFenced(t *testing.T) {
	runScript(t, "uncheckpointed_host_returns.txt")
}
