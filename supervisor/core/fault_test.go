package core

import "testing"

// The fatal fault on a beating host, one story (issue 12, DESIGN "Safety
// first": fence first, one live copy): see fault.go.

// TestRule_FenceBeforeRestart_FatalFaultAgentFails: an agent that cannot
// confirm its copies destroyed (no answer, a refusal) leaves its host to the
// fence command, or to its self-fence deadline once it goes silent, and
// supervisor.fence_failed says which; a late confirmation still fences it.
func TestRule_FenceBeforeRestart_FatalFaultAgentFails(t *testing.T) {
	runScript(t, "fence_fault_agent_fails.txt")
}

// TestRule_FatalFaultClearedOrStorm: a fatal fault cleared before the host
// was fenced calls the agent's fence off and the host rejoins with its next
// beat; while restarts are paused by the storm guard no agent is told to
// destroy anything.
func TestRule_FatalFaultClearedOrStorm(t *testing.T) { runScript(t, "fence_fault_cleared.txt") }

// TestRule_FatalFaultSilentHostReturns: a host failed by silence, then by a
// fatal fault, that beats again loses its self-fence deadline and is fenced
// by its agent, held failed by the fault.
func TestRule_FatalFaultSilentHostReturns(t *testing.T) {
	runScript(t, "fence_fault_silent_return.txt")
}
