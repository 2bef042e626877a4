package detector

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
)

// t0 is the fake clock's origin: the tracker only ever sees times we give it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// scenario drives a Tracker on a fake clock: beats at chosen times, a tick
// every cfg.Tick in between, and a log of every transition with its time.
type scenario struct {
	t    *testing.T
	tr   *Tracker
	cfg  Config
	now  time.Duration // since t0
	log  []string
	all  []Transition
	skew time.Duration // added to every beat's Sent (the sender's clock)
	// delay is added to every beat's receive time: another detector, further
	// from the sender.
	delay time.Duration
	// probes are the probes the ticks asked for; logProbes also logs them.
	probes    []Probe
	logProbes bool
}

func newScenario(t *testing.T, cfg Config) *scenario {
	t.Helper()
	tr, err := NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &scenario{t: t, tr: tr, cfg: cfg}
}

func (s *scenario) record(ts []Transition) {
	for _, tr := range ts {
		s.all = append(s.all, tr)
		line := fmt.Sprintf("%s %s %s/%s seq=%d", tr.At.Sub(t0), tr.Kind, tr.Host, tr.Incarnation, tr.LastSeq)
		if tr.Reason != "" {
			line += " reason=" + tr.Reason
		}
		if tr.NewIncarnation {
			line += " new_incarnation previous=" + tr.PreviousIncarnation
		}
		s.log = append(s.log, line)
	}
}

// tick runs one tick at at.
func (s *scenario) tick(at time.Duration) {
	ts, probes := s.tr.Tick(t0.Add(at))
	s.record(ts)
	for _, p := range probes {
		s.probes = append(s.probes, p)
		if s.logProbes {
			s.log = append(s.log, fmt.Sprintf("%s probe %s/%s seq=%d", p.At.Sub(t0), p.Host, p.Incarnation, p.LastSeq))
		}
	}
}

// advance ticks every cfg.Tick until the clock reaches to.
func (s *scenario) advance(to time.Duration) {
	for next := (s.now/s.cfg.Tick + 1) * s.cfg.Tick; next <= to; next += s.cfg.Tick {
		s.now = next
		s.tick(next)
	}
	s.now = to
}

// beat delivers one beat at the given time (ticking up to it first).
func (s *scenario) beat(at time.Duration, host, inc string, seq uint64) {
	s.advance(at + s.delay)
	hb := Heartbeat{V: 1, Host: host, Incarnation: inc, Seq: seq, Sent: t0.Add(at + s.skew), IntervalMs: 1000}
	s.record(s.tr.Beat(hb, t0.Add(at+s.delay)))
}

// regular delivers beats seq from..to of host/inc, one a second from start.
func (s *scenario) regular(start time.Duration, host, inc string, from, to uint64) time.Duration {
	at := start
	for seq := from; seq <= to; seq++ {
		s.beat(at, host, inc, seq)
		at += time.Second
	}
	return at - time.Second // the last beat's time
}

func (s *scenario) expect(want ...string) {
	s.t.Helper()
	got := strings.Join(s.log, "\n")
	if w := strings.Join(want, "\n"); got != w {
		s.t.Errorf("transitions:\n%s\nwant:\n%s", got, w)
	}
	s.log = nil
}

func (s *scenario) view(host string) HostView {
	s.t.Helper()
	v, ok := s.tr.Host(host)
	if !ok {
		s.t.Fatalf("host %s unknown", host)
	}
	return v
}

// scenarioConfig is the default configuration with 100 ms ticks and a pause
// of one second, so that the times in the expectations below are round and
// do not move when the defaults are tuned.
func scenarioConfig() Config {
	cfg := DefaultConfig()
	cfg.Tick = 100 * time.Millisecond
	cfg.AcceptablePause = time.Second
	return cfg
}

// ms formats a time since t0 as the log does.
func ms(d time.Duration) string { return d.String() }

// DESIGN.md "Failure detection": node.suspect at phi_suspect, node.failed at
// phi_fail, node.recovered when beats return. With a pause of 1 s and a
// perfect 1 s rhythm the window's deviation is under the 100 ms floor, so suspicion
// comes at 1 + 1 + 4.1199·0.1 = 2.412 s of silence and failure at
// 1 + 1 + 5.2251·0.1 = 2.5225 s, each seen at the next 100 ms tick.
func TestSuspectThenFailedThenRecovered(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	last := s.regular(0, "n1", "a", 1, 30)
	s.expect() // a healthy host raises nothing, not even on its first beat

	v := s.view("n1")
	near(t, "suspect after", v.SuspectAfter.Seconds(), 2.41199, 1e-3)
	near(t, "fail after", v.FailAfter.Seconds(), 2.52251, 1e-3)

	s.advance(last + 10*time.Second)
	s.expect(
		ms(last+2500*time.Millisecond)+" suspect n1/a seq=30",
		ms(last+2600*time.Millisecond)+" failed n1/a seq=30 reason=phi",
	)
	// One tick is one floored deviation: phi jumps from below 8 to about 10.8.
	if got := s.all[1].Phi; got < 8 || got > 11 {
		t.Errorf("failed with phi %g, want 8 to 11", got)
	}

	// The agent comes back in the same incarnation: recovered, not new.
	back := last + 12*time.Second
	s.beat(back, "n1", "a", 31)
	s.expect(ms(back) + " recovered n1/a seq=31")
	// The failed silence is not learnt: the window still says one second.
	near(t, "mean after recovery", s.view("n1").Mean.Seconds(), 1.0, 0.02)
	s.regular(back+time.Second, "n1", "a", 32, 40)
	s.expect()
}

// A short pause of the beacon (between the two thresholds) is a suspicion
// and a recovery, never a failure; a long one is a failure and a recovery in
// the same incarnation.
func TestPausedThenResumedBeacon(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	last := s.regular(0, "n1", "a", 1, 30)

	// Paused for 2.51 s: the tick at 2.5 s is past phi_suspect (2.412 s)
	// but not phi_fail (2.5225 s).
	resume := last + 2510*time.Millisecond
	s.beat(resume, "n1", "a", 31)
	s.expect(
		ms(last+2500*time.Millisecond)+" suspect n1/a seq=30",
		ms(resume)+" recovered n1/a seq=31",
	)

	// Beats resume and the pause stays an outlier; then a 20 s pause.
	last = s.regular(resume+time.Second, "n1", "a", 32, 80)
	s.expect()
	resume = last + 20*time.Second
	s.beat(resume, "n1", "a", 81)
	if len(s.log) != 3 || !strings.Contains(s.log[1], "failed n1/a seq=80") || !strings.Contains(s.log[2], "recovered n1/a seq=81") {
		t.Fatalf("transitions: %q", s.log)
	}
	if s.all[len(s.all)-1].NewIncarnation {
		t.Error("a resumed beacon is the same incarnation")
	}
}

// DESIGN.md: "a new incarnation means the old domains are gone". A restart of
// the agent is reported even when it was too quick to be suspected; the old
// incarnation's late beats are ignored, and the new one starts a fresh window.
func TestNewIncarnation(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	last := s.regular(0, "n1", "a", 1, 30)
	restart := last + 1500*time.Millisecond
	s.beat(restart, "n1", "b", 1)
	s.expect(ms(restart) + " recovered n1/b seq=1 new_incarnation previous=a")
	if v := s.view("n1"); v.Samples != 2 || v.Incarnation != "b" {
		t.Errorf("new incarnation's window: %+v, want the two bootstrap samples", v)
	}

	// A late beat of "a" (it was in flight) changes nothing.
	s.beat(restart+100*time.Millisecond, "n1", "a", 31)
	s.regular(restart+time.Second, "n1", "b", 2, 10)
	s.expect()
	if got := s.tr.Stats().Stale; got != 1 {
		t.Errorf("stale beats = %d, want 1", got)
	}

	// A failed host that comes back as a new incarnation.
	s.advance(restart + 30*time.Second)
	s.log = nil
	s.beat(restart+31*time.Second, "n1", "c", 1)
	s.expect(ms(restart+31*time.Second) + " recovered n1/c seq=1 new_incarnation previous=b")
}

// Reordered and duplicated beats do not cause suspicion: an older or equal
// sequence number is dropped, and arrival statistics only see accepted beats.
func TestReorderingAndDuplicates(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	s.regular(0, "n1", "a", 1, 20)
	at := 20 * time.Second
	for _, seq := range []uint64{21, 23, 22, 24, 24, 25, 25, 27, 26, 28} {
		s.beat(at, "n1", "a", seq)
		at += time.Second
	}
	s.regular(at, "n1", "a", 29, 60)
	s.expect()
	if got := s.tr.Stats().Stale; got != 4 {
		t.Errorf("stale beats = %d, want 4 (22, 24, 25, 26)", got)
	}
	if got := s.tr.Stats().Missing; got != 2 {
		t.Errorf("missing beats = %d, want 2 (22 and 26 were skipped when they were due)", got)
	}
}

// Clock skew between hosts must not matter: the sender's clock is carried but
// never used. The same arrivals with the sender an hour ahead, or a year
// behind, give the same transitions at the same times.
func TestSenderClockSkewIsIgnored(t *testing.T) {
	run := func(skew time.Duration) []string {
		s := newScenario(t, scenarioConfig())
		s.skew = skew
		last := s.regular(0, "n1", "a", 1, 30)
		s.advance(last + 5*time.Second)
		s.beat(last+6*time.Second, "n1", "a", 31)
		return s.log
	}
	want := run(0)
	if len(want) != 3 {
		t.Fatalf("baseline transitions %q, want suspect, failed, recovered", want)
	}
	for _, skew := range []time.Duration{time.Hour, -365 * 24 * time.Hour} {
		if got := run(skew); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("skew %s: %q, want %q", skew, got, want)
		}
	}
}

// max_silence fails a host whatever phi says: here a deviation floor of 5 s
// would put phi_fail at 2 + 5.2251·5 = 28 s of silence.
func TestMaxSilence(t *testing.T) {
	cfg := scenarioConfig()
	cfg.MinStdDev = 5 * time.Second
	s := newScenario(t, cfg)
	last := s.regular(0, "n1", "a", 1, 30)
	s.advance(last + 30*time.Second)
	s.expect(
		ms(last+10*time.Second)+" suspect n1/a seq=30",
		ms(last+10*time.Second)+" failed n1/a seq=30 reason=silence",
	)
}

// A host's own announced interval bootstraps its window: an agent beating
// every 5 s is not suspected after 3 s.
func TestBootstrapFromAnnouncedInterval(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	s.advance(0)
	s.record(s.tr.Beat(Heartbeat{V: 1, Host: "slow", Incarnation: "a", Seq: 1, IntervalMs: 5000}, t0))
	s.advance(4 * time.Second)
	s.expect()
	near(t, "mean", s.view("slow").Mean.Seconds(), 5, 1e-9)
}

// The detector's own blindness is no evidence: when ticks stop (the process
// was stopped, starved, or cut off from NATS and the monitor skipped them),
// the time without ticks does not count as anyone's silence.
func TestStalledDetectorDoesNotAccuse(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	last := s.regular(0, "n1", "a", 1, 30)
	// No tick for 8 s; then the beats queued meanwhile arrive.
	s.tick(last + 8*time.Second)
	s.now = last + 8*time.Second
	s.beat(last+8*time.Second+10*time.Millisecond, "n1", "a", 31)
	s.regular(last+9*time.Second, "n1", "a", 32, 40)
	s.expect()
	if got := s.tr.Stats().Stalls; got != 1 {
		t.Errorf("stalls = %d, want 1", got)
	}
	// And a real death after the stall is still found.
	s.advance(last + 9*time.Second + 8*time.Second + 5*time.Second)
	if len(s.log) != 2 {
		t.Errorf("after the stall: %q, want suspect and failed", s.log)
	}
}

// Several detectors: the same transitions get the same ids, different ones
// different ids (suspect, recover, suspect again in one incarnation).
func TestTransitionIDs(t *testing.T) {
	a, b := newScenario(t, scenarioConfig()), newScenario(t, scenarioConfig())
	b.delay = 30 * time.Millisecond
	for _, s := range []*scenario{a, b} {
		last := s.regular(0, "n1", "a", 1, 30)
		s.beat(last+2510*time.Millisecond, "n1", "a", 31) // suspected, recovered
		last = s.regular(last+3510*time.Millisecond, "n1", "a", 32, 50)
		s.advance(last + 5*time.Second) // suspected, failed
	}
	// b received every beat 30 ms later than a: the ids do not depend on it.
	ids := func(s *scenario) []string {
		var out []string
		for _, tr := range s.all {
			out = append(out, tr.ID())
		}
		return out
	}
	want := []string{
		"node.suspect/n1/a/30", "node.recovered/n1/a/31",
		"node.suspect/n1/a/50", "node.failed/n1/a/50",
	}
	if got := ids(a); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ids %q, want %q", got, want)
	}
	if strings.Join(ids(a), " ") != strings.Join(ids(b), " ") {
		t.Errorf("detectors disagree: %q vs %q", ids(a), ids(b))
	}
}

// Every transition is a valid event of its type (the schema checks it).
func TestTransitionEventsAreValid(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	last := s.regular(0, "n1.example.org", "a", 1, 30)
	s.advance(last + 5*time.Second)
	s.beat(last+6*time.Second, "n1.example.org", "b", 1)
	if len(s.all) != 3 {
		t.Fatalf("transitions %q", s.log)
	}
	wantTypes := []events.Type{events.TypeNodeSuspect, events.TypeNodeFailed, events.TypeNodeRecovered}
	for i, tr := range s.all {
		ev, err := tr.Event("det-1")
		if err != nil {
			t.Fatalf("%s: %v", tr.Kind, err)
		}
		b, err := events.Encode(ev)
		if err != nil {
			t.Fatalf("%s: %v", tr.Kind, err)
		}
		got, err := events.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", tr.Kind, err)
		}
		if got.Type != wantTypes[i] || got.ID != tr.ID() || got.Subject != "host/n1.example.org" {
			t.Errorf("event %+v", got)
		}
	}
	f, _ := events.DataAs[events.NodeFailed](mustEvent(t, s.all[1]))
	if f.Detector != "det-1" || f.LastSeq != 30 || f.Reason != events.FailedByPhi || !f.LastBeat.Equal(t0.Add(last)) || math.IsInf(f.Phi, 0) {
		t.Errorf("node.failed data %+v", f)
	}
	r, _ := events.DataAs[events.NodeRecovered](mustEvent(t, s.all[2]))
	if !r.NewIncarnation || r.PreviousIncarnation != "a" || r.Incarnation != "b" {
		t.Errorf("node.recovered data %+v", r)
	}
}

func mustEvent(t *testing.T, tr Transition) events.Event {
	t.Helper()
	ev, err := tr.Event("det-1")
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// Counts follow the state of every host.
func TestCounts(t *testing.T) {
	s := newScenario(t, scenarioConfig())
	s.regular(0, "n1", "a", 1, 10)
	s.regular(10*time.Second, "n2", "a", 1, 10)
	s.advance(30 * time.Second)
	if h, sus, f := s.tr.Counts(); h != 2 || sus != 0 || f != 2 {
		t.Errorf("counts %d %d %d, want 2 hosts, 0 suspect, 2 failed", h, sus, f)
	}
	s.beat(31*time.Second, "n1", "a", 11)
	if h, sus, f := s.tr.Counts(); h != 2 || sus != 0 || f != 1 {
		t.Errorf("counts %d %d %d, want 2 hosts, 0 suspect, 1 failed", h, sus, f)
	}
}
