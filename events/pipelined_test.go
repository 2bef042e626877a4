package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

func TestPipelinedConsumerStartsInOrderAndAcksOnlyWhenRecorded(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	var want []string
	for _, h := range []string{"n1", "n2", "n3", "n4"} {
		ev := fault(t, h)
		want = append(want, ev.ID)
		if err := b.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var started []string
	release := make(chan struct{})
	failOnce := map[string]bool{want[2]: true} // the third fails to record once
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.ConsumePipelined(cctx, events.ConsumeConfig{Durable: "pipe", RetryDelay: 20 * time.Millisecond}, 8,
			func(_ context.Context, ev events.Event, _ events.Meta) events.Await {
				mu.Lock()
				started = append(started, ev.ID)
				mu.Unlock()
				return func() error {
					<-release
					mu.Lock()
					defer mu.Unlock()
					if failOnce[ev.ID] {
						delete(failOnce, ev.ID)
						return errors.New("not recorded")
					}
					return nil
				}
			})
	}()
	// All four start without waiting for the first to be recorded...
	eventstest.Eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(started) == 4 }, "not all started")
	mu.Lock()
	for i := range want {
		if started[i] != want[i] {
			t.Fatalf("started %v, want stream order %v", started, want)
		}
	}
	mu.Unlock()
	// ...and none is acknowledged before it is recorded.
	info := func() (pending, ackPending int) {
		c, err := b.JetStream().Consumer(ctx, b.Names().Stream(), "pipe")
		if err != nil {
			t.Fatal(err)
		}
		ci, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return int(ci.NumPending), ci.NumAckPending
	}
	if _, ap := info(); ap != 4 {
		t.Fatalf("ack pending = %d before anything was recorded, want 4", ap)
	}
	close(release)
	// The one that failed to record is redelivered and then acked.
	eventstest.Eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(started) == 5 }, "the failed event was not redelivered")
	eventstest.Eventually(t, 5*time.Second, func() bool { _, ap := info(); return ap == 0 }, "not all acknowledged")
	mu.Lock()
	if started[4] != want[2] {
		t.Fatalf("redelivered %s, want %s", started[4], want[2])
	}
	mu.Unlock()
	cancel()
	if err := <-done; !errors.Is(err, events.ErrStopped) {
		t.Fatalf("returned %v", err)
	}
	eventstest.NoGoroutines(t, 5*time.Second, "events.(*Bus).ConsumePipelined")
}
