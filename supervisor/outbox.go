package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
)

// The outbox makes the leader's events as durable as its decisions. An event
// the core emits is written to the state bucket (under "outbox.") in the same
// persist as the state change it tells of, published after, and then purged.
// A leader killed between the persist and the publish leaves the entry
// behind, and the next leader publishes it before anything of its own: a
// monitor never misses a vm.restarting whose restore the new leader merely
// re-sends. The event keeps its id, so a publish the old leader did make
// before it died is dropped by the stream as a duplicate (Nats-Msg-Id within
// stream.duplicate_window). Events are therefore delivered at least once
// and, within the window, exactly once.
const keyOutbox = "outbox."

// outboxPartBytes bounds one outbox entry: a batch that fails a thousand
// hosts' VMs emits megabytes of events, and one value must stay well under
// NATS's 1 MiB message limit.
const outboxPartBytes = 512 << 10

// outboxPart is one entry: events in the order the core emitted them.
type outboxPart struct {
	key    string
	events []events.Event
	data   []byte // the entry's value: a JSON array of encoded events
}

// outbox stages a term's events into parts with ordered keys.
type outbox struct {
	term  uint64
	batch uint64
}

// stage builds the parts for one batch of events; keys order by term, then
// batch, then part, so a new leader publishes leftovers in emission order.
// An event that cannot be encoded is dropped here, with the error, and never
// reaches the store.
func (o *outbox) stage(evs []events.Event, drop func(events.Event, error)) []outboxPart {
	if len(evs) == 0 {
		return nil
	}
	o.batch++
	var parts []outboxPart
	var cur []events.Event
	var raw []json.RawMessage
	size := 0
	flush := func() {
		if len(cur) == 0 {
			return
		}
		data, _ := json.Marshal(raw) // raw messages are valid JSON: cannot fail
		parts = append(parts, outboxPart{
			key:    fmt.Sprintf("%s%020d.%020d.%06d", keyOutbox, o.term, o.batch, len(parts)),
			events: cur, data: data,
		})
		cur, raw, size = nil, nil, 0
	}
	for _, ev := range evs {
		b, err := events.Encode(ev)
		if err != nil {
			drop(ev, err)
			continue
		}
		if size+len(b) > outboxPartBytes {
			flush()
		}
		cur, raw, size = append(cur, ev), append(raw, b), size+len(b)+1
	}
	flush()
	return parts
}

// loadOutbox reads the parts a previous leader left, in emission order. An
// unreadable entry is reported and skipped (purging it is the caller's
// choice): it must not keep a new leader from leading.
func loadOutbox(ctx context.Context, kv jetstream.KeyValue, bad func(key string, err error)) ([]outboxPart, error) {
	w, err := kv.Watch(ctx, keyOutbox+">", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read supervisor outbox: %w", err)
	}
	var parts []outboxPart
	err = initialEntries(ctx, w, func(e jetstream.KeyValueEntry) error {
		p, err := decodeOutboxPart(e.Key(), e.Value())
		if err != nil {
			bad(e.Key(), err)
			p = outboxPart{key: e.Key()} // purged, not published
		}
		parts = append(parts, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].key < parts[j].key })
	return parts, nil
}

func decodeOutboxPart(key string, val []byte) (outboxPart, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(val, &raw); err != nil {
		return outboxPart{}, fmt.Errorf("outbox entry %s is not a JSON array of events: %w", key, err)
	}
	p := outboxPart{key: key, data: val}
	for i, r := range raw {
		ev, err := events.Decode(r)
		if err != nil {
			return outboxPart{}, fmt.Errorf("outbox entry %s, event %d: %w", key, i, err)
		}
		p.events = append(p.events, ev)
	}
	return p, nil
}

// purgeOutboxEntry removes an entry and leaves no delete marker behind (a KV
// delete would leave one per published batch, forever): the bucket's stream
// is purged of the entry's subject.
func purgeOutboxEntry(ctx context.Context, js jetstream.JetStream, bucket, key string) error {
	if !strings.HasPrefix(key, keyOutbox) {
		return errors.New("not an outbox key: " + key)
	}
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("purge %s: %w", key, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bucket+"."+key)); err != nil {
		return fmt.Errorf("purge %s: %w", key, err)
	}
	return nil
}
