//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/xenft/xenft/events"
)

// The agent of a host dies (SIGKILL) but the host and its domains keep
// running, and a new agent starts at once, as systemd restarts it. The new
// agent beats with a new incarnation and reports the domains it finds; the
// supervisor must take the host back with its domains, never restart them
// elsewhere: a second copy would corrupt their disks.
func TestAgentCrashAgentBackAtOnceKeepsItsHost(t *testing.T) {
	c := newCluster(t, options{})
	c.checkpointAll()
	from := c.story.mark()
	c.kill("n1")
	c.startAgent("n1")
	c.logf("agent n1 started again; its domains never stopped")
	c.story.waitFor(from, recoveryTimeout, on(events.TypeNodeRecovered, "n1").where("new incarnation",
		func(d eventData) bool { return d.NewIncarnation }))
	// Long enough for any decision to have been taken: past the self-fence
	// deadline a restart elsewhere would have begun.
	running := c.runsExactlyOnce(vmNames(), c.opts.fencing.deadline()+5*time.Second, recoveryTimeout)
	c.untouched(running, vmNames()...)
	for _, v := range workload {
		if running[v.name].host != v.host {
			t.Errorf("%s runs on %s, not on %s where it ran before", v.name, running[v.name].host, v.host)
		}
	}
	for _, vm := range vmNames() {
		c.story.never(from, on(events.TypeVMRestarting, vm))
	}
	c.story.never(from, on(events.TypeNodeFenced, ""))
}

// The agent of a host dies and stays dead while its domains keep running:
// only a fence command can make a restart elsewhere safe (docs/fencing.md).
// The supervisors' fence command powers the host off (the fake xl's
// sim-poweroff); node.fenced by command comes before any restore, and the
// groups roll back once. When the host is powered on again, its new agent
// finds nothing running and rejoins without taking anything back.
func TestAgentCrashDeadAgentIsFencedBeforeRestart(t *testing.T) {
	c := newCluster(t, options{fenceCommand: true})
	cuts := c.checkpointAll()
	from := c.story.mark()
	c.kill("n1")
	c.expectRollback(from, "n1", events.FenceCommand, cuts)

	back := c.story.mark()
	c.startAgent("n1")
	c.logf("host n1 powered on again: a new agent, no domains")
	c.story.waitFor(back, recoveryTimeout, on(events.TypeNodeRecovered, "n1"))
	c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	c.story.restartedOnce(from, vmNames()...)
}
