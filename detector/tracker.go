package detector

import (
	"fmt"
	"math"
	"time"

	"github.com/xenft/xenft/events"
)

// This file is the decision core: a pure state machine per host, driven by
// three inputs, Beat(heartbeat, receive time), ProbeReply(reply, receive
// time) and Tick(now). It holds no clock, starts no goroutine, does no I/O
// and does not log; the Monitor feeds it from NATS and a ticker, the QoS
// benchmark from a simulated clock. Its outputs are data: Transitions (the
// Monitor publishes them as events) and Probes (the Monitor sends them, see
// probe.go).

// Kind is the kind of a host's transition.
type Kind int

// Transitions a Tracker reports, one event type each.
const (
	KindSuspect   Kind = iota + 1 // node.suspect: phi crossed phi_suspect
	KindFailed                    // node.failed: phi crossed phi_fail, or max_silence passed
	KindRecovered                 // node.recovered: beats came back, or a new incarnation began
)

func (k Kind) String() string {
	switch k {
	case KindSuspect:
		return "suspect"
	case KindFailed:
		return "failed"
	case KindRecovered:
		return "recovered"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Transition is one change of a host's state, as data: the Monitor turns it
// into an event (Event), the benchmark into statistics.
type Transition struct {
	Kind        Kind
	Host        string
	Incarnation string
	// PreviousIncarnation and NewIncarnation are set on a KindRecovered that
	// a new incarnation caused: the agent restarted, its old domains are gone.
	PreviousIncarnation string
	NewIncarnation      bool
	// Phi at At (KindSuspect, KindFailed).
	Phi float64
	// Reason of KindFailed: events.FailedByPhi or events.FailedBySilence.
	Reason string
	// LastBeat is when this detector received the host's last beat (its own
	// clock: the sender's is never trusted) and LastSeq that beat's number.
	// For KindRecovered they are the beat that brought the host back.
	LastBeat time.Time
	LastSeq  uint64
	// At is when the tracker decided: the tick's or the beat's time.
	At time.Time
}

// host states
type status int

const (
	alive status = iota
	suspect
	failed
)

// retiredMax bounds how many past incarnations of a host are remembered to
// drop their late beats.
const retiredMax = 8

// hostState is everything the tracker knows of one host.
type hostState struct {
	idx     int // in Tracker.order and Tracker.due
	host    string
	inc     string
	retired []string // previous incarnations, oldest first
	status  status
	lastSeq uint64
	// lastArrival is when the last accepted beat was received; the next
	// inter-arrival time is measured from it.
	lastArrival time.Time
	// silentSince is when the current silence began as this detector saw it:
	// lastArrival, moved forward over periods the detector itself was blind
	// and to the receipt of a probe reply (the host answered, so it was
	// alive then). beatSilentSince is the same without the replies: how
	// long the host has not beaten.
	silentSince, beatSilentSince time.Time
	// skipInterval: the next inter-arrival time spans a blind period and is
	// not a sample of the network.
	skipInterval bool
	window       *Window
	est          Estimate
	// Deadlines precomputed at each beat: phi is a function of the silence
	// only, so the tick compares times and computes phi only on a crossing.
	suspectAt, failAt, silenceAt time.Time
	// quietAt is max_silence after the last beat: a host that answers
	// probes but has not beaten for that long is suspected (something is
	// wrong with its beats), never failed while it answers.
	quietAt time.Time
	// probeAt is when the host is next probed (probing enabled, not
	// failed): probe_lead before its failure deadline, or at suspicion if
	// that comes first, then every probe_interval while the silence lasts.
	probeAt time.Time
}

// TrackerStats counts what the tracker ignored or noticed.
type TrackerStats struct {
	// Stale beats: a duplicate, an older sequence number than the host's
	// latest (reordering), or a retired incarnation.
	Stale uint64
	// Missing beats: sequence numbers skipped within an incarnation (lost on
	// the way; a reordered beat counts here, then as stale when it comes).
	Missing uint64
	// Stalls: ticks that came too late; the time between was treated as
	// blind (the detector was paused, starved, or cut off from NATS).
	Stalls uint64
	// Probes the tracker asked for (Tick's second result).
	Probes uint64
	// ProbeReplies that counted as evidence of life, and those that did
	// not: an unknown host, another incarnation, a host already failed, or
	// an answer older than the last beat.
	ProbeReplies, ProbeRepliesIgnored uint64
}

// Tracker is the per-host phi-accrual state machine. Make one with
// NewTracker; it is not safe for concurrent use: one goroutine owns it.
type Tracker struct {
	cfg             Config
	ySuspect, yFail float64
	stallAfter      time.Duration
	hosts           map[string]*hostState
	order           []*hostState // first-seen order, so output is deterministic
	// due[i] is when order[i] next needs a look, relative to epoch: its
	// suspect or silence deadline, its fail or silence deadline once
	// suspected, never once failed. A tick scans this dense slice instead
	// of chasing 10,000 pointers.
	due              []time.Duration
	epoch            time.Time
	lastTick         time.Time
	stats            TrackerStats
	suspects, failed int
	probing          bool
}

// NewTracker returns a tracker for a valid configuration.
func NewTracker(cfg Config) (*Tracker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate("detector"); err != nil {
		return nil, err
	}
	return &Tracker{
		cfg:      cfg,
		ySuspect: InverseY(cfg.PhiSuspect),
		yFail:    InverseY(cfg.PhiFail),
		// A tick five periods (and at least half a second) late means the
		// detector did not look for a while; silences it did not watch must
		// not count against hosts.
		stallAfter: max(5*cfg.Tick, 500*time.Millisecond),
		hosts:      map[string]*hostState{},
		probing:    cfg.ProbeInterval > 0,
	}, nil
}

// Beat feeds one decoded heartbeat received at at (the detector's clock).
// It returns the transition the beat causes, if any: KindRecovered when a
// suspected or failed host beats again or when a new incarnation appears. The
// first beat of a host the tracker never saw causes none.
func (t *Tracker) Beat(hb Heartbeat, at time.Time) []Transition {
	if t.epoch.IsZero() {
		t.epoch = at
	}
	h := t.hosts[hb.Host]
	if h == nil {
		h = &hostState{host: hb.Host, idx: len(t.order)}
		t.hosts[hb.Host] = h
		t.order = append(t.order, h)
		t.due = append(t.due, 0)
		t.restart(h, hb, at)
		return nil
	}
	if hb.Incarnation != h.inc {
		for _, r := range h.retired {
			if r == hb.Incarnation {
				t.stats.Stale++ // a late beat of an agent that has restarted since
				return nil
			}
		}
		prev := h.inc
		h.retired = append(h.retired, prev)
		if len(h.retired) > retiredMax {
			h.retired = h.retired[1:]
		}
		t.setStatus(h, alive)
		t.restart(h, hb, at)
		return []Transition{{
			Kind: KindRecovered, Host: h.host, Incarnation: h.inc,
			PreviousIncarnation: prev, NewIncarnation: true,
			LastBeat: at, LastSeq: hb.Seq, At: at,
		}}
	}
	if hb.Seq <= h.lastSeq {
		t.stats.Stale++ // duplicate or overtaken: a newer beat already spoke
		return nil
	}
	t.stats.Missing += hb.Seq - h.lastSeq - 1
	// As Akka does, a silence that was declared a failure is not a sample of
	// the network: it would teach the window that hosts die.
	if d := at.Sub(h.lastArrival); d > 0 && !h.skipInterval && h.status != failed {
		h.window.Add(d.Seconds())
		h.est = h.window.Estimate(t.cfg.AcceptablePause, t.cfg.MinStdDev)
	}
	was := h.status
	h.lastSeq, h.lastArrival, h.silentSince, h.beatSilentSince, h.skipInterval = hb.Seq, at, at, at, false
	t.setStatus(h, alive)
	t.deadlines(h)
	if was == alive {
		return nil
	}
	return []Transition{{
		Kind: KindRecovered, Host: h.host, Incarnation: h.inc,
		LastBeat: at, LastSeq: hb.Seq, At: at,
	}}
}

// restart begins a new incarnation of h with a fresh window: the new agent may
// beat at another interval, and the old one's history says nothing of it.
func (t *Tracker) restart(h *hostState, hb Heartbeat, at time.Time) {
	expected := t.cfg.ExpectedInterval
	if hb.IntervalMs > 0 {
		expected = time.Duration(hb.IntervalMs) * time.Millisecond
	}
	h.inc, h.lastSeq = hb.Incarnation, hb.Seq
	h.lastArrival, h.silentSince, h.beatSilentSince, h.skipInterval = at, at, at, false
	h.window = NewWindow(t.cfg.WindowSize, expected)
	h.est = h.window.Estimate(t.cfg.AcceptablePause, t.cfg.MinStdDev)
	t.deadlines(h)
}

func (t *Tracker) deadlines(h *hostState) {
	h.suspectAt = h.silentSince.Add(seconds(h.est.After(t.ySuspect)))
	h.failAt = h.silentSince.Add(seconds(h.est.After(t.yFail)))
	h.silenceAt = h.silentSince.Add(t.cfg.MaxSilence)
	h.quietAt = h.beatSilentSince.Add(t.cfg.MaxSilence)
	if t.probing {
		// Early enough that several probes, each a round trip over the
		// same network as the beats, can be answered before the failure
		// deadline; and never later than the suspicion.
		h.probeAt = earliest(h.suspectAt, earliest(h.failAt, h.silenceAt).Add(-t.cfg.ProbeLead))
	}
	t.refreshDue(h)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// statusDue is when h's state next changes if the silence lasts: its
// suspicion, then its failure (max_silence may come first).
func (h *hostState) statusDue() time.Time {
	if h.status == suspect {
		return earliest(h.failAt, h.silenceAt)
	}
	return earliest(earliest(h.suspectAt, h.silenceAt), h.quietAt)
}

func (t *Tracker) refreshDue(h *hostState) {
	if h.status == failed {
		t.due[h.idx] = math.MaxInt64
		return
	}
	next := h.statusDue()
	if t.probing {
		next = earliest(next, h.probeAt)
	}
	t.due[h.idx] = next.Sub(t.epoch)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (t *Tracker) setStatus(h *hostState, s status) {
	count := func(s status, d int) {
		switch s {
		case suspect:
			t.suspects += d
		case failed:
			t.failed += d
		}
	}
	count(h.status, -1)
	count(s, +1)
	h.status = s
	t.refreshDue(h)
}

// Tick evaluates every host's silence at now and returns the transitions:
// KindSuspect when phi reaches phi_suspect, KindFailed when it reaches
// phi_fail or the silence reaches max_silence (always after a KindSuspect, in
// the same call if need be). With probing enabled it also returns the probes
// due: a host whose silence is within probe_lead of its failure deadline (or
// that is suspected) is probed, then again every probe_interval until it
// beats, answers or fails. A tick that comes more than five ticks (and half
// a second) after the previous one decides nothing: the time between is
// treated as blind and every silence is moved forward by it.
func (t *Tracker) Tick(now time.Time) ([]Transition, []Probe) {
	if !t.lastTick.IsZero() {
		if gap := now.Sub(t.lastTick); gap > t.stallAfter {
			t.blind(gap - t.cfg.Tick)
			t.lastTick = now
			return nil, nil
		}
	}
	t.lastTick = now
	if t.epoch.IsZero() {
		t.epoch = now
	}
	rel := now.Sub(t.epoch)
	var out []Transition
	var probes []Probe
	for i, due := range t.due {
		if rel < due {
			continue
		}
		h := t.order[i]
		if !now.Before(h.statusDue()) {
			out = t.judge(h, now, out)
		}
		if t.probing && h.status != failed && !now.Before(h.probeAt) {
			probes = append(probes, Probe{Host: h.host, Incarnation: h.inc, LastSeq: h.lastSeq, At: now})
			t.stats.Probes++
			h.probeAt = now.Add(t.cfg.ProbeInterval)
		}
		t.refreshDue(h)
	}
	return out, probes
}

// judge moves h, whose silence passed a deadline at now, to suspect and, if
// it passed the failure deadline too, to failed; it appends what changed.
func (t *Tracker) judge(h *hostState, now time.Time, out []Transition) []Transition {
	phi := h.est.Phi(now.Sub(h.silentSince).Seconds())
	tr := Transition{Host: h.host, Incarnation: h.inc, Phi: phi, LastBeat: h.lastArrival, LastSeq: h.lastSeq, At: now}
	if h.status == alive {
		t.setStatus(h, suspect)
		tr.Kind = KindSuspect
		out = append(out, tr)
	}
	switch {
	case !now.Before(h.failAt):
		tr.Kind, tr.Reason = KindFailed, events.FailedByPhi
	case !now.Before(h.silenceAt):
		tr.Kind, tr.Reason = KindFailed, events.FailedBySilence
	default:
		return out
	}
	t.setStatus(h, failed)
	return append(out, tr)
}

// blind moves every watched silence forward by d: the detector was not
// looking, so that time is no evidence against anyone.
func (t *Tracker) blind(d time.Duration) {
	t.stats.Stalls++
	for _, h := range t.order {
		if h.status == failed {
			continue
		}
		h.silentSince = h.silentSince.Add(d)
		h.beatSilentSince = h.beatSilentSince.Add(d)
		h.skipInterval = true
		t.deadlines(h)
	}
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() TrackerStats { return t.stats }

// Counts returns how many hosts are tracked, suspected and failed now.
func (t *Tracker) Counts() (hosts, suspects, failed int) {
	return len(t.order), t.suspects, t.failed
}

// HostView is what the tracker knows of one host, for status displays and
// tests.
type HostView struct {
	Host, Incarnation string
	Status            string // "alive", "suspect" or "failed"
	LastSeq           uint64
	LastBeat          time.Time
	Mean, StdDev      time.Duration // of the window (before pause and floor)
	Samples           int
	SuspectAfter      time.Duration // silence at which phi reaches phi_suspect
	FailAfter         time.Duration // silence at which phi reaches phi_fail
}

// Host returns the view of one host, or false if the tracker never saw it.
func (t *Tracker) Host(name string) (HostView, bool) {
	h := t.hosts[name]
	if h == nil {
		return HostView{}, false
	}
	return HostView{
		Host: h.host, Incarnation: h.inc,
		Status:  [...]string{"alive", "suspect", "failed"}[h.status],
		LastSeq: h.lastSeq, LastBeat: h.lastArrival,
		Mean: seconds(h.window.Mean()), StdDev: seconds(h.window.StdDev()), Samples: h.window.Len(),
		SuspectAfter: seconds(h.est.After(t.ySuspect)), FailAfter: seconds(h.est.After(t.yFail)),
	}, true
}

// Phi is host's suspicion level at now (0 for a host never seen, +Inf is
// never returned).
func (t *Tracker) Phi(host string, now time.Time) float64 {
	h := t.hosts[host]
	if h == nil {
		return 0
	}
	return h.est.Phi(now.Sub(h.silentSince).Seconds())
}
