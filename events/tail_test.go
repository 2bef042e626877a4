package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// tailed records what a tail delivered, with where each event sits in the
// stream; safe for concurrent reads.
type tailed struct {
	mu   sync.Mutex
	ids  []string
	seqs []uint64
}

func (r *tailed) handle(_ context.Context, ev events.Event, m events.Meta) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, ev.ID)
	r.seqs = append(r.seqs, m.Seq)
	return nil
}

func (r *tailed) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func (r *tailed) got() ([]string, []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...), append([]uint64(nil), r.seqs...)
}

// runTail runs b.Tail in the background; stop cancels it, checks it returned
// ErrStopped and that none of its goroutines is left.
func runTail(t *testing.T, b *events.Bus, tc events.TailConfig, h events.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Tail(ctx, tc, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, events.ErrStopped) {
					t.Errorf("Tail returned %v, want ErrStopped", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Tail did not return within 10s of its context ending")
			}
			eventstest.NoGoroutines(t, 5*time.Second, "xenft/events.(*tailer)", "xenft/events.(*Bus).Tail", "nats.go/jetstream.(*pullConsumer).fetch")
		})
	}
	t.Cleanup(stop)
	return stop
}

// readers lists the tail readers (ephemeral consumers) of the event stream.
func readers(t *testing.T, b *events.Bus) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.JetStream().Stream(ctx, b.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	l := st.ConsumerNames(ctx)
	for n := range l.Name() {
		if strings.HasPrefix(n, "xenft_tail_") {
			names = append(names, n)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func publishFaults(t *testing.T, b *events.Bus, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		ev := fault(t, fmt.Sprintf("n%d", i))
		if err := b.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// inOrderOnce checks that got is exactly want, and that the stream sequences
// rise.
func inOrderOnce(t *testing.T, got []string, seqs []uint64, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("tail delivered %d events %v,\nwant %d %v", len(got), got, len(want), want)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("stream sequence %d after %d", seqs[i], seqs[i-1])
		}
	}
}

func TestTailReadsOnAfterItsReaderIsDeleted(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	want := publishFaults(t, b, 20)
	var r tailed
	runTail(t, b, events.TailConfig{Since: time.Now().Add(-time.Minute)}, r.handle)
	eventstest.Eventually(t, 5*time.Second, func() bool { return r.len() == 20 }, "first 20 not delivered")

	// What an operator's `nats consumer rm` or a server that forgot it does.
	first := readers(t, b)
	if len(first) != 1 {
		t.Fatalf("readers = %v, want one", first)
	}
	ctx := context.Background()
	if err := b.JetStream().DeleteConsumer(ctx, b.Names().Stream(), first[0]); err != nil {
		t.Fatal(err)
	}
	want = append(want, publishFaults(t, b, 20)...)
	eventstest.Eventually(t, 15*time.Second, func() bool { return r.len() >= 40 }, "events after the reader was deleted not delivered")
	ids, seqs := r.got()
	inOrderOnce(t, ids, seqs, want)
	if now := readers(t, b); len(now) != 1 || now[0] == first[0] {
		t.Fatalf("readers = %v after replacing %s, want one new one", now, first[0])
	}
}

// A tail from now whose first reader goes before delivering anything resumes
// where that reader started: nothing published meanwhile is lost, nothing
// older is delivered.
func TestTailFromNowKeepsItsStartAcrossANewReader(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	publishFaults(t, b, 3) // before the tail: never delivered
	var r tailed
	runTail(t, b, events.TailConfig{}, r.handle)
	var first []string
	eventstest.Eventually(t, 5*time.Second, func() bool { first = readers(t, b); return len(first) == 1 }, "no reader")
	if err := b.JetStream().DeleteConsumer(context.Background(), b.Names().Stream(), first[0]); err != nil {
		t.Fatal(err)
	}
	want := publishFaults(t, b, 5)
	eventstest.Eventually(t, 15*time.Second, func() bool { return r.len() >= 5 }, "events after the reader was deleted not delivered")
	ids, seqs := r.got()
	inOrderOnce(t, ids, seqs, want)
}

// A reader that stops delivering without any error (here paused on the
// server; after a failover, a reader on a lagging replica) is replaced.
func TestTailReplacesAStalledReader(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	want := publishFaults(t, b, 5)
	var r tailed
	runTail(t, b, events.TailConfig{Since: time.Now().Add(-time.Minute)}, r.handle)
	eventstest.Eventually(t, 5*time.Second, func() bool { return r.len() == 5 }, "first 5 not delivered")
	names := readers(t, b)
	if len(names) != 1 {
		t.Fatalf("readers = %v, want one", names)
	}
	ctx := context.Background()
	if _, err := b.JetStream().PauseConsumer(ctx, b.Names().Stream(), names[0], time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want = append(want, publishFaults(t, b, 5)...)
	eventstest.Eventually(t, 20*time.Second, func() bool { return r.len() >= 10 }, "events behind a stalled reader not delivered")
	ids, seqs := r.got()
	inOrderOnce(t, ids, seqs, want)
}

func TestTailDropsInvalidEventsAndCountsThem(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	subj := b.Subjects().Event(events.TypeNodeFault, "n1")
	for _, junk := range []string{`{"oops":`, `{"type":"xenft.node.fault","data":{}}`, `{"type":"xenft.alien.landed"}`} {
		if _, err := b.JetStream().Publish(ctx, subj, []byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	want := publishFaults(t, b, 1)
	var r tailed
	runTail(t, b, events.TailConfig{Since: time.Now().Add(-time.Minute)}, r.handle)
	eventstest.Eventually(t, 5*time.Second, func() bool { return r.len() == 1 }, "valid event behind garbage not delivered")
	ids, seqs := r.got()
	inOrderOnce(t, ids, seqs, want)
	if seqs[0] != 4 {
		t.Fatalf("seq = %d, want 4", seqs[0])
	}
	if d := b.Drops(); d.Total() != 3 {
		t.Fatalf("drops = %+v, want 3", d)
	}
}

func TestTailStopsWithItsContextAndDeletesItsReader(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	var r tailed
	stop := runTail(t, b, events.TailConfig{Since: time.Now().Add(-time.Minute)}, r.handle)
	publishFaults(t, b, 3)
	eventstest.Eventually(t, 5*time.Second, func() bool { return r.len() == 3 }, "not delivered")
	stop() // checks ErrStopped and goroutines
	if n := readers(t, b); len(n) != 0 {
		t.Fatalf("readers left on the server: %v", n)
	}
}

func TestTailOfAMissingStreamIsAnError(t *testing.T) {
	s := eventstest.Server(t)
	cfg := eventstest.BusConfig(s)
	cfg.Prefix = "nostream"
	b, err := events.Connect(cfg, eventstest.Logger(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = b.Tail(ctx, events.TailConfig{}, func(context.Context, events.Event, events.Meta) error { return nil })
	if err == nil || errors.Is(err, events.ErrStopped) {
		t.Fatalf("Tail = %v, want an error", err)
	}
}
