package supervisor

import (
	"testing"
	"time"

	"github.com/xenft/xenft/supervisor/core"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func grantWorld(t *testing.T, floor time.Time) (*core.State, *grantGate) {
	t.Helper()
	st := core.NewState(core.DefaultPolicy())
	g := newGrantGate(newLeaseBook(), floor)
	for _, in := range []core.Input{
		core.Leader{At: t0, Term: 1},
		core.HostBeat{At: t0, Host: "n1", Incarnation: "i1", Seq: 1, CapacityMiB: 4096, FreeMiB: 4096},
		core.HostBeat{At: t0, Host: "n2", Incarnation: "i1", Seq: 1, CapacityMiB: 4096, FreeMiB: 4096},
	} {
		if _, err := g.apply(st, in); err != nil {
			t.Fatal(err)
		}
	}
	g.refresh(st)
	return st, g
}

// A grant the agent counts is never later than the renewal the self-fence
// deadline counts from: it is recorded before the reply, the node.failed
// applied after it is stamped with it, and no grant follows the failure.
func TestGrantBeforeAFailureCountsInItsDeadlineAndNoneFollowsIt(t *testing.T) {
	st, g := grantWorld(t, t0)
	p := st.Policy
	granted := t0.Add(10 * time.Second)
	if ok, why := g.grant("n1", granted, true); !ok {
		t.Fatalf("grant to a healthy host refused: %s", why)
	}
	if _, err := g.apply(st, core.NodeFailed{At: t0.Add(12 * time.Second), Host: "n1", Incarnation: "i1", LastBeat: t0, LastSeq: 1}); err != nil {
		t.Fatal(err)
	}
	if want := granted.Add(p.FenceSelfTimeout + p.FenceMargin); st.Hosts["n1"].FenceDeadline.Before(want) {
		t.Fatalf("deadline %v, want no earlier than the grant + self-timeout + margin (%v)", st.Hosts["n1"].FenceDeadline, want)
	}
	if ok, _ := g.grant("n1", t0.Add(13*time.Second), true); ok {
		t.Fatal("a failed host was granted its lease")
	}
	g.refresh(st)
	if ok, _ := g.grant("n1", t0.Add(14*time.Second), true); ok {
		t.Fatal("a failed host was granted its lease after a refresh")
	}
	if ok, why := g.grant("n2", t0.Add(14*time.Second), false); ok || why != "this supervisor's leader lease may have expired" {
		t.Fatalf("a supervisor unsure of its lease granted: %v %q", ok, why)
	}
	if ok, _ := g.grant("n9", t0.Add(14*time.Second), true); ok {
		t.Fatal("an unknown host was granted its lease")
	}
}

// A new leader does not know the grants of the one before: for a host that
// fails in its term while alive in the loaded state, the deadline counts
// from no earlier than the term's start; a host failed before the term
// keeps the deadline it had.
func TestANewLeadersFloorCoversTheGrantsOfTheOneBefore(t *testing.T) {
	floor := t0.Add(30 * time.Second)
	st, g := grantWorld(t, floor)
	p := st.Policy
	if _, err := g.apply(st, core.NodeFailed{At: t0.Add(31 * time.Second), Host: "n1", Incarnation: "i1", LastBeat: t0, LastSeq: 1}); err != nil {
		t.Fatal(err)
	}
	if want := floor.Add(p.FenceSelfTimeout + p.FenceMargin); !st.Hosts["n1"].FenceDeadline.Equal(want) {
		t.Fatalf("deadline %v, want the term's start + self-timeout + margin (%v)", st.Hosts["n1"].FenceDeadline, want)
	}

	// n2 failed under the old leader, whose deadline the state kept.
	old := newGrantGate(newLeaseBook(), t0)
	if _, err := old.apply(st, core.NodeFailed{At: t0.Add(3 * time.Second), Host: "n2", Incarnation: "i1", LastBeat: t0, LastSeq: 1}); err != nil {
		t.Fatal(err)
	}
	before := st.Hosts["n2"].FenceDeadline
	if _, err := g.apply(st, core.NodeFailed{At: t0.Add(32 * time.Second), Host: "n2", Incarnation: "i1", LastBeat: t0, LastSeq: 1}); err != nil {
		t.Fatal(err)
	}
	if !st.Hosts["n2"].FenceDeadline.Equal(before) {
		t.Fatalf("a host failed before the term had its deadline moved from %v to %v", before, st.Hosts["n2"].FenceDeadline)
	}
}
