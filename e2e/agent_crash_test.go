//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/xenft/xenft/events"
)

// The agent of a host dies (SIGKILL) but the host and its domains keep
// running, and a new agent starts, as systemd restarts it: first at once,
// then again only after the detectors have declared the host failed (but
// before its self-fence deadline). The new agent beats with a new
// incarnation and reports the domains it finds; the supervisor must take
// the host back with its domains (abandoning the rollback it had begun),
// never restart them elsewhere: a second copy would corrupt their disks.
func TestAgentCrashAgentBackKeepsItsHost(t *testing.T) {
	c := newCluster(t, options{})
	c.checkpointAll()
	from := c.story.mark()
	c.kill("n1")
	c.startAgent("n1")
	c.logf("agent n1 started again at once; its domains never stopped")
	c.story.waitFor(from, recoveryTimeout, newIncarnation("n1"))
	c.keptWhereTheyRan(from)

	from = c.story.mark()
	c.kill("n1")
	c.story.waitFor(from, recoveryTimeout, on(events.TypeNodeFailed, "n1"))
	c.startAgent("n1")
	c.logf("agent n1 started again after n1 was declared failed")
	c.story.waitFor(from, recoveryTimeout, on(events.TypeNodeFailed, "n1"), newIncarnation("n1"))
	c.keptWhereTheyRan(from)
}

func newIncarnation(host string) step {
	return on(events.TypeNodeRecovered, host).where("new incarnation", func(d eventData) bool { return d.NewIncarnation })
}

// keptWhereTheyRan checks that every VM still runs, once, the domain it was
// created as, where it was created, past the point where a restart
// elsewhere would have begun, and that nothing was restarted or fenced.
func (c *cluster) keptWhereTheyRan(from int) {
	c.t.Helper()
	running := c.runsExactlyOnce(vmNames(), c.opts.fencing.deadline()+5*time.Second, recoveryTimeout)
	c.untouched(running, vmNames()...)
	for _, v := range workload {
		if running[v.name].host != v.host {
			c.t.Errorf("%s runs on %s, not on %s where it ran before", v.name, running[v.name].host, v.host)
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
