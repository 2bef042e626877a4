package restarter_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
)

// The self-fence on the agent's own clock, to the millisecond: with a lease
// acknowledged at T0 and none after, the fence begins at exactly T0 +
// self_timeout − action_timeout, not a tick earlier, and the SELF-FENCE line
// and the VM's failure reason state the same numbers. (Under load the two
// once disagreed: "last_renewal_ago=1.139s self_timeout=4s" beside "could not
// renew its lease for 4s".) The fake clock moves only when the test says;
// renewals still go to a real server, whose hosts bucket the test deletes so
// that every renewal after T0 fails.
func TestTheSelfFenceBeginsExactlyWhenTheLeaseWindowEnds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// At the real time: the NATS client turns a context's deadline into a
	// real timeout, and a fake clock in the past would expire every request.
	clock := clockwork.NewFakeClock()
	fence := restarter.FenceConfig{RenewInterval: time.Second, SelfTimeout: 10 * time.Second,
		ActionTimeout: 2 * time.Second, Action: restarter.FenceDestroy}
	logs := &eventstest.LogBuffer{}
	a := e.agent("n1", agentOptions{fence: fence, logs: logs, clock: clock}) // armed at T0: the clock has not moved
	if err := a.hv.Create(ctx, e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	if err := e.sup.JetStream().DeleteKeyValue(ctx, e.sup.Names().Hosts()); err != nil {
		t.Fatal(err)
	}

	// Up to 100 ms before the fence: renewals fail, nothing is destroyed.
	for range 7 {
		clock.Advance(fence.RenewInterval)
	}
	clock.Advance(900 * time.Millisecond) // T0 + 7.9 s
	if got := logs.Lines("SELF-FENCE"); len(got) != 0 {
		t.Fatalf("fenced before the window ended:\n%s", strings.Join(got, ""))
	}
	if _, gone := a.hv.destroyedAt("vm1"); gone {
		t.Fatal("vm1 destroyed before the window ended")
	}

	clock.Advance(100 * time.Millisecond) // T0 + 8 s: self_timeout 10 s − action_timeout 2 s
	eventstest.Eventually(t, 20*time.Second, func() bool { return len(logs.Lines("SELF-FENCE done")) > 0 },
		"no self-fence at T0 + 8 s")
	fenced := logs.Lines("last_renewal_ago=")
	if len(fenced) != 1 || !strings.Contains(fenced[0], "last_renewal_ago=8s") || !strings.Contains(fenced[0], "fence_starts_after=8s") ||
		!strings.Contains(fenced[0], "self_timeout=10s") {
		t.Fatalf("want one SELF-FENCE line with last_renewal_ago=8s fence_starts_after=8s self_timeout=10s, got:\n%s", strings.Join(fenced, ""))
	}
	if _, gone := a.hv.destroyedAt("vm1"); !gone {
		t.Fatal("vm1 still runs after the self-fence")
	}
	eventstest.Eventually(t, 20*time.Second, func() bool { return len(logs.Lines("vm failed")) > 0 }, "vm1's end was not reported")
	reason := logs.Lines("vm failed")[0]
	if !strings.Contains(reason, "no lease renewal acknowledged for 8s") || !strings.Contains(reason, "fence.self_timeout 10s") {
		t.Fatalf("vm1's failure reason does not state the fence's numbers: %s", reason)
	}
}

// The lease on the agent's clock: one renewal per renew interval, each
// stamped with the time the agent sent it, so the supervisor's self-fence
// deadline (counted from RenewedAt) is the agent's own.
func TestTheLeaseIsRenewedOncePerIntervalStampedWithTheAgentsClock(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	clock := clockwork.NewFakeClock() // at the real time: see above
	t0 := clock.Now()
	fence := restarter.FenceConfig{RenewInterval: time.Second, SelfTimeout: 10 * time.Second,
		ActionTimeout: 2 * time.Second, Action: restarter.FenceDestroy}
	e.agent("n1", agentOptions{fence: fence, clock: clock})
	kv, err := e.sup.KV(ctx, e.sup.Names().Hosts())
	if err != nil {
		t.Fatal(err)
	}
	lease := func() (restarter.HostLease, uint64) {
		entry, err := kv.Get(ctx, "n1")
		if err != nil {
			return restarter.HostLease{}, 0
		}
		var l restarter.HostLease
		if json.Unmarshal(entry.Value(), &l) != nil {
			return restarter.HostLease{}, 0
		}
		return l, entry.Revision()
	}
	first, rev := lease()
	if !first.RenewedAt.Equal(t0.UTC()) {
		t.Fatalf("the first renewal is stamped %s, want the agent's T0 %s", first.RenewedAt, t0.UTC())
	}
	for i := 1; i <= 3; i++ {
		clock.Advance(fence.RenewInterval)
		want := t0.Add(time.Duration(i) * fence.RenewInterval).UTC()
		var got restarter.HostLease
		var next uint64
		eventstest.Eventually(t, 10*time.Second, func() bool { got, next = lease(); return got.RenewedAt.Equal(want) },
			"no renewal stamped T0 + %ds (last: %s)", i, &got.RenewedAt)
		if next != rev+1 {
			t.Fatalf("T0 + %ds: lease revision %d, want %d: one renewal per interval", i, next, rev+1)
		}
		rev = next
	}
}
