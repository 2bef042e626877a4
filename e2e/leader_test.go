//go:build e2e

package e2e

import (
	"slices"
	"testing"

	"github.com/xenft/xenft/events"
)

// A host crashes and the leading supervisor is killed while the restores it
// sent are in flight. The standby takes the lease, loads the state its
// predecessor persisted, sends the outstanding commands again under its own
// term (the agents answer a repeated restore idempotently) and finishes the
// rollback: every member runs once, restarted once.
func TestLeaderKilledMidRestart(t *testing.T) {
	c := newCluster(t, options{})
	cuts := c.checkpointAll()
	from := c.story.mark()
	c.crashHost("n2")
	c.story.waitFor(from, recoveryTimeout,
		on(events.TypeNodeFailed, "n2"), on(events.TypeNodeFenced, "n2"), on(events.TypeVMRestarting, ""))
	first := c.leader()
	if !slices.Contains(supervisors, first) {
		t.Fatalf("leader is %q", first)
	}
	if c.story.has(from, on(events.TypeGroupRolledBack, "mpi")) {
		t.Fatal("the rollback finished before the leader could be killed; the scenario lost its point")
	}
	c.kill(first)
	standby := supervisors[0]
	if standby == first {
		standby = supervisors[1]
	}
	c.story.waitFor(from, recoveryTimeout, on(events.TypeSupervisorLeader, standby))
	c.expectRollback(from, "n2", events.FenceSelf, cuts)
	if l := c.leader(); l != standby {
		t.Errorf("leader after the kill is %q, want %s", l, standby)
	}
}
