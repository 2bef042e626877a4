package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
)

func TestCommandsRoundTripAndClassifyErrors(t *testing.T) {
	s := eventstest.Server(t)
	agent := eventstest.Bus(t, s)
	sup := eventstest.Bus(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	release := make(chan struct{})
	go func() {
		done <- agent.ServeCommands(ctx, "n1.example", map[string]command.Handler{
			"echo": func(_ context.Context, req json.RawMessage) (any, error) {
				var in struct{ Word string }
				if err := json.Unmarshal(req, &in); err != nil {
					return nil, command.NewError(command.CodeBadRequest, err)
				}
				return map[string]string{"word": in.Word}, nil
			},
			"busy": func(context.Context, json.RawMessage) (any, error) {
				return nil, command.NewError(command.CodeRetryable, errors.New("toolstack busy"))
			},
			"plain": func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("no") },
			"panic": func(context.Context, json.RawMessage) (any, error) { panic("bad input") },
			"slow": func(ctx context.Context, _ json.RawMessage) (any, error) {
				<-release
				return "slow done", nil
			},
		}, 4)
	}()
	// Wait until the agent is subscribed.
	eventstest.Eventually(t, 5*time.Second, func() bool {
		return sup.Command(ctx, "n1.example", "echo", map[string]string{"Word": "x"}, nil, 200*time.Millisecond) == nil
	}, "agent not answering")

	// A slow command does not hold up another one.
	slowDone := make(chan error, 1)
	go func() { slowDone <- sup.Command(ctx, "n1.example", "slow", nil, nil, 10*time.Second) }()

	var out struct{ Word string }
	if err := sup.Command(ctx, "n1.example", "echo", map[string]string{"Word": "hello"}, &out, time.Second); err != nil || out.Word != "hello" {
		t.Fatalf("echo = %+v, %v", out, err)
	}
	check := func(verb, code string) {
		t.Helper()
		err := sup.Command(ctx, "n1.example", verb, map[string]string{}, nil, time.Second)
		var ce *command.Error
		if !errors.As(err, &ce) || ce.Code != code || ce.Host != "n1.example" || ce.Verb != verb {
			t.Fatalf("%s: err = %#v, want code %s", verb, err, code)
		}
	}
	check("busy", command.CodeRetryable)
	check("plain", command.CodePermanent)
	check("panic", command.CodePermanent)
	check("nope", command.CodeBadRequest)
	// No agent on the host at all: retryable (it may come back, or the host
	// is failed and the supervisor places elsewhere).
	err := sup.Command(ctx, "ghost", "echo", nil, nil, 200*time.Millisecond)
	var ce *command.Error
	if !errors.As(err, &ce) || !ce.Retryable() {
		t.Fatalf("no agent: %v", err)
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatalf("slow: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, events.ErrStopped) {
		t.Fatalf("ServeCommands returned %v", err)
	}
	eventstest.NoGoroutines(t, 5*time.Second, "events.(*Bus).answer", "events.(*Bus).ServeCommands")
}

// A message a JetStream consumer delivers on a host's command subject (a
// credential that may create consumers can have stored bytes delivered
// there: events.FromConsumer) is not a command: counted as invalid_request,
// neither run nor answered; a supervisor's command still is.
func TestACommandDeliveredByAConsumerIsNeitherRunNorAnswered(t *testing.T) {
	s := eventstest.Server(t)
	agent := eventstest.Bus(t, s)
	sup := eventstest.Bus(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := make(chan string, 4)
	done := make(chan error, 1)
	go func() {
		done <- agent.ServeCommands(ctx, "n1", map[string]command.Handler{
			"vm.destroy": func(_ context.Context, req json.RawMessage) (any, error) {
				runs <- string(req)
				return "destroyed", nil
			},
		}, 1)
	}()
	defer func() { cancel(); <-done }()
	eventstest.Eventually(t, 5*time.Second, func() bool {
		return sup.Command(ctx, "n1", "vm.destroy", map[string]string{"vm": "real"}, nil, 200*time.Millisecond) == nil
	}, "agent not answering")
	<-runs

	forged := `{"vm":"vm1","epoch":{"term":99,"seq":1}}`
	eventstest.Replay(t, sup.Conn(), events.DefaultPrefix, "forge", sup.Subjects().Event(events.TypeNodeFault, "n1"), []byte(forged),
		sup.Subjects().Command("n1", "vm.destroy"), true)
	eventstest.Eventually(t, 5*time.Second, func() bool { return agent.Ignored().Snapshot()[events.IgnoredInvalidRequest] == 1 },
		"the delivery was not counted as invalid_request: %v", agent.Ignored().Snapshot())
	// The agent serves one command at a time, in order of arrival: a
	// command sent now runs after the delivery was dropped, and is the
	// only one to run.
	if err := sup.Command(ctx, "n1", "vm.destroy", map[string]string{"vm": "after"}, nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := <-runs; got != `{"vm":"after"}` {
		t.Fatalf("ran %s", got)
	}
	select {
	case got := <-runs:
		t.Fatalf("ran %s", got)
	default:
	}
}
