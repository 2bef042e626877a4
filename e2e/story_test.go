//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
)

// story is the event stream as the test saw it: every event of the
// scenario, in stream order. It is read one stream sequence after the other
// from the stream's leader, not through a consumer: the witness should not
// share the code under test. (nats.go's ordered consumer, which Bus.Tail
// used until 45bdd07, was seen to deliver nothing more after one NATS server
// of three was killed; Tail now recovers, see events/tail_cluster_test.go.)
type story struct {
	t      *testing.T
	mu     sync.Mutex
	events []events.Event
	ids    map[string]bool
}

// watchStory reads the event stream of bus until the test ends.
func watchStory(t *testing.T, bus *events.Bus) *story {
	s := &story{t: t, ids: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.read(ctx, bus)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// read follows the stream from its first event: the stream is the
// scenario's own.
func (s *story) read(ctx context.Context, bus *events.Bus) {
	var stream jetstream.Stream
	var missingSince time.Time // when seq was first not found below the stream's last sequence
	for seq := uint64(1); ctx.Err() == nil; {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var msg *jetstream.RawStreamMsg
		var err error
		if stream == nil {
			stream, err = bus.JetStream().Stream(rctx, bus.Names().Stream())
		}
		if err == nil {
			msg, err = stream.GetMsg(rctx, seq)
		}
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Not stored yet, or removed: skip only what lies below the
			// stream's last sequence, and still is missing seconds later.
			info, ierr := stream.Info(rctx)
			switch {
			case ierr != nil || info.State.LastSeq <= seq:
				missingSince = time.Time{}
			case missingSince.IsZero():
				missingSince = time.Now()
			case time.Since(missingSince) > 5*time.Second:
				s.t.Logf("event stream: sequence %d not found while the stream is at %d; skipped", seq, info.State.LastSeq)
				seq++
				missingSince = time.Time{}
				err = nil
			}
		}
		cancel()
		switch {
		case msg != nil:
			missingSince = time.Time{}
			ev, derr := events.Decode(msg.Data)
			if derr != nil {
				s.t.Logf("event stream: sequence %d (%s) is not a valid event: %v", seq, msg.Subject, derr)
			} else {
				s.add(ev)
			}
			seq++
			continue
		case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
			stream = nil // the leader may have moved
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *story) add(ev events.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[ev.ID] {
		return
	}
	s.ids[ev.ID] = true
	s.events = append(s.events, ev)
}

// mark is the position from which a scenario's assertions read: the events
// after its fault.
func (s *story) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func (s *story) since(from int) []events.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]events.Event(nil), s.events[from:]...)
}

// step is one event a story must tell: its type, what it is about, and
// optionally a condition on its data.
type step struct {
	typ   events.Type
	about string // the entity: a host, VM, group or supervisor; "" for any
	check func(eventData) bool
	what  string
}

// eventData holds the data fields the scenarios look at, of any type.
type eventData struct {
	Host           string `json:"host"`
	Method         string `json:"method"`
	CheckpointSeq  uint64 `json:"checkpoint_seq"`
	Seq            uint64 `json:"seq"`
	NewIncarnation bool   `json:"new_incarnation"`
	Supervisor     string `json:"supervisor"`
	Error          string `json:"error"`
	Reason         string `json:"reason"`
	VM             string `json:"vm"`
	Publisher      string `json:"publisher"`
}

func on(typ events.Type, about string) step {
	return step{typ: typ, about: about, what: typ.Short() + " " + about}
}

// where adds a condition on the event's data, described by what.
func (st step) where(what string, check func(eventData) bool) step {
	st.check, st.what = check, st.what+" ("+what+")"
	return st
}

// fromCheckpoint requires the event's checkpoint_seq to be seq.
func (st step) fromCheckpoint(seq uint64) step {
	return st.where(fmt.Sprintf("checkpoint %d", seq), func(d eventData) bool { return d.CheckpointSeq == seq })
}

func (st step) matches(ev events.Event) bool {
	if ev.Type != st.typ || (st.about != "" && ev.EntityID() != st.about) {
		return false
	}
	if st.check == nil {
		return true
	}
	var d eventData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return false
	}
	return st.check(d)
}

// told reports how far into steps the events from from go, in order.
func (s *story) told(from int, steps []step) int {
	i := 0
	for _, ev := range s.since(from) {
		if i < len(steps) && steps[i].matches(ev) {
			i++
		}
	}
	return i
}

// waitFor waits until the events after from contain steps in this order
// (other events may come between).
func (s *story) waitFor(from int, timeout time.Duration, steps ...step) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := s.told(from, steps)
		if n == len(steps) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("after %s the event stream has not told %q (got through %d of %d steps; missing %q)",
				timeout, describe(steps), n, len(steps), steps[n].what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// has reports whether an event after from matches st.
func (s *story) has(from int, st step) bool { return s.count(from, st) > 0 }

// count counts the events after from that match st.
func (s *story) count(from int, st step) int {
	n := 0
	for _, ev := range s.since(from) {
		if st.matches(ev) {
			n++
		}
	}
	return n
}

// restartedOnce checks that each of vms was restarted exactly once after
// from.
func (s *story) restartedOnce(from int, vms ...string) {
	s.t.Helper()
	for _, vm := range vms {
		if n := s.count(from, on(events.TypeVMRestarted, vm)); n != 1 {
			s.t.Errorf("%s restarted %d times; want once", vm, n)
		}
	}
}

// never checks that no event after from matches any of steps.
func (s *story) never(from int, steps ...step) {
	s.t.Helper()
	for _, st := range steps {
		if n := s.count(from, st); n > 0 {
			s.t.Errorf("the event stream has %d × %s", n, st.what)
		}
	}
}

func describe(steps []step) string {
	var parts []string
	for _, st := range steps {
		parts = append(parts, st.what)
	}
	return strings.Join(parts, " → ")
}

// String renders the story, one event per line.
func (s *story) String() string {
	var b strings.Builder
	for _, ev := range s.since(0) {
		fmt.Fprintf(&b, "%s %-26s %-18s %s\n", ev.Time.Format("15:04:05.000"), ev.Type.Short(), ev.Subject, ev.Data)
	}
	return b.String()
}
