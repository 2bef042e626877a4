package main

import (
	"container/heap"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/xenft/xenft/detector"
)

// The QoS benchmark: N simulated beacons beat on a simulated clock through a
// lossy, jittery network into the detector's pure core (detector.Tracker)
// with probing as configured and, on the very same arrivals and ticks, into
// the same core with probing off and into a plain fixed-timeout detector.
// The probing core's probes cross the same network as the beats, each way
// (delayed by U[0, jitter], lost with the same probability); a live host
// answers with its incarnation and latest seq, a killed one never does, and
// a reply later than probe_timeout is dropped, as the Monitor drops it.
// Probe traffic draws from its own random stream, so the beats, kills and
// restarts are the same whether probing is on or off. K hosts are killed at
// random times and restart (as a new incarnation) a while later. Metrics follow Chen, Toueg and Aguilera, "On
// the Quality of Service of Failure Detectors" (2002): detection time T_D
// (kill -> node.failed), mistake rate (false suspicions and false failures
// per host-hour), mistake duration T_M and query accuracy probability P_A.

type qosConfig struct {
	hosts    int
	interval time.Duration
	jitter   time.Duration // each beat is delayed by U[0, jitter]
	loss     float64       // each beat is lost with this probability
	kills    int
	restart  time.Duration // a killed host's agent starts again after this
	uptime   time.Duration // kills pick hosts whose agent has run at least this long
	duration time.Duration // simulated
	seed     uint64
	det      detector.Config
	fixedK   int // the fixed detector fails a host after fixedK intervals of silence
}

// result is one detector's figures.
type result struct {
	detect          []time.Duration // per kill: kill -> failed
	alreadyFailed   int             // kills of a host the detector already held failed
	missed          int             // kills never detected before the restart
	falseSuspicions int
	falseFailures   int
	mistakeTime     time.Duration // total time an alive host was held suspect or failed
	mistakes        int           // false suspicions that ended (for T_M)
}

// view is one detector's opinion of one host.
type view struct {
	state      int // 0 alive, 1 suspect, 2 failed
	wrongSince time.Duration
	wrong      bool
}

type simHost struct {
	name       string
	alive      bool
	inc        int
	seq        uint64
	killedAt   time.Duration
	startedAt  time.Duration
	deadTotal  time.Duration
	phi, fixed view
	plain      view // the core without probes
}

type evKind int

const (
	evSend evKind = iota
	evArrive
	evKill
	evRestart
	evProbeArrive // a probe reaches its host
	evReplyArrive // a host's reply reaches the detector
)

type simEvent struct {
	at   time.Duration
	n    uint64 // insertion order: ties resolve deterministically
	kind evKind
	host int
	inc  int
	seq  uint64
	sent time.Duration // evProbeArrive, evReplyArrive: when the probe left the detector
}

type eventHeap []simEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].n < h[j].n
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// fixedDetector fails a host after a fixed silence; it has one threshold, so
// its suspicion and its failure are the same moment.
type fixedDetector struct {
	timeout time.Duration
	last    []time.Duration
	failed  []bool
}

type sim struct {
	cfg    qosConfig
	rng    *rand.Rand
	netRng *rand.Rand // probes' and replies' delays and losses
	t0     time.Time
	q      eventHeap
	n      uint64
	hosts  []*simHost
	index  map[string]int
	core   *detector.Tracker
	plain  *detector.Tracker
	fixed  fixedDetector
	phiR   result
	plainR result
	fixR   result
	probes probeCounts

	skippedKills int
}

// probeCounts is the probe traffic of the probing core.
type probeCounts struct {
	sent, lost, toDead, answered, late, counted int
}

func (s *sim) push(e simEvent) {
	s.n++
	e.n = s.n
	heap.Push(&s.q, e)
}

// qosRun is what one run measured.
type qosRun struct {
	phi, plain, fixed result
	probes            probeCounts
	hostHours         float64
	kills             int
}

func runQoS(cfg qosConfig) (qosRun, error) {
	core, err := detector.NewTracker(cfg.det)
	if err != nil {
		return qosRun{}, err
	}
	noProbes := cfg.det
	noProbes.ProbeInterval = 0
	plain, err := detector.NewTracker(noProbes)
	if err != nil {
		return qosRun{}, err
	}
	s := &sim{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(cfg.seed, 0x9e3779b97f4a7c15)),
		netRng: rand.New(rand.NewPCG(cfg.seed, 0x2545f4914f6cdd1d)),
		t0:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		core:   core,
		plain:  plain,
		index:  map[string]int{},
		fixed: fixedDetector{
			timeout: time.Duration(cfg.fixedK) * cfg.interval,
			last:    make([]time.Duration, cfg.hosts),
			failed:  make([]bool, cfg.hosts),
		},
	}
	for i := range cfg.hosts {
		s.hosts = append(s.hosts, &simHost{name: fmt.Sprintf("h%05d", i), alive: true})
		s.index[s.hosts[i].name] = i
		// Hosts start at random phases within the first interval.
		s.push(simEvent{at: time.Duration(s.rng.Int64N(int64(cfg.interval))), kind: evSend, host: i})
	}
	// Kills at uniform random times, after the warm-up and early enough
	// that the restart and a minute more fit in the run.
	lo, hi := max(time.Minute, cfg.uptime), cfg.duration-cfg.restart-time.Minute
	if hi <= lo {
		return qosRun{}, fmt.Errorf("duration %s too short for kills with restart %s", cfg.duration, cfg.restart)
	}
	for range cfg.kills {
		s.push(simEvent{at: lo + time.Duration(s.rng.Int64N(int64(hi-lo))), kind: evKill, host: -1})
	}

	tick := cfg.det.Tick
	nextTick := tick
	for {
		// Ticks interleave with events; an event at the tick's instant goes
		// first, as a beat received just before a tick would.
		if s.q.Len() == 0 || s.q[0].at > nextTick {
			if nextTick > cfg.duration {
				break
			}
			s.tick(nextTick)
			nextTick += tick
			continue
		}
		e := heap.Pop(&s.q).(simEvent)
		if e.at > cfg.duration {
			break
		}
		s.handle(e)
	}
	total := time.Duration(cfg.hosts) * cfg.duration
	for _, h := range s.hosts {
		total -= h.deadTotal
		if !h.alive {
			total -= cfg.duration - h.killedAt
		}
	}
	return qosRun{phi: s.phiR, plain: s.plainR, fixed: s.fixR, probes: s.probes,
		hostHours: total.Hours(), kills: cfg.kills - s.skippedKills}, nil
}

func (s *sim) handle(e simEvent) {
	cfg := s.cfg
	switch e.kind {
	case evSend:
		h := s.hosts[e.host]
		if !h.alive || e.inc != h.inc {
			return // the agent is dead, or this schedule belonged to its previous run
		}
		h.seq++
		if s.rng.Float64() >= cfg.loss {
			delay := time.Duration(s.rng.Int64N(int64(cfg.jitter) + 1))
			s.push(simEvent{at: e.at + delay, kind: evArrive, host: e.host, inc: h.inc, seq: h.seq})
		}
		s.push(simEvent{at: e.at + cfg.interval, kind: evSend, host: e.host, inc: h.inc})
	case evArrive:
		h := s.hosts[e.host]
		// The sender's clock is off by up to an hour per host: the detector
		// must not care.
		skew := time.Duration(e.host%7-3) * 20 * time.Minute
		hb := detector.Heartbeat{V: 1, Host: h.name, Incarnation: fmt.Sprintf("inc%d", e.inc), Seq: e.seq,
			Sent: s.t0.Add(e.at + skew), IntervalMs: cfg.interval.Milliseconds()}
		for _, tr := range s.core.Beat(hb, s.t0.Add(e.at)) {
			s.observe(tr, e.at, func(h *simHost) *view { return &h.phi }, &s.phiR)
		}
		for _, tr := range s.plain.Beat(hb, s.t0.Add(e.at)) {
			s.observe(tr, e.at, func(h *simHost) *view { return &h.plain }, &s.plainR)
		}
		s.fixed.last[e.host] = e.at
		if s.fixed.failed[e.host] {
			s.fixed.failed[e.host] = false
			s.recover(&h.fixed, &s.fixR, e.at)
		}
	case evKill:
		// A random host whose agent has run for a while: a fresh agent's
		// window is still bootstrapping (see docs/detectors.md).
		var up []int
		for i, h := range s.hosts {
			if h.alive && e.at-h.startedAt >= cfg.uptime {
				up = append(up, i)
			}
		}
		if len(up) == 0 {
			s.skippedKills++
			return
		}
		i := up[s.rng.IntN(len(up))]
		h := s.hosts[i]
		h.alive, h.killedAt = false, e.at
		for _, v := range []struct {
			v *view
			r *result
		}{{&h.phi, &s.phiR}, {&h.plain, &s.plainR}, {&h.fixed, &s.fixR}} {
			s.endMistake(v.v, v.r, e.at) // from now on a suspicion is right
			if v.v.state == 2 {
				v.r.alreadyFailed++
				v.r.detect = append(v.r.detect, 0)
			}
		}
		s.push(simEvent{at: e.at + cfg.restart, kind: evRestart, host: i})
	case evRestart:
		h := s.hosts[e.host]
		for _, v := range []struct {
			v *view
			r *result
		}{{&h.phi, &s.phiR}, {&h.plain, &s.plainR}, {&h.fixed, &s.fixR}} {
			if v.v.state != 2 {
				v.r.missed++
			}
		}
		h.deadTotal += e.at - h.killedAt
		h.alive, h.inc, h.seq, h.startedAt = true, h.inc+1, 0, e.at
		s.push(simEvent{at: e.at + time.Duration(s.rng.Int64N(int64(cfg.interval))), kind: evSend, host: e.host, inc: h.inc})
	case evProbeArrive:
		h := s.hosts[e.host]
		if !h.alive {
			s.probes.toDead++ // a killed host never answers
			return
		}
		// The agent answers with who it is now: after a restart, the new
		// incarnation, which the tracker must not count for the old one.
		if delay, ok := s.cross(); ok {
			s.push(simEvent{at: e.at + delay, kind: evReplyArrive, host: e.host, inc: h.inc, seq: h.seq, sent: e.sent})
		} else {
			s.probes.lost++
		}
	case evReplyArrive:
		s.probes.answered++
		if e.at-e.sent > cfg.det.ProbeTimeout {
			s.probes.late++ // the Monitor has forgotten the probe
			return
		}
		r := detector.ProbeReply{V: detector.ProbeVersion, Host: s.hosts[e.host].name, Incarnation: fmt.Sprintf("inc%d", e.inc), Seq: e.seq}
		if s.core.ProbeReply(r, s.t0.Add(e.sent)) {
			s.probes.counted++
		}
	}
}

// cross is one message's trip over the simulated network: its delay, or
// false if it is lost. It draws from netRng only.
func (s *sim) cross() (time.Duration, bool) {
	if s.netRng.Float64() < s.cfg.loss {
		return 0, false
	}
	return time.Duration(s.netRng.Int64N(int64(s.cfg.jitter) + 1)), true
}

func (s *sim) tick(now time.Duration) {
	ts, probes := s.core.Tick(s.t0.Add(now))
	for _, tr := range ts {
		s.observe(tr, now, func(h *simHost) *view { return &h.phi }, &s.phiR)
	}
	for _, p := range probes {
		s.probes.sent++
		i := s.index[p.Host]
		if delay, ok := s.cross(); ok {
			s.push(simEvent{at: now + delay, kind: evProbeArrive, host: i, sent: now})
		} else {
			s.probes.lost++
		}
	}
	ts, _ = s.plain.Tick(s.t0.Add(now))
	for _, tr := range ts {
		s.observe(tr, now, func(h *simHost) *view { return &h.plain }, &s.plainR)
	}
	for i, last := range s.fixed.last {
		if s.fixed.failed[i] || last == 0 || now-last < s.fixed.timeout {
			continue
		}
		s.fixed.failed[i] = true
		h := s.hosts[i]
		// One threshold: a suspicion that is also the failure.
		s.accuse(&h.fixed, &s.fixR, h, 1, now)
		s.accuse(&h.fixed, &s.fixR, h, 2, now)
	}
}

// observe records one phi core's transition in the view which picks.
func (s *sim) observe(tr detector.Transition, now time.Duration, which func(*simHost) *view, r *result) {
	h := s.hosts[s.index[tr.Host]]
	v := which(h)
	switch tr.Kind {
	case detector.KindSuspect:
		s.accuse(v, r, h, 1, now)
	case detector.KindFailed:
		s.accuse(v, r, h, 2, now)
	case detector.KindRecovered:
		s.recover(v, r, now)
	}
}

// accuse records a suspicion (state 1) or failure (state 2) at now.
func (s *sim) accuse(v *view, r *result, h *simHost, state int, now time.Duration) {
	v.state = state
	if h.alive {
		if state == 1 {
			r.falseSuspicions++
		} else {
			r.falseFailures++
		}
		if !v.wrong {
			v.wrong, v.wrongSince = true, now
		}
		return
	}
	if state == 2 {
		r.detect = append(r.detect, now-h.killedAt)
	}
}

func (s *sim) recover(v *view, r *result, now time.Duration) {
	v.state = 0
	s.endMistake(v, r, now)
}

func (s *sim) endMistake(v *view, r *result, now time.Duration) {
	if v.wrong {
		r.mistakeTime += now - v.wrongSince
		r.mistakes++
		v.wrong = false
	}
}

// figures are the reported numbers of one detector.
type figures struct {
	p50, p99, max                  float64 // ms
	suspPerHostHour, failPerHostHr float64
	meanMistake                    time.Duration
	accuracy                       float64 // P_A
}

func (r result) figures(hostHours float64) figures {
	d := slices.Clone(r.detect)
	slices.Sort(d)
	rank := func(p float64) float64 { // nearest-rank percentile
		if len(d) == 0 {
			return math.NaN()
		}
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return float64(d[max(0, i)]) / float64(time.Millisecond)
	}
	f := figures{
		p50: rank(0.50), p99: rank(0.99), max: rank(1),
		suspPerHostHour: float64(r.falseSuspicions) / hostHours,
		failPerHostHr:   float64(r.falseFailures) / hostHours,
		accuracy:        1 - r.mistakeTime.Hours()/hostHours,
	}
	if r.mistakes > 0 {
		f.meanMistake = r.mistakeTime / time.Duration(r.mistakes)
	}
	return f
}

func printQoS(w io.Writer, cfg qosConfig, run qosRun, elapsed time.Duration) qosJSON {
	p, n, f := run.phi.figures(run.hostHours), run.plain.figures(run.hostHours), run.fixed.figures(run.hostHours)
	hostHours, kills := run.hostHours, run.kills
	d := cfg.det
	fmt.Fprintf(w, "xenft detector QoS benchmark: simulated clock driving the detector's pure core (detector.Tracker)\n")
	fmt.Fprintf(w, "  %d hosts, interval %s, network delay U[0,%s] per message, %.2f%% independent loss per message, sender clocks skewed up to ±1h\n",
		cfg.hosts, cfg.interval, cfg.jitter, 100*cfg.loss)
	fmt.Fprintf(w, "  %d kills at uniform random times of random hosts up for >= %s; each agent restarts %s later as a new incarnation\n",
		kills, cfg.uptime, cfg.restart)
	fmt.Fprintf(w, "  %s simulated, seed %d\n", cfg.duration, cfg.seed)
	fmt.Fprintf(w, "  phi-accrual: phi_suspect %g, phi_fail %g, acceptable_pause %s, min_std_dev %s, window %d, tick %s, max_silence %s\n",
		d.PhiSuspect, d.PhiFail, d.AcceptablePause, d.MinStdDev, d.WindowSize, d.Tick, d.MaxSilence)
	if d.ProbeInterval > 0 {
		fmt.Fprintf(w, "  probes: from probe_lead %s before the failure deadline, every %s, timeout %s; each probe and each reply\n"+
			"    crosses the same network as the beats (delay U[0,%s], %.2f%% loss); a killed host never answers\n",
			d.ProbeLead, d.ProbeInterval, d.ProbeTimeout, cfg.jitter, 100*cfg.loss)
	} else {
		fmt.Fprintf(w, "  probes: off (-probe-interval 0)\n")
	}
	fmt.Fprintf(w, "  phi alone: the same core with probing off; fixed: node.failed after %d x interval = %s of silence\n"+
		"    (its suspicion is its failure); all three on the same arrivals and ticks\n",
		cfg.fixedK, time.Duration(cfg.fixedK)*cfg.interval)
	fmt.Fprintf(w, "  host-hours observed (hosts alive): %.1f; ran in %s of wall time\n\n", hostHours, elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-44s %14s %14s %14s\n", "", "phi + probes", "phi alone", "fixed")
	row := func(name string, a, b, c any) { fmt.Fprintf(w, "  %-44s %14v %14v %14v\n", name, a, b, c) }
	ms := func(x float64) string { return fmt.Sprintf("%.0f ms", x) }
	row("detection time T_D p50 (kill -> node.failed)", ms(p.p50), ms(n.p50), ms(f.p50))
	row("detection time T_D p99", ms(p.p99), ms(n.p99), ms(f.p99))
	row("detection time T_D max", ms(p.max), ms(n.max), ms(f.max))
	detected := func(r result) string { return fmt.Sprintf("%d/%d", len(r.detect), kills) }
	row("kills detected / killed", detected(run.phi), detected(run.plain), detected(run.fixed))
	row("false suspicions (count)", run.phi.falseSuspicions, run.plain.falseSuspicions, run.fixed.falseSuspicions)
	rate := func(x float64) string { return fmt.Sprintf("%.4f", x) }
	row("false suspicions per host-hour", rate(p.suspPerHostHour), rate(n.suspPerHostHour), rate(f.suspPerHostHour))
	row("false failures (count)", run.phi.falseFailures, run.plain.falseFailures, run.fixed.falseFailures)
	row("false failures per host-hour", rate(p.failPerHostHr), rate(n.failPerHostHr), rate(f.failPerHostHr))
	row("mistake duration T_M mean", p.meanMistake.Round(time.Millisecond), n.meanMistake.Round(time.Millisecond), f.meanMistake.Round(time.Millisecond))
	acc := func(x float64) string { return fmt.Sprintf("%.7f", x) }
	row("query accuracy P_A", acc(p.accuracy), acc(n.accuracy), acc(f.accuracy))
	pr := run.probes
	probesPerHostHour := float64(pr.sent) / hostHours
	row("probes sent per host-hour", fmt.Sprintf("%.2f", probesPerHostHour), "-", "-")
	fmt.Fprintf(w, "  probes: %d sent (%d to killed hosts), %d requests or replies lost, %d replies, %d after probe_timeout, %d counted as evidence of life\n\n",
		pr.sent, pr.toDead, pr.lost, pr.answered, pr.late, pr.counted)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "  target detection p99 <= 3000 ms: %s (%.0f ms)\n", verdict(p.p99 <= 3000), p.p99)
	fmt.Fprintf(w, "  target zero false failures over >= 2 host-hours: %s (%d over %.1f host-hours)\n",
		verdict(run.phi.falseFailures == 0 && hostHours >= 2), run.phi.falseFailures, hostHours)
	double := cfg.loss * cfg.loss * (1 - cfg.loss) * float64(time.Hour/cfg.interval)
	fmt.Fprintf(w, "    (two consecutive lost beats happen %.3f times per host-hour at this loss rate; until the third\n"+
		"     interval has passed they look exactly like a crash to heartbeats alone, which is what phi alone\n"+
		"     fails on; a probe's answer tells them apart: see docs/detectors.md)\n", double)
	better := p.p99 < f.p99 || p.suspPerHostHour < f.suspPerHostHour
	fmt.Fprintf(w, "  target beat the fixed detector on detection time or false suspicions: %s (p99 %.0f vs %.0f ms; %.4f vs %.4f false suspicions/host-hour)\n\n",
		verdict(better), p.p99, f.p99, p.suspPerHostHour, f.suspPerHostHour)
	round := func(x float64, digits int) float64 {
		if math.IsNaN(x) {
			return -1
		}
		m := math.Pow(10, float64(digits))
		return math.Round(x*m) / m
	}
	return qosJSON{
		HostHours:               round(hostHours, 2),
		DetectP50:               round(p.p50, 0),
		DetectP99:               round(p.p99, 0),
		DetectMax:               round(p.max, 0),
		FalseSuspicions:         round(p.suspPerHostHour, 5),
		FalseFailures:           round(p.failPerHostHr, 5),
		ProbesPerHostHour:       round(probesPerHostHour, 3),
		PhiAloneDetectP99:       round(n.p99, 0),
		PhiAloneFalseSuspicions: round(n.suspPerHostHour, 5),
		PhiAloneFalseFailures:   round(n.failPerHostHr, 5),
		FixedDetectP50:          round(f.p50, 0),
		FixedDetectP99:          round(f.p99, 0),
		FixedDetectMax:          round(f.max, 0),
		FixedFalseSuspicions:    round(f.suspPerHostHour, 5),
		FixedFalseFailures:      round(f.failPerHostHr, 5),
	}
}

// qosJSON is the last line of the QoS benchmark: the keys (the
// detector as configured, probes included, and the fixed detector), the
// probe traffic, and the same core without probes.
type qosJSON struct {
	HostHours               float64 `json:"host_hours"`
	DetectP50               float64 `json:"detect_p50_ms"`
	DetectP99               float64 `json:"detect_p99_ms"`
	DetectMax               float64 `json:"detect_max_ms"`
	FalseSuspicions         float64 `json:"false_suspicions_per_host_hour"`
	FalseFailures           float64 `json:"false_failures_per_host_hour"`
	ProbesPerHostHour       float64 `json:"probes_per_host_hour"`
	PhiAloneDetectP99       float64 `json:"phi_alone_detect_p99_ms"`
	PhiAloneFalseSuspicions float64 `json:"phi_alone_false_suspicions_per_host_hour"`
	PhiAloneFalseFailures   float64 `json:"phi_alone_false_failures_per_host_hour"`
	FixedDetectP50          float64 `json:"fixed_detect_p50_ms"`
	FixedDetectP99          float64 `json:"fixed_detect_p99_ms"`
	FixedDetectMax          float64 `json:"fixed_detect_max_ms"`
	FixedFalseSuspicions    float64 `json:"fixed_false_suspicions_per_host_hour"`
	FixedFalseFailures      float64 `json:"fixed_false_failures_per_host_hour"`
}
