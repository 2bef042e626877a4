package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
)

// Garbage published straight onto the stream reaches a durable consumer and
// a tail: each counts it as invalid_event, and a burst of it is one log line
// per interval, not one per event.
func TestInvalidEventsAreCountedAndLoggedOncePerInterval(t *testing.T) {
	s := eventstest.Server(t)
	var logs eventstest.LogBuffer
	b := eventstest.BusLogged(t, s, logs.Logger(t, hclog.Info))
	b.Ignored().SetLogInterval(time.Hour) // the burst is inside one interval, however slow the machine
	ctx := context.Background()
	subj := b.Subjects().Event(events.TypeNodeFault, "n1")
	junk := []string{`{"oops":`, `{"type":"xenft.node.fault","data":{}}`, `{"type":"xenft.alien.landed"}`, `[]`}
	for _, j := range junk {
		if _, err := b.JetStream().Publish(ctx, subj, []byte(j)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, fault(t, "n1")); err != nil {
		t.Fatal(err)
	}
	var c collector
	consume(t, b, events.ConsumeConfig{Durable: "sup"}, c.handle)
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(c.ids()) == 1 }, "valid event behind garbage not delivered")
	eventstest.Eventually(t, 5*time.Second, func() bool { return b.Ignored().Snapshot()[events.IgnoredInvalidEvent] == 4 },
		"ignored = %v, want 4 invalid_event", b.Ignored().Snapshot())
	if lines := logs.Lines("ignored input", "reason=invalid_event", "input=event", "subject="+subj, "durable=sup"); len(lines) != 1 {
		t.Fatalf("want one line for 4 invalid events, got %d: %q", len(lines), lines)
	}

	// A tail reads the same garbage: counted again, still no new line
	// within the interval.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := b.Tail(tctx, events.TailConfig{Since: time.Now().Add(-time.Hour)}, func(context.Context, events.Event, events.Meta) error {
		return errStopTail
	})
	if !errors.Is(err, errStopTail) {
		t.Fatalf("tail: %v", err)
	}
	if n := b.Ignored().Snapshot()[events.IgnoredInvalidEvent]; n != 8 {
		t.Fatalf("after the tail: %d invalid_event, want 8", n)
	}
	if lines := logs.Lines("ignored input"); len(lines) != 1 {
		t.Fatalf("a burst within the interval logged %d lines: %q", len(lines), lines)
	}
}

var errStopTail = errors.New("seen the valid event")

// The command server counts what it refuses without doing it: unknown verbs,
// bodies that are not JSON, requests its handlers call bad (invalid_request)
// and commands of a leader term older than one already obeyed
// (stale_epoch, from an EpochGuard), each reason one line per interval.
func TestRefusedCommandsAreCountedAndLoggedOncePerInterval(t *testing.T) {
	s := eventstest.Server(t)
	var logs eventstest.LogBuffer
	agent := eventstest.BusLogged(t, s, logs.Logger(t, hclog.Info))
	agent.Ignored().SetLogInterval(time.Hour)
	sup := eventstest.Bus(t, s)
	var guard events.EpochGuard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.ServeCommands(ctx, "n1", map[string]command.Handler{
			"pause": func(_ context.Context, req json.RawMessage) (any, error) {
				var r struct {
					VM    string       `json:"vm"`
					Epoch events.Epoch `json:"epoch"`
				}
				if err := json.Unmarshal(req, &r); err != nil || r.VM == "" {
					return nil, command.NewError(command.CodeBadRequest, errors.New("pause: vm is required"))
				}
				if err := guard.Admit(r.Epoch); err != nil {
					return nil, err
				}
				return "paused", nil
			},
		}, 4)
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, events.ErrStopped) {
			t.Errorf("ServeCommands returned %v", err)
		}
	}()
	pause := func(term uint64) error {
		return sup.Command(ctx, "n1", "pause", map[string]any{"vm": "a", "epoch": events.Epoch{Term: term, Seq: 1}}, nil, 2*time.Second)
	}
	eventstest.Eventually(t, 10*time.Second, func() bool { return pause(2) == nil }, "agent not answering")

	code := func(err error) string {
		var ce *command.Error
		if errors.As(err, &ce) {
			return ce.Code
		}
		return ""
	}
	for i := 0; i < 3; i++ {
		if err := pause(1); code(err) != command.CodeStaleEpoch {
			t.Fatalf("term 1 after term 2: %v, want stale_epoch", err)
		}
		if err := sup.Command(ctx, "n1", "explode", map[string]any{}, nil, 2*time.Second); code(err) != command.CodeBadRequest {
			t.Fatalf("unknown verb: %v", err)
		}
		if err := sup.Command(ctx, "n1", "pause", map[string]any{}, nil, 2*time.Second); code(err) != command.CodeBadRequest {
			t.Fatalf("no vm: %v", err)
		}
	}
	if err := sup.Conn().Publish(sup.Subjects().Command("n1", "pause"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool {
		got := agent.Ignored().Snapshot()
		return got[events.IgnoredStaleEpoch] == 3 && got[events.IgnoredInvalidRequest] == 7
	}, "ignored = %v, want 3 stale_epoch and 7 invalid_request", agent.Ignored().Snapshot())
	stale := logs.Lines("[INFO]", "ignored input", "reason=stale_epoch", "input=command verb=pause host=n1", "older than term 2")
	invalid := logs.Lines("[WARN]", "ignored input", "reason=invalid_request", "host=n1")
	if len(stale) != 1 || len(invalid) != 1 || len(logs.Lines("ignored input")) != 2 {
		t.Fatalf("want one line per reason, got stale %q, invalid %q, all %q", stale, invalid, logs.Lines("ignored input"))
	}
	if n := len(logs.Lines("command failed")); n != 0 {
		t.Fatalf("refused commands were also logged as failures %d times", n)
	}
}
