package detector

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// reply delivers, at at (ticking up to it first), a reply to the probe sent
// at probed, and returns whether the tracker counted it.
func (s *scenario) reply(at, probed time.Duration, host, inc string, seq uint64) bool {
	s.advance(at)
	return s.tr.ProbeReply(ProbeReply{V: ProbeVersion, Host: host, Incarnation: inc, Seq: seq}, t0.Add(probed))
}

// With scenarioConfig (1 s beats, pause 1 s, 100 ms ticks) a silent host's
// failure deadline is 2.5225 s after its last beat, so probing starts
// probe_lead (1 s) before it, at 1.5225 s (the tick at 1.6 s), and repeats
// every 250 ms, each seen at the next tick: 1.6, 1.9, 2.2, 2.5 s.
func probeScenario(t *testing.T) *scenario {
	s := newScenario(t, scenarioConfig())
	s.logProbes = true
	return s
}

// Two consecutive lost beats look like a death until the third interval;
// the host's answer to the first probe is evidence of life, so it is never
// suspected, and the reply is not an inter-arrival sample.
func TestDoubleBeatLossAnsweredIsNoFailure(t *testing.T) {
	s := probeScenario(t)
	last := s.regular(0, "n1", "a", 1, 30)
	s.expect()
	samples := s.view("n1").Samples

	// Beats 31 and 32 are lost; the beacon had sent 31 when the probe came.
	if !s.reply(last+1650*time.Millisecond, last+1600*time.Millisecond, "n1", "a", 31) {
		t.Fatal("reply of the watched incarnation not counted")
	}
	s.regular(last+3*time.Second, "n1", "a", 33, 40)
	s.expect(ms(last+1600*time.Millisecond) + " probe n1/a seq=30")

	v := s.view("n1")
	if v.Samples != samples+8 || v.Status != "alive" {
		t.Errorf("window has %d samples (was %d), status %s: want 8 more (the 3 s gap and 7 beats), alive", v.Samples, samples, v.Status)
	}
	if st := s.tr.Stats(); st.Probes != 1 || st.ProbeReplies != 1 || st.Missing != 2 {
		t.Errorf("stats %+v, want 1 probe, 1 reply, 2 missing beats", st)
	}
}

// A dead host never answers: it is suspected and failed exactly when it
// would be without probing, and probing stops once it is failed.
func TestDeadHostUnansweredFailsAsWithoutProbes(t *testing.T) {
	run := func(cfg Config) (*scenario, time.Duration) {
		s := newScenario(t, cfg)
		last := s.regular(0, "n1", "a", 1, 30)
		s.advance(last + 20*time.Second)
		return s, last
	}
	off := scenarioConfig()
	off.ProbeInterval = 0
	plain, _ := run(off)
	probed, last := run(scenarioConfig())
	if got, want := strings.Join(probed.log, "\n"), strings.Join(plain.log, "\n"); got != want || len(probed.log) != 2 {
		t.Errorf("with probes:\n%s\nwithout:\n%s\nwant the same suspect and failed", got, want)
	}
	if len(plain.probes) != 0 {
		t.Errorf("probing off asked for %d probes", len(plain.probes))
	}
	var at []string
	for _, p := range probed.probes {
		at = append(at, p.At.Sub(t0.Add(last)).String())
	}
	if got := strings.Join(at, " "); got != "1.6s 1.9s 2.2s 2.5s" {
		t.Errorf("probes at %s after the last beat, want 1.6s 1.9s 2.2s 2.5s (none once failed)", got)
	}
	if !strings.Contains(probed.log[1], ms(last+2600*time.Millisecond)+" failed") {
		t.Errorf("failed: %q, want at +2.6s", probed.log[1])
	}
}

// Only the watched incarnation's answer counts: not the previous agent's
// (late), not the next one's (it restarted: its first beat is on the way,
// and the domains of the watched one are gone), not an answer older than
// the last beat, not an unknown host; and a failed host comes back only by
// beating.
func TestProbeRepliesThatDoNotCount(t *testing.T) {
	s := probeScenario(t)
	last := s.regular(0, "n1", "a", 1, 30)
	for _, r := range []struct {
		host, inc string
		seq       uint64
	}{
		{"n1", "b", 1},   // the next incarnation
		{"n1", "old", 9}, // an earlier one
		{"n1", "a", 29},  // older than beat 30
		{"n2", "a", 31},  // never seen
	} {
		if s.reply(last+1700*time.Millisecond, last+1600*time.Millisecond, r.host, r.inc, r.seq) {
			t.Errorf("reply %+v counted", r)
		}
	}
	s.advance(last + 2700*time.Millisecond)
	if s.reply(last+2700*time.Millisecond, last+2500*time.Millisecond, "n1", "a", 31) {
		t.Error("a failed host's reply counted")
	}
	s.advance(last + 10*time.Second)
	s.expect(
		ms(last+1600*time.Millisecond)+" probe n1/a seq=30",
		ms(last+1900*time.Millisecond)+" probe n1/a seq=30",
		ms(last+2200*time.Millisecond)+" probe n1/a seq=30",
		ms(last+2500*time.Millisecond)+" suspect n1/a seq=30",
		ms(last+2500*time.Millisecond)+" probe n1/a seq=30",
		ms(last+2600*time.Millisecond)+" failed n1/a seq=30 reason=phi",
	)
	if st := s.tr.Stats(); st.ProbeReplies != 0 || st.ProbeRepliesIgnored != 5 {
		t.Errorf("stats %+v, want 0 replies counted, 5 ignored", st)
	}
}

// Probes and replies cross the same lossy network as beats. Losing the
// first two is harmless when a later one is answered before the failure
// deadline; an answer after the deadline is too late.
func TestLostProbeReplies(t *testing.T) {
	s := probeScenario(t)
	last := s.regular(0, "n1", "a", 1, 30)
	// Replies to 1.6 and 1.9 lost; the one to 2.2 arrives at 2.45, before
	// the suspicion (2.412 s, seen at the 2.5 s tick).
	s.reply(last+2450*time.Millisecond, last+2200*time.Millisecond, "n1", "a", 31)
	s.regular(last+3*time.Second, "n1", "a", 33, 40)
	s.expect(
		ms(last+1600*time.Millisecond)+" probe n1/a seq=30",
		ms(last+1900*time.Millisecond)+" probe n1/a seq=30",
		ms(last+2200*time.Millisecond)+" probe n1/a seq=30",
	)

	// Every reply lost until after the deadline.
	s2 := probeScenario(t)
	last = s2.regular(0, "n1", "a", 1, 30)
	if s2.reply(last+2650*time.Millisecond, last+2500*time.Millisecond, "n1", "a", 31) {
		t.Error("a reply after the failure counted")
	}
	s2.beat(last+3*time.Second, "n1", "a", 33)
	if n := len(s2.log); n != 7 || !strings.Contains(s2.log[5], "failed") || !strings.Contains(s2.log[6], "recovered") {
		t.Errorf("transitions %q, want four probes, suspect, failed, then recovered by the beat", s2.log)
	}
}

// A host that answers but does not beat (its beats are lost somewhere, it is
// alive and reaches the bus): suspected once it has not beaten for
// max_silence, never failed while it answers, recovered by its next beat.
func TestAnsweringHostWithoutBeatsIsSuspectedNeverFailed(t *testing.T) {
	s := probeScenario(t)
	last := s.regular(0, "n1", "a", 1, 30)
	seq := uint64(30)
	for at := last; at < last+30*time.Second; at += 10 * time.Millisecond {
		s.advance(at)
		for _, p := range s.probes {
			if p.At == t0.Add(at) {
				seq++ // the beacon keeps beating; its beats are lost
				s.reply(at+10*time.Millisecond, at, "n1", "a", seq)
			}
		}
	}
	var trans []string
	for _, l := range s.log {
		if !strings.Contains(l, " probe ") {
			trans = append(trans, l)
		}
	}
	if want := ms(last+10*time.Second) + " suspect n1/a seq=30"; strings.Join(trans, "\n") != want {
		t.Errorf("transitions %q, want only %q", trans, want)
	}
	if n := len(s.probes); n < 15 || n > 25 {
		t.Errorf("%d probes in 30 s, want one about every 1.6 s (probe_lead before each new deadline)", n)
	}
	s.log = nil
	back := last + 30*time.Second
	s.beat(back, "n1", "a", seq+1)
	s.expect(fmt.Sprintf("%s recovered n1/a seq=%d", ms(back), seq+1))
}

func TestDecodeProbeReply(t *testing.T) {
	good, err := EncodeProbeReply(ProbeReply{Host: "n1", Incarnation: "abc", Seq: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := DecodeProbeReply(good); err != nil || r != (ProbeReply{V: 1, Host: "n1", Incarnation: "abc", Seq: 7}) {
		t.Errorf("DecodeProbeReply(%s) = %+v, %v", good, r, err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"v":2,"host":"n1","incarnation":"a"}`,
		`{"v":1,"host":"-x","incarnation":"a"}`, `{"v":1,"host":"n1","incarnation":""}`,
		`{"v":1,"host":"n1","incarnation":"a","seq":-1}`, strings.Repeat(" ", 5000) + `{}`,
	} {
		if _, err := DecodeProbeReply([]byte(bad)); !errors.Is(err, ErrBadProbeReply) {
			t.Errorf("DecodeProbeReply(%.40q) error %v, want ErrBadProbeReply", bad, err)
		}
	}
}

func FuzzDecodeProbeReply(f *testing.F) {
	f.Add([]byte(`{"v":1,"host":"n1","incarnation":"abc","seq":7}`))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeProbeReply(b)
		if err == nil && (!ValidName(r.Host) || r.Incarnation == "" || r.V != ProbeVersion) {
			t.Errorf("accepted %+v", r)
		}
	})
}
