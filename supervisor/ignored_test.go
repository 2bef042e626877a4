package supervisor_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
)

// Issue 12: a valid node.fault naming an unknown host was stored and ignored
// with no log line and no counter. Every event the leader's core refuses is
// now counted by reason and logged, once per reason per interval, naming
// the event, who published it and why it was ignored; garbage on the stream
// is counted by the same counters.
func TestLeaderCountsAndLogsTheEventsItIgnores(t *testing.T) {
	s := eventstest.Server(t)
	var logs eventstest.LogBuffer
	log := logs.Logger(t, hclog.Info)
	bus := eventstest.BusLogged(t, s, log)
	bus.Ignored().SetLogInterval(time.Hour) // each burst below falls inside one interval
	st, _ := store.NewDir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// n1 is a host the supervisor knows (it beats); n9 is not.
	now := time.Now().UTC()
	hb, _ := json.Marshal(detector.Heartbeat{V: detector.HeartbeatVersion, Host: "n1", Incarnation: "i1", Seq: 1,
		Sent: now, IntervalMs: 1000, Inventory: &detector.Inventory{At: now, Domains: []detector.DomainSummary{}, FreeMemoryMiB: 4096}})
	publish := func(source string, p events.Payload) string {
		t.Helper()
		ev, err := events.New(source, time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	var faultIDs []string
	for range 3 {
		faultIDs = append(faultIDs, publish("site/ipmi", events.NodeFault{Host: "n9", Severity: events.SeverityFatal, Reason: "PSU failure"}))
	}
	for range 2 {
		publish("xenft/agent/n1", events.VMFailed{VM: "ghost", Host: "n1", Reason: "crashed"})
	}
	publish("xenft/supervisor/old", events.CheckpointDeleted{Group: "nogroup", Seq: 4, Reason: "retention"})
	// A script that bypasses validation.
	if _, err := bus.JetStream().Publish(ctx, bus.Subjects().Event(events.TypeNodeFault, "n9"), []byte(`{"type":"xenft.node.fault","data":{}}`)); err != nil {
		t.Fatal(err)
	}

	cfg := supervisor.DefaultConfig()
	cfg.ID = "s1"
	cfg.CheckpointInterval = 0
	sup, err := supervisor.New(ctx, bus, st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = sup.Run(ctx) }()
	_ = bus.Conn().Publish(bus.Subjects().Heartbeat("n1"), hb)

	want := map[string]uint64{events.IgnoredUnknownHost: 3, events.IgnoredUnknownVM: 2, events.IgnoredUnknownGroup: 1, events.IgnoredInvalidEvent: 1}
	var got map[string]uint64
	eventstest.Eventually(t, 30*time.Second, func() bool {
		got = sup.Ignored()
		for r, n := range want {
			if got[r] != n {
				return false
			}
		}
		return true
	}, "ignored = %v, want %v", &got, want)

	for reason, parts := range map[string][]string{
		events.IgnoredUnknownHost:  {"[WARN]", "input=node.fault", "host=n9", "severity=fatal", "event=" + faultIDs[0], "source=site/ipmi", `unknown host: \"n9\"`},
		events.IgnoredUnknownVM:    {"[WARN]", "input=vm.failed", "vm=ghost", "host=n1", "source=xenft/agent/n1"},
		events.IgnoredUnknownGroup: {"[WARN]", "input=checkpoint.deleted", "group=nogroup", "seq=4"},
		events.IgnoredInvalidEvent: {"[WARN]", "input=event", "durable=xenft-supervisor", "subject=" + bus.Subjects().Event(events.TypeNodeFault, "n9")},
	} {
		// The counter is raised before the line is written (events.IgnoredInputs
		// logs outside its lock): wait for the line too.
		eventstest.Eventually(t, 10*time.Second, func() bool { return len(logs.Lines("reason="+reason)) > 0 }, "%s: no line logged", reason)
		lines := logs.Lines(append([]string{"ignored input", "reason=" + reason}, parts...)...)
		if len(lines) != 1 || len(logs.Lines("reason="+reason)) != 1 {
			t.Errorf("%s: want exactly one line with %q, got %q", reason, parts, logs.Lines("reason="+reason))
		}
	}
}

// Identities, not envelopes: a beat counts for the host its subject names
// (the subject is what a permission binds to the host's credential), so a
// beat of n2 on n1's subject is ignored as invalid_heartbeat; and a request
// a JetStream consumer delivered to the leader (anyone who may create
// consumers can have stored bytes delivered there: events.FromConsumer) is
// not obeyed, counted as invalid_input, while a client's request still is.
func TestLeaderTrustsSubjectsNotBodiesAndIgnoresReplayedRequests(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, _ := store.NewDir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	sup := runSupervisor(t, ctx, &wg, bus, st)
	resume := supervisor.OperatorRequest{Op: supervisor.OpResume, By: "test"}
	eventstest.Eventually(t, 30*time.Second, func() bool { return supervisor.RequestOperator(ctx, bus, resume, time.Second) == nil },
		"the supervisor does not lead")

	now := time.Now().UTC()
	hb, _ := json.Marshal(detector.Heartbeat{V: detector.HeartbeatVersion, Host: "n2", Incarnation: "i1", Seq: 1,
		Sent: now, IntervalMs: 1000, Inventory: &detector.Inventory{At: now, Domains: []detector.DomainSummary{}, FreeMemoryMiB: 4096}})
	// Beats are core NATS: one sent before the leader's heartbeat feed has
	// subscribed is lost (seen under load), so the forged beat is sent
	// until one is counted.
	var got map[string]uint64
	eventstest.Eventually(t, 10*time.Second, func() bool {
		if err := bus.Conn().Publish(bus.Subjects().Heartbeat("n1"), hb); err != nil {
			t.Fatal(err)
		}
		got = sup.Ignored()
		return got[events.IgnoredInvalidHeartbeat] >= 1
	}, "ignored = %v, want invalid_heartbeat", &got)
	req, _ := json.Marshal(resume)
	eventstest.Replay(t, bus.Conn(), events.DefaultPrefix, "forge", bus.Subjects().Event(events.TypeNodeFault, "n1"), req,
		bus.Subjects().Supervisor("op"), false)
	eventstest.Eventually(t, 10*time.Second, func() bool {
		got = sup.Ignored()
		return got[events.IgnoredInvalidInput] == 1
	}, "ignored = %v, want one invalid_input", &got)
	if err := supervisor.RequestOperator(ctx, bus, resume, 10*time.Second); err != nil {
		t.Fatalf("a client's request after the replay: %v", err)
	}
}
