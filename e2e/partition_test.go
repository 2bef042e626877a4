//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"github.com/xenft/xenft/events"
)

// The network link of host n1 is cut (its agent runs in a network
// namespace; the test takes the veth link down). The agent can no longer
// renew its lease: it must fence itself, destroying its domains within the
// self-fence timeout, while the detectors declare it failed and the
// supervisor, after the self-fence deadline, restores its groups on the
// other hosts. When the link comes back, the agent stays fenced until the
// leader has listed its (empty) host; it rejoins, reports the VMs its fence
// killed, and nothing is restarted a second time.
func TestPartitionedAgentFencesItselfAndRejoins(t *testing.T) {
	c := newCluster(t, options{partitionable: "n1"})
	cuts := c.checkpointAll()
	from := c.story.mark()
	c.link.cut(t)
	c.expectRollback(from, "n1", events.FenceSelf, cuts)
	if p := c.proc("n1"); p.exited() {
		t.Fatalf("agent n1 exited while cut off (%v); it should have fenced itself and waited", p.err)
	}
	// The agent's fence was done before anything of its host was restored
	// elsewhere: that is what made waiting for the deadline safe. (Both
	// clocks are this machine's.)
	fenced, ok := c.logTime("n1", "SELF-FENCE done")
	if !ok {
		t.Fatal("agent n1 did not log that its self-fence was done")
	}
	if late, _ := c.logTime("n1", "SELF-FENCE is late"); !late.IsZero() {
		t.Errorf("agent n1 fenced itself late (at %s)", late.Format("15:04:05.000"))
	}
	for _, ev := range c.story.since(from) {
		if ev.Type == events.TypeVMRestarting && !fenced.Before(ev.Time) {
			t.Errorf("%s at %s, before n1 had fenced itself at %s", ev.Subject, ev.Time.Format("15:04:05.000"), fenced.Format("15:04:05.000"))
		}
	}
	c.logf("n1 fenced itself at +%.1fs", fenced.Sub(c.started).Seconds())

	healed := c.story.mark()
	c.link.heal(t)
	c.story.waitFor(healed, recoveryTimeout, on(events.TypeNodeRecovered, "n1"))
	// Its fence ends only once the leader has listed its empty host; then
	// it reports the VMs it killed, which must not restart them again.
	c.eventually(recoveryTimeout, func() bool {
		l, ok := c.hostLease("n1")
		return ok && l.FenceGeneration > 0 && !l.AwaitingReconcile
	}, says("n1's self-fence did not end after the link came back"))
	selfFenced := func(d eventData) bool { return d.Host == "n1" && strings.Contains(d.Reason, "self-fenced") }
	for _, vm := range []string{"mpi-0", "web"} {
		c.story.waitFor(healed, recoveryTimeout, on(events.TypeVMFailed, vm).where("self-fenced on n1", selfFenced))
	}
	c.logf("n1 is back and reconciled")
	c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	c.story.restartedOnce(from, vmNames()...)
}
