package supervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
)

// A leader persists a decision with its events and is killed before it has
// published them all: the first event reached the stream, the second did
// not. The next leader publishes what the outbox holds, in order, the stream keeps the first event once (same id, dropped as a
// duplicate), and the outbox is purged without leaving markers.
func TestEventsALeaderPersistedButDidNotPublishAreToldByTheNextLeader(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, _ := store.NewDir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	stateKV, err := bus.KV(ctx, bus.Names().State())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Second)
	restarting := func(vm string) events.Event {
		ev, err := events.New("xenft/supervisor/old", at, &events.VMRestarting{VM: vm, Group: "g", FromHost: "n2", ToHost: "n3",
			CheckpointSeq: 4, Attempt: 1, Epoch: events.Epoch{Term: 7, Seq: 3}})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	published, unpublished := restarting("vm-a"), restarting("vm-b")
	put := func(key string, evs ...events.Event) {
		var raw []json.RawMessage
		for _, ev := range evs {
			b, err := events.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b)
		}
		val, _ := json.Marshal(raw)
		if _, err := stateKV.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	put(fmt.Sprintf("outbox.%020d.%020d.%06d", 7, 1, 0), published)
	put(fmt.Sprintf("outbox.%020d.%020d.%06d", 7, 2, 0), unpublished)
	if err := bus.Publish(ctx, published); err != nil {
		t.Fatal(err)
	}

	runSupervisor(t, ctx, &wg, bus, st)

	stream, err := bus.JetStream().Stream(ctx, bus.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	var got []events.Event
	eventstest.Poll(t, 20*time.Second, 50*time.Millisecond, func() bool {
		got = streamEvents(t, ctx, stream)
		return indexOf(got, func(e events.Event) bool { return e.ID == unpublished.ID }) >= 0
	}, func() string {
		return fmt.Sprintf("the event the old leader did not publish never reached the stream: %v", types(got))
	})
	a := indexOf(got, func(e events.Event) bool { return e.ID == published.ID })
	b := indexOf(got, func(e events.Event) bool { return e.ID == unpublished.ID })
	if a > b {
		t.Errorf("stream order is %v; want the old leader's events in the order it decided them", types(got))
	}
	for _, ev := range []events.Event{published, unpublished} {
		if n := count(got, func(e events.Event) bool { return e.ID == ev.ID }); n != 1 {
			t.Errorf("event %s is in the stream %d times, want once", ev.ID, n)
		}
	}
	// Published entries leave the outbox with no trace: not even a delete
	// marker per batch (which a takeover would then have to read).
	kvStream, err := bus.JetStream().Stream(ctx, "KV_"+bus.Names().State())
	if err != nil {
		t.Fatal(err)
	}
	outboxSubject := "$KV." + bus.Names().State() + ".outbox.>"
	var last *jetstream.RawStreamMsg
	eventstest.Poll(t, 10*time.Second, 50*time.Millisecond, func() bool {
		last, err = kvStream.GetLastMsgForSubject(ctx, outboxSubject)
		return errors.Is(err, jetstream.ErrMsgNotFound)
	}, func() string { return fmt.Sprintf("the outbox still holds %v (%v)", last, err) })
}

// streamEvents reads the whole event stream in order.
func streamEvents(t *testing.T, ctx context.Context, stream jetstream.Stream) []events.Event {
	t.Helper()
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		out = append(out, ev)
	}
	return out
}

func indexOf(evs []events.Event, match func(events.Event) bool) int {
	for i, e := range evs {
		if match(e) {
			return i
		}
	}
	return -1
}

func count(evs []events.Event, match func(events.Event) bool) int {
	n := 0
	for _, e := range evs {
		if match(e) {
			n++
		}
	}
	return n
}

func types(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type.Short()
	}
	return out
}
