package detector_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// Every beat the monitor ignores is counted by reason and logged once per
// interval: garbage and a beat on another host's subject (invalid_heartbeat),
// a repeated sequence number (duplicate), a late beat of an incarnation that
// has restarted since (stale_epoch). The valid beats around them still count.
func TestMonitorCountsAndLogsIgnoredBeats(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	var logs eventstest.LogBuffer
	m, err := detector.NewMonitor(agentBus(t, s, "det-1"), fastConfig("det-1"), logs.Logger(t, hclog.Info))
	if err != nil {
		t.Fatal(err)
	}
	m.SetIgnoreLogInterval(time.Hour) // every repeat below falls inside one interval
	stop := run(t, "monitor", m)
	select {
	case <-m.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("monitor not ready")
	}
	beat := func(host, inc string, seq uint64) []byte {
		b, err := detector.EncodeHeartbeat(detector.Heartbeat{Host: host, Incarnation: inc, Seq: seq})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	n1 := bus.Subjects().Heartbeat("n1")
	send := []struct {
		subj string
		data []byte
	}{
		{n1, []byte("not json")},
		{n1, []byte(`{"v":9,"host":"n1","incarnation":"a","seq":1}`)},
		{n1, beat("n2", "a", 1)}, // n2 speaking on n1's subject
		{n1, beat("n1", "a", 1)},
		{n1, beat("n1", "a", 2)},
		{n1, beat("n1", "a", 2)}, // duplicates
		{n1, beat("n1", "a", 2)},
		{n1, beat("n1", "a", 1)},
		{n1, beat("n1", "b", 1)}, // the agent restarted
		{n1, beat("n1", "a", 3)}, // late beats of the old one
		{n1, beat("n1", "a", 4)},
	}
	for _, p := range send {
		if err := bus.Conn().Publish(p.subj, p.data); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]uint64{events.IgnoredInvalidHeartbeat: 3, events.IgnoredDuplicate: 3, events.IgnoredStaleEpoch: 2}
	eventstest.Eventually(t, 10*time.Second, func() bool {
		got := m.Ignored()
		return got[events.IgnoredInvalidHeartbeat] == 3 && got[events.IgnoredDuplicate] == 3 && got[events.IgnoredStaleEpoch] == 2
	}, "ignored = %v, want %v", m.Ignored(), want)
	// The metrics tell the same story (stale is copied at the next tick).
	eventstest.Eventually(t, 5*time.Second, func() bool {
		mt := m.Metrics()
		return mt.BeatsGarbage == 3 && mt.BeatsStale == 5 && mt.BeatsReceived == 8
	}, "metrics %+v: want 3 garbage, 5 stale, 8 received", m.Metrics())
	for reason, parts := range map[string][]string{
		events.IgnoredInvalidHeartbeat: {"[WARN]", "subject=" + n1, "error="},
		events.IgnoredDuplicate:        {"[INFO]", "host=n1", "incarnation=a", "seq=2", "not above the latest, 2"},
		events.IgnoredStaleEpoch:       {"[INFO]", "host=n1", "incarnation=a", "seq=3", "restarted since, as incarnation b"},
	} {
		lines := logs.Lines(append([]string{"ignored input", "reason=" + reason, "input=heartbeat"}, parts...)...)
		if len(lines) != 1 || len(logs.Lines("reason="+reason)) != 1 {
			t.Errorf("%s: want exactly one line with %q, got %q", reason, parts, logs.Lines("reason="+reason))
		}
	}
	stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
}

// A probe reply that answers no probe in flight (here: the second answer to
// one probe) is counted as stale and logged once per interval; the first
// answer still counts as evidence of life.
func TestMonitorCountsAndLogsLateProbeReplies(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	var logs eventstest.LogBuffer
	m, err := detector.NewMonitor(agentBus(t, s, "det-1"), fastConfig("det-1"), logs.Logger(t, hclog.Info))
	if err != nil {
		t.Fatal(err)
	}
	m.SetIgnoreLogInterval(time.Hour)
	stop := run(t, "monitor", m)
	<-m.Ready()
	// n1 answers every probe twice.
	sub, err := bus.Conn().Subscribe(bus.Subjects().Probe("n1"), func(msg *nats.Msg) {
		r, _ := detector.EncodeProbeReply(detector.ProbeReply{Host: "n1", Incarnation: "a", Seq: 5})
		_ = msg.Respond(r)
		_ = msg.Respond(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	// A few beats, then silence: the monitor probes n1.
	for seq := uint64(1); seq <= 5; seq++ {
		b, _ := detector.EncodeHeartbeat(detector.Heartbeat{Host: "n1", Incarnation: "a", Seq: seq})
		_ = bus.Conn().Publish(bus.Subjects().Heartbeat("n1"), b)
	}
	// The failure message shows what the condition last saw, not the
	// values before the wait (CI once printed all zeros here).
	var mt detector.Metrics
	var ignored map[string]uint64
	eventstest.Poll(t, 10*time.Second, 10*time.Millisecond, func() bool {
		mt, ignored = m.Metrics(), m.Ignored()
		return mt.ProbeReplies >= 2 && ignored[events.IgnoredStale] >= 2
	}, func() string {
		return fmt.Sprintf("metrics %+v, ignored %v: want replies and their repeats counted", mt, ignored)
	})
	lines := logs.Lines("ignored input", "reason=stale", `input="probe reply"`, "after probe_timeout or to no probe in flight")
	if len(lines) != 1 || len(logs.Lines("reason=stale")) != 1 {
		t.Fatalf("want one line for the repeated replies, got %q", logs.Lines("reason=stale"))
	}
	stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
}
