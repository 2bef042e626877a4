//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/supervisor/core"
)

// defaultFencing is the production default, which must ride out a
// JetStream leader election: when a server dies, the streams it led have no
// leader for NATS's election timeout (4 to 9 s, not configurable) and no
// lease renewal is acknowledged meanwhile. An agent fences itself when none
// was for self_timeout − action_timeout, so that must exceed the election
// plus a renewal interval or two: 20 s − 3 s by default. The former 10 s −
// 3 s did not: with it a host fenced itself in one run of two here.
var defaultFencing = func() fencing {
	agent, policy := restarter.DefaultConfig().Fence, core.DefaultPolicy()
	return fencing{selfTimeout: agent.SelfTimeout, actionTimeout: agent.ActionTimeout, renew: agent.RenewInterval, margin: policy.FenceMargin}
}()

// One of the three NATS servers is killed (SIGKILL): the one that leads the
// hosts bucket, where every agent renews its self-fence lease, which makes
// it the worst one to lose. With the default lease window, longer than a
// JetStream failover, losing one server of three is not an outage: no host
// may be declared failed or fence itself, no VM may restart. The cluster keeps
// working on the two left: a checkpoint commits (its images replicated on
// them) and a host crash afterwards is recovered from it (the host is
// fenced by command: the 25 s self-fence deadline would only slow the
// test). Then the server comes back and catches up.
func TestOneNATSServerKilled(t *testing.T) {
	c := newCluster(t, options{fencing: defaultFencing, fenceCommand: true})
	c.checkpointAll()
	from := c.story.mark()
	victim := c.streamLeader("KV_" + c.bus.Names().Hosts())
	killed := time.Now()
	c.kill(victim)
	// Every agent renews its lease again: the failover is over, and an
	// agent that has renewed since will not fence itself over it.
	c.eventually(2*time.Minute, func() bool {
		for _, h := range hosts {
			if l, ok := c.hostLease(h); !ok || !l.RenewedAt.After(killed.Add(time.Second)) {
				return false
			}
		}
		return true
	}, says("not every agent renewed its lease after %s died", victim))
	c.logf("every agent renewed its lease after %s died", victim)
	for _, h := range hosts {
		if at, ok := c.logTime(h, "SELF-FENCE"); ok {
			t.Errorf("agent %s fenced itself at %s", h, at.Format("15:04:05.000"))
		}
	}
	running := c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	c.untouched(running, vmNames()...)
	c.story.never(from, on(events.TypeNodeFailed, ""), on(events.TypeNodeFenced, ""), on(events.TypeVMRestarting, ""))
	if t.Failed() {
		t.FailNow()
	}

	c.checkpoint("mpi")
	cuts := map[string]cut{"mpi": c.latestVerified("mpi"), "web": c.latestVerified("web")}
	c.pastCut(cuts["mpi"])
	crashed := c.story.mark()
	c.crashHost("n2")
	c.expectRollback(crashed, "n2", events.FenceCommand, cuts)

	for _, s := range c.servers {
		if s.name == victim {
			c.startServer(s)
		}
	}
	c.waitReplicated()
	c.logf("%s is back and every stream has three current replicas", victim)
}

// The same server is killed, with the short lease window (8 s − 1 s = 7 s),
// inside the range of a JetStream failover (4-9 s after the leader's last
// word): no renewal reaches the hosts bucket until it has a leader again.
// Before lease grants, every host fenced itself here with a 4 s window.
// (The 4 s window itself cannot be used: at a cluster's start, after the
// agents armed and before the new leader knew them, a 4 s stall of the
// bucket fenced a healthy host, seen once.)
// Now every agent still reaches the leading supervisor, whose grants renew
// its lease (docs/fencing.md, lease grants): no host may fence itself and
// no VM may restart. The leader bucket's own leader is moved off the victim
// first, so that the supervisor keeps its lease through the failover (a
// supervisor that loses its lease grants nothing, and then the hosts do
// fence themselves, by design).
func TestNATSFailoverLongerThanTheLeaseWindowIsRiddenOutOnTheLeadersGrants(t *testing.T) {
	c := newCluster(t, options{})
	c.checkpointAll()
	from := c.story.mark()
	victim := c.streamLeader("KV_" + c.bus.Names().Hosts())
	leaderStream := "KV_" + c.bus.Names().Leader()
	c.eventually(30*time.Second, func() bool {
		if c.streamLeader(leaderStream) != victim {
			return true
		}
		// Ask the leader bucket's stream leader to step down; another
		// server takes it.
		_, _ = c.bus.Conn().Request("$JS.API.STREAM.LEADER.STEPDOWN."+leaderStream, nil, 5*time.Second)
		return false
	}, says("the leader bucket stays led by %s", victim))
	killed := time.Now()
	c.kill(victim)
	c.eventually(2*time.Minute, func() bool {
		for _, h := range hosts {
			if l, ok := c.hostLease(h); !ok || !l.RenewedAt.After(killed.Add(time.Second)) {
				return false
			}
		}
		return true
	}, says("not every agent renewed its lease after %s died", victim))
	c.logf("every agent renewed its lease after %s died", victim)
	for _, h := range hosts {
		if at, ok := c.logTime(h, "SELF-FENCE"); ok {
			t.Errorf("agent %s fenced itself at %s", h, at.Format("15:04:05.000"))
		}
	}
	running := c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	c.untouched(running, vmNames()...)
	c.story.never(from, on(events.TypeNodeFenced, ""), on(events.TypeVMRestarting, ""))
}

// streamLeader names the server that leads a stream.
func (c *cluster) streamLeader(stream string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.bus.JetStream().Stream(ctx, stream)
	if err != nil {
		c.t.Fatal(err)
	}
	ci := s.CachedInfo().Cluster
	if ci == nil || ci.Leader == "" {
		c.t.Fatalf("stream %s has no leader", stream)
	}
	return ci.Leader
}
