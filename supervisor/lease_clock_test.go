package supervisor_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jonboulle/clockwork"

	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/supervisor"
)

// The leader's lease on its own clock, to the millisecond: a leader whose
// renewals all fail after it took the lease at T0 keeps leading (slow
// writes are retried) until exactly T0 + two thirds of the TTL, the earliest
// the key may expire in the bucket, and steps down then: never two leaders,
// and no step-down for one slow write. The fake clock moves only when the
// test says; the lease bucket is a real server's, deleted after T0 so that
// every renewal fails.
func TestALeaderWhoseRenewalsFailStepsDownWhenItsLeaseMayHaveExpired(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ttl := b.Config().LeaderTTL
	kv, err := b.KV(context.Background(), b.Names().Leader())
	if err != nil {
		t.Fatal(err)
	}
	// At the real time: the NATS client turns a context's deadline into a
	// real timeout.
	clock := clockwork.NewFakeClock()
	t0 := clock.Now()
	var logs eventstest.LogBuffer
	e := supervisor.NewElectorOn(clock, kv, "s1", ttl, logs.Logger(t, hclog.Warn))
	var l leader
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx, l.lead) }()
	defer func() { cancel(); <-done }()
	eventstest.Eventually(t, 10*time.Second, func() bool { alive, _ := l.state(); return alive }, "s1 never led")
	if !e.Holds(t0) {
		t.Fatal("the leader does not hold its lease at T0")
	}
	if err := b.JetStream().DeleteKeyValue(context.Background(), b.Names().Leader()); err != nil {
		t.Fatal(err)
	}

	// The renewal at T0 + TTL/3 fails, and is retried: one failed write
	// is no reason to step down while the lease surely holds.
	clock.Advance(ttl / 3)
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(logs.Lines("trying again while the lease holds")) > 0 },
		"no renewal failed at T0 + TTL/3")
	if alive, _ := l.state(); !alive {
		t.Fatal("stepped down after one failed renewal, with the lease still held")
	}
	// Retries every TTL/10 fail too; 1 ms before T0 + 2/3 TTL the leader
	// still surely holds and leads on.
	held := ttl - ttl/3
	for clock.Since(t0) < held-100*time.Millisecond {
		clock.Advance(100 * time.Millisecond)
	}
	clock.Advance(held - time.Millisecond - clock.Since(t0))
	if alive, _ := l.state(); !alive || !e.Holds(clock.Now()) {
		t.Fatalf("stepped down at T0 + %s, before the lease may have expired (T0 + %s)", clock.Since(t0), held)
	}

	clock.Advance(time.Millisecond) // T0 + 2/3 TTL
	eventstest.Eventually(t, 10*time.Second, func() bool { alive, _ := l.state(); return !alive },
		"still leading at T0 + %s, when the lease may have expired", held)
	if e.Holds(clock.Now()) {
		t.Fatal("Holds after the lease may have expired")
	}
	if _, terms := l.state(); len(terms) != 1 {
		t.Fatalf("led %d times, want once", len(terms))
	}
}
