package detector_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/events/eventstest"
)

// agent is one host's beacon on its own connection, killable.
type agent struct {
	host   string
	beacon *detector.Beacon
	stop   func()
	killed time.Time
}

func startAgent(t *testing.T, s *embedded.Server, host string) *agent {
	t.Helper()
	b, err := detector.NewBeacon(agentBus(t, s, "agent-"+host), host, nil, fastBeacon(), eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	return &agent{host: host, beacon: b, stop: run(t, "beacon "+host, b)}
}

func (a *agent) kill() {
	a.stop()
	a.killed = time.Now()
}

func startMonitor(t *testing.T, s *embedded.Server, id string) (*detector.Monitor, func()) {
	t.Helper()
	m, err := detector.NewMonitor(agentBus(t, s, id), fastConfig(id), eventstest.Logger(t, hclog.Info))
	if err != nil {
		t.Fatal(err)
	}
	return m, run(t, "monitor "+id, m)
}

// The integration test: real beacons on the embedded bus, one killed,
// node.failed within the configured bound; the live hosts are never failed.
func TestKilledBeaconIsFailedWithinBound(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	m, stopMonitor := startMonitor(t, s, "det-1")
	var agents []*agent
	for i := range 3 {
		agents = append(agents, startAgent(t, s, fmt.Sprintf("n%d", i+1)))
	}
	// Let the windows learn the real rhythm (the bootstrap is cautious).
	eventstest.Eventually(t, 10*time.Second, func() bool { return m.Metrics().BeatsReceived >= 3*30 }, "monitor sees no beats")
	if got := m.Metrics().Hosts; got != 3 {
		t.Fatalf("hosts = %d, want 3", got)
	}

	victim := agents[1]
	victim.kill()
	cfg := fastConfig("det-1")
	// The bound: max_silence after the last beat, which is at most one
	// interval before the kill, plus a tick. phi decides much earlier.
	bound := cfg.MaxSilence + cfg.Tick
	eventstest.Eventually(t, bound+5*time.Second, func() bool {
		return countEvents(t, bus, events.TypeNodeFailed, victim.host) == 1
	}, "no node.failed for %s", victim.host)
	evs := streamEvents(t, bus, events.TypeNodeFailed, victim.host)
	f, err := events.DataAs[events.NodeFailed](evs[0])
	if err != nil {
		t.Fatal(err)
	}
	detect := evs[0].Time.Sub(victim.killed)
	t.Logf("node.failed %s after the kill (reason %s, phi %.1f, bound %s)", detect, f.Reason, f.Phi, bound)
	if detect > bound {
		t.Errorf("node.failed %s after the kill, bound %s", detect, bound)
	}
	if f.Incarnation != victim.beacon.Incarnation() || f.Detector != "det-1" || f.Reason != events.FailedByPhi || f.Phi < 8 {
		t.Errorf("node.failed data %+v", f)
	}
	if n := countEvents(t, bus, events.TypeNodeSuspect, victim.host); n != 1 {
		t.Errorf("%d node.suspect for the victim, want 1", n)
	}
	for _, a := range []*agent{agents[0], agents[2]} {
		if n := countEvents(t, bus, events.TypeNodeFailed, a.host); n != 0 {
			t.Errorf("live host %s failed %d times", a.host, n)
		}
	}

	// The agent restarts: one node.recovered, as a new incarnation.
	back := startAgent(t, s, victim.host)
	eventstest.Eventually(t, 5*time.Second, func() bool {
		return countEvents(t, bus, events.TypeNodeRecovered, victim.host) == 1
	}, "no node.recovered")
	r, _ := events.DataAs[events.NodeRecovered](streamEvents(t, bus, events.TypeNodeRecovered, victim.host)[0])
	if !r.NewIncarnation || r.PreviousIncarnation != victim.beacon.Incarnation() || r.Incarnation != back.beacon.Incarnation() || r.LastSeq != 1 {
		t.Errorf("node.recovered data %+v", r)
	}

	stopMonitor()
	for _, a := range agents {
		a.stop()
	}
	back.stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
	mt := m.Metrics()
	if mt.EventsPublished != 3 || mt.BeatsGarbage != 0 || mt.BeatsDropped != 0 || mt.EventsLost != 0 {
		t.Errorf("metrics %+v, want 3 events published, nothing garbage, dropped or lost", mt)
	}
}

// Several detectors: two monitors watch the same hosts; each transition is
// stored once in the stream, the second copy dropped by JetStream as a
// duplicate of the same deterministic id.
func TestTwoMonitorsStoreOneFailedEvent(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	ma, stopA := startMonitor(t, s, "det-a")
	mb, stopB := startMonitor(t, s, "det-b")
	a1, a2 := startAgent(t, s, "n1"), startAgent(t, s, "n2")
	eventstest.Eventually(t, 10*time.Second, func() bool {
		return ma.Metrics().BeatsReceived >= 60 && mb.Metrics().BeatsReceived >= 60
	}, "monitors see no beats")

	a1.kill()
	// Both decide: each has published (or found a duplicate of) suspect
	// and failed.
	decided := func(m *detector.Monitor) bool {
		mt := m.Metrics()
		return mt.Failed == 1 && mt.EventsPublished+mt.EventsDuplicate >= 2
	}
	eventstest.Eventually(t, 10*time.Second, func() bool { return decided(ma) && decided(mb) }, "both monitors did not decide")

	if n := countEvents(t, bus, events.TypeNodeFailed, "n1"); n != 1 {
		t.Errorf("stream holds %d node.failed for n1, want exactly 1", n)
	}
	if n := countEvents(t, bus, events.TypeNodeSuspect, "n1"); n != 1 {
		t.Errorf("stream holds %d node.suspect for n1, want exactly 1", n)
	}
	ev := streamEvents(t, bus, events.TypeNodeFailed, "n1")[0]
	want := fmt.Sprintf("node.failed/n1/%s/", a1.beacon.Incarnation())
	if len(ev.ID) <= len(want) || ev.ID[:len(want)] != want {
		t.Errorf("event id %q, want %s<seq>", ev.ID, want)
	}
	if dup := ma.Metrics().EventsDuplicate + mb.Metrics().EventsDuplicate; dup < 2 {
		t.Errorf("%d duplicates dropped, want 2 (suspect and failed of the slower detector)", dup)
	}

	stopA()
	stopB()
	a2.stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
}

// Garbage on the heartbeat subjects is counted and dropped; a beat published
// on another host's subject is refused (a host cannot speak for another),
// and so is one with a reply subject: a beacon sends none, and a JetStream
// consumer's delivery of a stored forgery has one (events.FromConsumer).
func TestMonitorDropsGarbageBeats(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	m, stop := startMonitor(t, s, "det-1")
	select {
	case <-m.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("monitor not ready")
	}
	nc := bus.Conn()
	good, _ := detector.EncodeHeartbeat(detector.Heartbeat{Host: "n1", Incarnation: "a", Seq: 1})
	spoof, _ := detector.EncodeHeartbeat(detector.Heartbeat{Host: "n2", Incarnation: "a", Seq: 1})
	for _, p := range []struct {
		subj string
		data []byte
	}{
		{bus.Subjects().Heartbeat("n1"), []byte("not json")},
		{bus.Subjects().Heartbeat("n1"), []byte(`{"v":1,"host":"n1","incarnation":"a","seq":0}`)},
		{bus.Subjects().Heartbeat("n1"), []byte(`{"v":9,"host":"n1","incarnation":"a","seq":1}`)},
		{bus.Subjects().Heartbeat("n1"), spoof},
		{bus.Subjects().Heartbeat("n3"), nil}, // replayed, below
		{bus.Subjects().Heartbeat("n1"), good},
	} {
		if p.data == nil {
			replay, _ := detector.EncodeHeartbeat(detector.Heartbeat{Host: "n3", Incarnation: "a", Seq: 1})
			eventstest.Replay(t, nc, events.DefaultPrefix, "replay", bus.Subjects().Event(events.TypeNodeFault, "n3"), replay, p.subj, true)
			continue
		}
		if err := nc.Publish(p.subj, p.data); err != nil {
			t.Fatal(err)
		}
	}
	eventstest.Eventually(t, 5*time.Second, func() bool {
		mt := m.Metrics()
		return mt.BeatsGarbage == 5 && mt.BeatsReceived == 1 && mt.Hosts == 1
	}, "garbage not counted: %+v", m)
	stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
}

// A bad configuration is refused with the key named.
func TestNewMonitorRejectsBadConfig(t *testing.T) {
	cfg := detector.DefaultConfig()
	cfg.PhiFail = 4
	_, err := detector.NewMonitor(nil, cfg, hclog.NewNullLogger())
	if err == nil || !strings.Contains(err.Error(), "detector.phi_fail: must be greater than detector.phi_suspect") {
		t.Errorf("error %v", err)
	}
}

// SWIM's confirmation, end to end: a real beacon whose beats stop while its
// agent still answers probes on the embedded bus is never failed (it is
// suspected once it has not beaten for max_silence); once it stops
// answering too, node.failed follows.
func TestSilentBeaconThatAnswersProbesIsNotFailed(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	m, stopMonitor := startMonitor(t, s, "det-1")
	a := startAgent(t, s, "n1")
	stopAnswering := run(t, "probe responder n1", runFunc(a.beacon.AnswerProbes))
	eventstest.Eventually(t, 10*time.Second, func() bool { return m.Metrics().BeatsReceived >= 30 }, "monitor sees no beats")

	a.stop() // no more beats; the agent still answers
	cfg := fastConfig("det-1")
	eventstest.Eventually(t, cfg.MaxSilence+5*time.Second, func() bool {
		return countEvents(t, bus, events.TypeNodeSuspect, "n1") == 1
	}, "no node.suspect after max_silence without beats")
	// By now the silence is five times the failure deadline (about 0.4 s);
	// wait for a few more rounds of answers all the same.
	answered := m.Metrics().ProbeReplies
	eventstest.Eventually(t, 5*time.Second, func() bool { return m.Metrics().ProbeReplies >= answered+3 }, "probes no longer answered")
	if n := countEvents(t, bus, events.TypeNodeFailed, "n1"); n != 0 {
		t.Fatalf("%d node.failed for a host that answers its probes", n)
	}
	if mt := m.Metrics(); mt.Failed != 0 || mt.Suspected != 1 || mt.ProbeReplies == 0 || mt.ProbeRepliesGarbage != 0 {
		t.Errorf("metrics %+v, want n1 suspected, not failed, replies counted, none garbage", mt)
	}

	stopAnswering()
	eventstest.Eventually(t, 5*time.Second, func() bool {
		return countEvents(t, bus, events.TypeNodeFailed, "n1") == 1
	}, "no node.failed once the host stopped answering")
	f, _ := events.DataAs[events.NodeFailed](streamEvents(t, bus, events.TypeNodeFailed, "n1")[0])
	if f.Reason != events.FailedByPhi || f.Incarnation != a.beacon.Incarnation() {
		t.Errorf("node.failed data %+v", f)
	}
	if st := a.beacon.Stats(); st.ProbesAnswered == 0 || st.ProbesUnanswered != 0 {
		t.Errorf("beacon stats %+v", st)
	}
	// Nothing subscribes to n1's probes any more: the server says so.
	if mt := m.Metrics(); mt.ProbeNoResponders == 0 || mt.ProbeRepliesGarbage != 0 {
		t.Errorf("metrics %+v, want the unanswered probes counted as without responder, none garbage", mt)
	}
	stopMonitor()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
}

// runFunc makes a function a runner for run.
type runFunc func(context.Context) error

func (f runFunc) Run(ctx context.Context) error { return f(ctx) }
