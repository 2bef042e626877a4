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

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func fault(t testing.TB, host string) events.Event {
	t.Helper()
	ev, err := events.New("test", time.Now(), events.NodeFault{Host: host, Severity: events.SeverityFatal, Reason: "ecc"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// collector is a Handler that records events; safe for concurrent reads.
type collector struct {
	mu   sync.Mutex
	evs  []events.Event
	fail func(events.Event) error
}

func (c *collector) handle(_ context.Context, ev events.Event, _ events.Meta) error {
	if c.fail != nil {
		if err := c.fail(ev); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, ev)
	return nil
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, e := range c.evs {
		ids = append(ids, e.ID)
	}
	return ids
}

// consume runs a durable consumer in the background until the test ends.
func consume(t *testing.T, b *events.Bus, cc events.ConsumeConfig, h events.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, cc, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, events.ErrStopped) {
				t.Errorf("Consume returned %v, want ErrStopped", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestPublishIsSeenByDurableConsumerAndTail(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()

	var durable, tail collector
	consume(t, b, events.ConsumeConfig{Durable: "sup"}, durable.handle)
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	go func() { _ = b.Tail(tctx, events.TailConfig{Since: time.Now().Add(-time.Minute)}, tail.handle) }()

	ev := fault(t, "n1")
	if err := b.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(durable.ids()) == 1 && len(tail.ids()) == 1 }, "event not delivered to both")
	if durable.ids()[0] != ev.ID || tail.ids()[0] != ev.ID {
		t.Fatalf("got %v / %v, want %s", durable.ids(), tail.ids(), ev.ID)
	}
}

func TestDuplicateEventIDIsStoredOnce(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	ev := fault(t, "n1").WithID("node.failed/n1/inc-7")
	a1, err := b.PublishAck(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.PublishAck(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Duplicate || !a2.Duplicate || a1.Sequence != a2.Sequence {
		t.Fatalf("acks %+v %+v: want second to be a duplicate of the first", a1, a2)
	}
}

func TestInvalidEventIsDroppedAndDoesNotBlockTheConsumer(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	// A site script that bypasses validation publishes garbage straight onto
	// the stream; the valid event behind it must still arrive.
	subj := b.Subjects().Event(events.TypeNodeFault, "n1")
	for _, junk := range []string{`{"oops":`, `{"type":"xenft.node.fault","data":{}}`, `{"type":"xenft.alien.landed"}`} {
		if _, err := b.JetStream().Publish(ctx, subj, []byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	good := fault(t, "n1")
	if err := b.Publish(ctx, good); err != nil {
		t.Fatal(err)
	}
	var c collector
	consume(t, b, events.ConsumeConfig{Durable: "sup"}, c.handle)
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(c.ids()) == 1 }, "valid event behind garbage not delivered")
	eventstest.Eventually(t, 5*time.Second, func() bool { return b.Drops().Total() == 3 }, "drops = %+v, want 3", b.Drops())
	if d := b.Drops(); d.Malformed != 1 || d.Invalid != 1 || d.Unknown != 1 {
		t.Fatalf("drops = %+v", d)
	}
}

func TestPublishRefusesInvalidEvent(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ev, _ := events.New("test", t0, events.NodeFault{Host: "n1", Severity: "meh", Reason: "x"})
	if err := b.Publish(context.Background(), ev); !errors.Is(err, events.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	info, err := b.JetStream().Stream(context.Background(), b.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("stream has %d messages after a refused publish", n)
	}
}

func TestHandlerErrorRedeliversUntilHandled(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	var mu sync.Mutex
	attempts := 0
	c := collector{fail: func(events.Event) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts < 3 {
			return errors.New("state not recorded yet")
		}
		return nil
	}}
	consume(t, b, events.ConsumeConfig{Durable: "sup", RetryDelay: 20 * time.Millisecond}, c.handle)
	if err := b.Publish(context.Background(), fault(t, "n1")); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(c.ids()) == 1 }, "event never handled")
	mu.Lock()
	defer mu.Unlock()
	if attempts != 3 {
		t.Fatalf("attempts = %d, want 3", attempts)
	}
}

func TestDurableConsumerResumesAfterLastAck(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	first, second := fault(t, "n1"), fault(t, "n2")
	if err := b.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	var c1 collector
	stop := consume(t, b, events.ConsumeConfig{Durable: "sup"}, c1.handle)
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(c1.ids()) == 1 }, "first not delivered")
	stop()

	if err := b.Publish(ctx, second); err != nil {
		t.Fatal(err)
	}
	var c2 collector
	consume(t, b, events.ConsumeConfig{Durable: "sup"}, c2.handle)
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(c2.ids()) == 1 }, "second not delivered")
	if got := c2.ids()[0]; got != second.ID {
		t.Fatalf("resumed consumer got %s, want only %s", got, second.ID)
	}
}

func TestTailFromTimeAndFilter(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	old := fault(t, "old")
	if err := b.Publish(ctx, old); err != nil {
		t.Fatal(err)
	}
	lead, _ := events.New("test", time.Now(), events.SupervisorLeader{Supervisor: "s1", Term: 1, Since: t0})
	if err := b.Publish(ctx, lead); err != nil {
		t.Fatal(err)
	}

	// From the past, filtered to node events: only the fault.
	var past collector
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = b.Tail(tctx, events.TailConfig{Since: time.Now().Add(-time.Hour), Filters: []string{b.Subjects().EventsOfKind("node")}}, past.handle)
	}()
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(past.ids()) == 1 }, "tail from the past missed the old event")

	// From now: only what comes next; a handler error ends the tail.
	stopErr := errors.New("enough")
	var fresh collector
	fresh.fail = func(events.Event) error { return nil }
	done := make(chan error, 1)
	go func() {
		done <- b.Tail(ctx, events.TailConfig{}, func(ctx context.Context, ev events.Event, m events.Meta) error {
			_ = fresh.handle(ctx, ev, m)
			return stopErr
		})
	}()
	sent := map[string]bool{}
	eventstest.Eventually(t, 5*time.Second, func() bool {
		next := fault(t, "new") // a fresh id each time, until the tail is attached
		sent[next.ID] = true
		_ = b.Publish(ctx, next)
		return len(fresh.ids()) > 0
	}, "tail from now missed the new events")
	if err := <-done; !errors.Is(err, stopErr) {
		t.Fatalf("tail returned %v, want the handler's error", err)
	}
	if got := fresh.ids()[0]; !sent[got] {
		t.Fatalf("tail from now got %s, which was published before it started", got)
	}
}

func TestEnsureResourcesIsIdempotentAndUpdatesLimits(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	if err := b.EnsureResources(ctx); err != nil {
		t.Fatalf("second EnsureResources: %v", err)
	}
	cfg := eventstest.BusConfig(s)
	cfg.Stream.MaxAge = time.Hour
	b2, err := events.Connect(cfg, eventstest.Logger(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.EnsureResources(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := b.JetStream().Stream(ctx, b.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxAge; got != time.Hour {
		t.Fatalf("stream max age = %s, want 1h", got)
	}
	for _, name := range []string{b.Names().Hosts(), b.Names().VMs(), b.Names().Groups(), b.Names().Checkpoints(), b.Names().Leader()} {
		if _, err := b.KV(ctx, name); err != nil {
			t.Errorf("bucket %s: %v", name, err)
		}
	}
	if _, err := b.JetStream().ObjectStore(ctx, b.Names().Images()); err != nil {
		t.Errorf("object store: %v", err)
	}
}

func TestConsumeLeavesNoGoroutines(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	var c collector
	stop := consume(t, b, events.ConsumeConfig{Durable: "leak"}, c.handle)
	if err := b.Publish(context.Background(), fault(t, "n1")); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(c.ids()) == 1 }, "not delivered")
	stop()
	eventstest.NoGoroutines(t, 5*time.Second, "xenft/events.(*Bus).run", "nats.go/jetstream.(*pullConsumer)")
}
