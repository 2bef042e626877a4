package supervisor

import (
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
)

// A burst of events is staged in parts that each stay under the bound (one
// KV value must stay under NATS's message limit), keyed so that a new
// leader reads them back in emission order, and decoded unchanged.
func TestOutboxStagesABurstInBoundedOrderedParts(t *testing.T) {
	var evs []events.Event
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	for i := range 5000 {
		ev, err := events.New("xenft/supervisor/s1", at, &events.VMRestarting{VM: "vm-" + strings.Repeat("x", 100) + string(rune('a'+i%26)),
			ToHost: "n3", CheckpointSeq: uint64(i), Attempt: 1, Epoch: events.Epoch{Term: 9, Seq: uint64(i)}})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	o := outbox{term: 9}
	o.stage(evs[:1], func(events.Event, error) { t.Fatal("dropped") }) // batch 1
	parts := o.stage(evs, func(events.Event, error) { t.Fatal("dropped") })
	if len(parts) < 2 {
		t.Fatalf("%d parts for %d events; want the burst split", len(parts), len(evs))
	}
	var back []events.Event
	for i, p := range parts {
		if len(p.data) > outboxPartBytes {
			t.Errorf("part %s is %d bytes, over %d", p.key, len(p.data), outboxPartBytes)
		}
		if i > 0 && parts[i-1].key >= p.key {
			t.Errorf("keys out of order: %s then %s", parts[i-1].key, p.key)
		}
		if !strings.HasPrefix(p.key, "outbox.00000000000000000009.00000000000000000002.") {
			t.Errorf("part key %s does not name term 9, batch 2", p.key)
		}
		d, err := decodeOutboxPart(p.key, p.data)
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, d.events...)
	}
	if len(back) != len(evs) {
		t.Fatalf("decoded %d events, staged %d", len(back), len(evs))
	}
	for i := range evs {
		if back[i].ID != evs[i].ID {
			t.Fatalf("event %d came back as %s, want %s", i, back[i].ID, evs[i].ID)
		}
	}
}

func TestOutboxEntryThatIsNotEventsIsNamedInTheError(t *testing.T) {
	for _, val := range []string{`{`, `{"a":1}`, `[{"specversion":"1.0"}]`} {
		_, err := decodeOutboxPart("outbox.1.1.0", []byte(val))
		if err == nil || !strings.Contains(err.Error(), "outbox entry outbox.1.1.0") {
			t.Errorf("%s: error %v, want one naming the entry", val, err)
		}
	}
}
