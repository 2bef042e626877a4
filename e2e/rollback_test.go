//go:build e2e

package e2e

import (
	"slices"
	"time"

	"github.com/xenft/xenft/events"
)

// Deadlines, generous for a loaded 2-core machine: detection takes a few
// seconds and the self-fence deadline is 10 s after the last beat.
const (
	recoveryTimeout = 90 * time.Second // fault to every VM running again
	stableFor       = 3 * time.Second  // how long "exactly once" must hold
)

// checkpointAll takes a checkpoint of every group, waits until every VM
// has run well past it, and returns each group's latest verified
// checkpoint, which must be the one just taken.
func (c *cluster) checkpointAll() map[string]cut {
	c.t.Helper()
	cuts := map[string]cut{}
	for _, g := range groups {
		rec := c.checkpoint(g)
		ck := c.latestVerified(g)
		if ck.Seq != rec.Seq {
			c.t.Fatalf("the latest verified checkpoint of %s is %d, not %d just committed", g, ck.Seq, rec.Seq)
		}
		cuts[g] = ck
	}
	c.healthy()
	for _, ck := range cuts {
		c.pastCut(ck)
	}
	return cuts
}

// healthy checks that the scenario starts from a healthy cluster: nothing
// failed, fenced itself or restarted while it came up, every VM runs once
// where it was created.
func (c *cluster) healthy() {
	c.t.Helper()
	c.story.never(0, on(events.TypeNodeFailed, ""), on(events.TypeNodeFenced, ""), on(events.TypeVMFailed, ""),
		on(events.TypeVMRestarting, ""), on(events.TypeVMUnrecoverable, ""))
	for _, h := range hosts {
		if at, ok := c.logTime(h, "SELF-FENCE"); ok {
			c.t.Errorf("agent %s fenced itself at %s, before any fault", h, at.Format("15:04:05.000"))
		}
	}
	if c.t.Failed() {
		c.t.FailNow()
	}
	running := c.runsExactlyOnce(vmNames(), 0, 30*time.Second)
	c.untouched(running, vmNames()...)
	for _, v := range workload {
		if g := running[v.name]; g.host != v.host {
			c.t.Errorf("%s runs on %s, created on %s", v.name, g.host, v.host)
		}
	}
	if c.t.Failed() {
		c.t.FailNow()
	}
}

// groupsOn names the groups with a member that ran on host.
func groupsOn(host string) []string {
	var out []string
	for _, v := range workload {
		if v.host == host && !slices.Contains(out, v.group) {
			out = append(out, v.group)
		}
	}
	return out
}

// rollbackStory is what the stream must tell, in order, for every member
// of a group that lost a member with host: the host failed, was fenced
// (by method), then the member was restored from the cut and the group
// rolled back to it.
func rollbackStory(host, method string, ck cut, vm string) []step {
	return []step{
		on(events.TypeNodeFailed, host),
		on(events.TypeNodeFenced, host).where("method "+method, func(d eventData) bool { return d.Method == method }),
		on(events.TypeVMRestarting, vm).fromCheckpoint(ck.Seq),
		on(events.TypeVMRestarted, vm).fromCheckpoint(ck.Seq),
		on(events.TypeGroupRolledBack, ck.Group).fromCheckpoint(ck.Seq),
	}
}

// expectRollback is the outcome every host-loss scenario must reach: the
// groups that had a member on the lost host rolled back once, each to its
// cut, and are running exactly once on the other hosts; the other groups
// were never touched; and the stream told it in order.
func (c *cluster) expectRollback(from int, lost, method string, cuts map[string]cut) map[string]guest {
	c.t.Helper()
	hit := groupsOn(lost)
	for _, g := range hit {
		for _, vm := range vmNames(g) {
			c.story.waitFor(from, recoveryTimeout, rollbackStory(lost, method, cuts[g], vm)...)
		}
	}
	running := c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	for vm, g := range running {
		if g.host == lost {
			c.t.Errorf("%s runs on %s, the host that was lost", vm, lost)
		}
	}
	var spared []string
	for _, g := range groups {
		if slices.Contains(hit, g) {
			c.resumedFrom(running, cuts[g])
			c.story.restartedOnce(from, vmNames(g)...)
		} else {
			spared = append(spared, vmNames(g)...)
		}
	}
	c.untouched(running, spared...)
	for _, vm := range spared {
		c.story.never(from, on(events.TypeVMRestarting, vm))
	}
	for _, h := range hosts {
		if h != lost {
			c.story.never(from, on(events.TypeNodeFailed, h), on(events.TypeNodeFenced, h))
		}
	}
	return running
}
