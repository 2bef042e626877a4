package detector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
)

// Metrics is a snapshot of a Monitor's counters (totals since it started)
// and gauges (now).
type Metrics struct {
	Hosts, Suspected, Failed int // gauges, as of the last tick

	BeatsReceived uint64 // valid beats given to the tracker
	BeatsGarbage  uint64 // undecodable, invalid, or published on another host's subject
	BeatsStale    uint64 // duplicates, reordered, or from a retired incarnation
	BeatsMissing  uint64 // sequence numbers never received: lost between beacon and monitor
	BeatsDropped  uint64 // dropped by the NATS client: the monitor was too slow
	Stalls        uint64 // ticks that came too late; the gap was treated as blind

	ProbesSent          uint64 // probes of silent hosts sent
	ProbesSkipped       uint64 // probes not sent: probe_max_outstanding were in flight
	ProbeErrors         uint64 // probes the NATS client refused to send
	ProbeTimeouts       uint64 // probes without a reply within probe_timeout
	ProbeNoResponders   uint64 // probes the server answered for the host: nothing subscribed to its probe subject
	ProbeReplies        uint64 // replies that counted as evidence of life
	ProbeRepliesIgnored uint64 // in time but about another incarnation, a failed host, or older than the last beat
	ProbeRepliesLate    uint64 // to no probe in flight: after probe_timeout, duplicated or forged
	ProbeRepliesGarbage uint64 // undecodable, or naming another host than the one asked
	ProbeRepliesDropped uint64 // dropped by the NATS client: the monitor was too slow

	EventsPublished uint64 // stored in the stream by this monitor
	EventsDuplicate uint64 // already stored (another detector published it first)
	PublishErrors   uint64 // failed publish attempts (each is retried)
	EventsLost      uint64 // still queued when the monitor stopped

	PluginRuns     uint64 // plug-in runs that exited 0 in time
	PluginFailures uint64 // runs that failed to start, exited non-zero, or timed out
	PluginGarbage  uint64 // output lines that were not a valid finding
	PluginFindings uint64 // valid findings (published when they change)
}

// counters are the Monitor's metrics, updated from several goroutines.
type counters struct {
	received, garbage, stale, missing         atomic.Uint64
	dropped, stalls                           atomic.Uint64
	published, duplicate, pubErrors, lost     atomic.Uint64
	pluginRuns, pluginFailures, pluginGarbage atomic.Uint64
	pluginFindings                            atomic.Uint64
	hosts, suspected, failed                  atomic.Int64

	probesSent, probesSkipped, probeErrors, probeTimeouts atomic.Uint64
	probeReplies, probeIgnored, probeLate, probeGarbage   atomic.Uint64
	probeDropped, probeNoResponders                       atomic.Uint64
}

// Monitor turns every host's heartbeats into node.suspect, node.failed and
// node.recovered events, and runs the configured plug-ins, which publish
// node.fault. Make one with NewMonitor and Run it once; Metrics is safe to
// call from any goroutine.
type Monitor struct {
	bus     Bus
	cfg     Config
	id      string
	log     hclog.Logger
	clock   clock.Clock
	tracker *Tracker // owned by Run's goroutine
	c       counters
	ignored events.IgnoredInputs
	ready   chan struct{}
}

// NewMonitor returns a monitor for cfg (plug-in defaults applied, then
// validated).
func NewMonitor(bus Bus, cfg Config, log hclog.Logger, opts ...Option) (*Monitor, error) {
	cfg = cfg.WithDefaults()
	tr, err := NewTracker(cfg)
	if err != nil {
		return nil, err
	}
	id := cfg.detectorID()
	return &Monitor{clock: clock.Build(opts).Clock, bus: bus, cfg: cfg, id: id, log: log.Named("detector").With("detector", id), tracker: tr, ready: make(chan struct{})}, nil
}

// Ready is closed once Run's subscription to the heartbeats is in place (the
// server confirmed it, or the connection is down and it will be on reconnect).
func (m *Monitor) Ready() <-chan struct{} { return m.ready }

// ID is the detector id the monitor publishes under.
func (m *Monitor) ID() string { return m.id }

// Metrics returns a snapshot of the counters.
func (m *Monitor) Metrics() Metrics {
	c := &m.c
	return Metrics{
		Hosts: int(c.hosts.Load()), Suspected: int(c.suspected.Load()), Failed: int(c.failed.Load()),
		BeatsReceived: c.received.Load(), BeatsGarbage: c.garbage.Load(), BeatsStale: c.stale.Load(),
		BeatsMissing: c.missing.Load(), BeatsDropped: c.dropped.Load(), Stalls: c.stalls.Load(),
		ProbesSent: c.probesSent.Load(), ProbesSkipped: c.probesSkipped.Load(), ProbeErrors: c.probeErrors.Load(),
		ProbeTimeouts: c.probeTimeouts.Load(), ProbeNoResponders: c.probeNoResponders.Load(), ProbeReplies: c.probeReplies.Load(),
		ProbeRepliesIgnored: c.probeIgnored.Load(), ProbeRepliesLate: c.probeLate.Load(),
		ProbeRepliesGarbage: c.probeGarbage.Load(), ProbeRepliesDropped: c.probeDropped.Load(),
		EventsPublished: c.published.Load(), EventsDuplicate: c.duplicate.Load(),
		PublishErrors: c.pubErrors.Load(), EventsLost: c.lost.Load(),
		PluginRuns: c.pluginRuns.Load(), PluginFailures: c.pluginFailures.Load(),
		PluginGarbage: c.pluginGarbage.Load(), PluginFindings: c.pluginFindings.Load(),
	}
}

// Ignored counts, by reason, the heartbeats and probe replies the monitor
// ignored: invalid_heartbeat (undecodable, or speaking for another host than
// its subject's), duplicate (a sequence number not above the host's latest),
// stale_epoch (a beat of an incarnation that has restarted since), stale (a
// probe reply after probe_timeout, to no probe in flight, or about another
// incarnation or an older beat). Each reason is also logged, at most once per
// events.IgnoreLogEvery. Safe to call from any goroutine.
func (m *Monitor) Ignored() map[string]uint64 { return m.ignored.Snapshot() }

// SetIgnoreLogInterval changes how often a line per reason of Ignored is
// logged at most (tests set it long).
func (m *Monitor) SetIgnoreLogInterval(d time.Duration) { m.ignored.SetLogInterval(d) }

// beatQueue is how many beats may wait for the owner goroutine: more than six
// seconds of 10,000 hosts at 1 Hz. Beats beyond it are dropped by the NATS
// client and counted (Metrics.BeatsDropped).
const beatQueue = 1 << 16

// drainEvery is how often the owner goroutine takes the beats waiting for it.
// Taking them in batches rather than one wake-up per beat is what keeps
// 10,000 beats a second cheap; the price is that a beat's receive time is
// the batch's, up to 10 ms late, which is noise next to the 100 ms deviation
// floor and adds at most 10 ms to a detection.
const drainEvery = 10 * time.Millisecond

// Run subscribes to every host's heartbeats and runs the plug-ins until ctx
// ends, then returns nil; it returns an error only if it cannot start.
//
// One goroutine (Run's) owns the tracker and the prober: every drainEvery it
// takes the beats and probe replies the NATS client queued, and every tick
// it evaluates every host, after taking the beats already received, so a
// tick never judges a host on beats it has not read yet; then it sends the
// probes the tick asked for (prober.go: a publish each, no goroutine, no
// waiting). While the connection to NATS is down the monitor does
// not tick; the tracker then treats the gap as blind (see Tracker.Tick), so
// a detector cut off from the bus never accuses hosts it could not hear.
// Events go to per-host-ordered publishers that retry until they are stored:
// the ids are deterministic, so a retry can never store an event twice.
func (m *Monitor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pub := newPublisher(m.bus, &m.c, m.log, m.clock)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		pub.close()
	}()
	pub.start(ctx, &wg)

	msgs := make(chan *nats.Msg, beatQueue)
	nc := m.bus.Conn()
	sub, err := nc.ChanSubscribe(m.bus.Subjects().AllHeartbeats(), msgs)
	if err != nil {
		return fmt.Errorf("detector %s: subscribe to heartbeats: %w", m.id, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var (
		probes  *prober
		replies chan *nats.Msg
		rsub    *nats.Subscription
	)
	if m.cfg.ProbeInterval > 0 {
		probes = newProber(nc, m.bus.Subjects().Probe, m.cfg, &m.c)
		replies = make(chan *nats.Msg, probeReplyQueue)
		if rsub, err = probes.subscribe(replies); err != nil {
			return fmt.Errorf("detector %s: subscribe to probe replies: %w", m.id, err)
		}
		defer func() { _ = rsub.Unsubscribe() }()
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		m.log.Warn("subscription not confirmed by the server yet", "error", err)
	}
	close(m.ready)

	for _, p := range m.cfg.Plugins {
		r := newPluginRunner(p, m.id, pub, &m.c, m.log, m.clock)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx)
		}()
	}

	m.log.Info("watching heartbeats", "subject", m.bus.Subjects().AllHeartbeats(),
		"phi_suspect", m.cfg.PhiSuspect, "phi_fail", m.cfg.PhiFail, "probe_interval", m.cfg.ProbeInterval, "plugins", len(m.cfg.Plugins))
	prefix := m.bus.Subjects().Heartbeat("")
	prefix = prefix[:len(prefix)-1] // "<prefix>.hb."
	drain := m.clock.NewTicker(min(drainEvery, m.cfg.Tick))
	defer drain.Stop()
	nextTick := m.clock.Now().Add(m.cfg.Tick)
	connected := true
	for {
		select {
		case <-ctx.Done():
			m.log.Info("stopped")
			return nil
		case <-drain.Chan():
		}
		now := m.clock.Now()
		for n := len(msgs); n > 0; n-- {
			m.receive(ctx, pub, <-msgs, now, prefix)
		}
		for n := len(replies); n > 0; n-- {
			m.probeReply(probes, <-replies, now)
		}
		if now.Before(nextTick) {
			continue
		}
		nextTick = nextTick.Add(m.cfg.Tick)
		if nextTick.Before(now) {
			nextTick = now.Add(m.cfg.Tick)
		}
		if d, err := sub.Dropped(); err == nil {
			m.c.dropped.Store(uint64(d))
		}
		if rsub != nil {
			if d, err := rsub.Dropped(); err == nil {
				m.c.probeDropped.Store(uint64(d))
			}
		}
		if !nc.IsConnected() {
			if connected {
				m.log.Warn("lost the connection to nats: not judging hosts until it is back")
				connected = false
			}
			continue
		}
		if !connected {
			m.log.Info("connection to nats is back; the time without it does not count against hosts")
			connected = true
		}
		ts, due := m.tracker.Tick(now)
		m.emit(ctx, pub, ts)
		if probes != nil {
			probes.send(now, due)
		}
		st := m.tracker.Stats()
		m.c.stale.Store(st.Stale)
		m.c.missing.Store(st.Missing)
		m.c.stalls.Store(st.Stalls)
		m.c.probeReplies.Store(st.ProbeReplies)
		m.c.probeIgnored.Store(st.ProbeRepliesIgnored)
		h, s, f := m.tracker.Counts()
		m.c.hosts.Store(int64(h))
		m.c.suspected.Store(int64(s))
		m.c.failed.Store(int64(f))
	}
}

// receive decodes one beat received at at and gives it to the tracker. A beat
// must come on its own host's subject: a host cannot speak for another.
func (m *Monitor) receive(ctx context.Context, pub *publisher, msg *nats.Msg, at time.Time, prefix string) {
	hb, err := DecodeHeartbeat(msg.Data)
	switch {
	case err == nil && !onSubject(msg.Subject, prefix, hb.Host):
		err = fmt.Errorf("%w: host %q published on %s", ErrBadHeartbeat, hb.Host, msg.Subject)
	case err == nil && msg.Reply != "":
		// A beacon publishes with no reply; a JetStream consumer's
		// delivery carries one (events.FromConsumer).
		err = fmt.Errorf("%w: a beat with reply subject %s", ErrBadHeartbeat, msg.Reply)
	}
	if err != nil {
		m.c.garbage.Add(1)
		m.ignored.Ignore(m.log, events.IgnoredInvalidHeartbeat, "heartbeat", "subject", msg.Subject, "error", err)
		return
	}
	m.c.received.Add(1)
	stale := m.tracker.Stats().Stale
	ts := m.tracker.Beat(hb, at)
	if m.tracker.Stats().Stale != stale {
		m.ignoreStaleBeat(hb)
	}
	m.emit(ctx, pub, ts)
}

// ignoreStaleBeat tells a beat the tracker ignored: one of an incarnation
// that has restarted since, or a repeat of a sequence number already heard.
func (m *Monitor) ignoreStaleBeat(hb Heartbeat) {
	v, _ := m.tracker.Host(hb.Host)
	if v.Incarnation != hb.Incarnation {
		m.ignored.Ignore(m.log, events.IgnoredStaleEpoch, "heartbeat", "host", hb.Host, "incarnation", hb.Incarnation, "seq", hb.Seq,
			"why", "the host's agent has restarted since, as incarnation "+v.Incarnation)
		return
	}
	m.ignored.Ignore(m.log, events.IgnoredDuplicate, "heartbeat", "host", hb.Host, "incarnation", hb.Incarnation, "seq", hb.Seq,
		"why", fmt.Sprintf("sequence number not above the latest, %d", v.LastSeq))
}

// probeReply gives one reply received at at to the tracker, if it answers a
// probe in flight.
func (m *Monitor) probeReply(p *prober, msg *nats.Msg, at time.Time) {
	r, probedAt, ok, err := p.reply(msg, at)
	switch {
	case errors.Is(err, errProbeLate):
		m.ignored.Ignore(m.log, events.IgnoredStale, "probe reply", "subject", msg.Subject, "why", err.Error())
	case err != nil:
		m.ignored.Ignore(m.log, events.IgnoredInvalidHeartbeat, "probe reply", "subject", msg.Subject, "error", err)
	case ok && !m.tracker.ProbeReply(r, probedAt):
		m.ignored.Ignore(m.log, events.IgnoredStale, "probe reply", "host", r.Host, "incarnation", r.Incarnation, "seq", r.Seq,
			"why", "about another incarnation, a failed host, or older than the last beat")
	}
}

// onSubject reports whether subject is prefix followed by host's token,
// without building the subject.
func onSubject(subject, prefix, host string) bool {
	if len(subject) < len(prefix) || subject[:len(prefix)] != prefix {
		return false
	}
	tok := subject[len(prefix):]
	if tok == host {
		return true // the usual case: host names need no escaping
	}
	return tok == events.EscapeToken(host)
}

func (m *Monitor) emit(ctx context.Context, pub *publisher, ts []Transition) {
	for _, tr := range ts {
		ev, err := tr.Event(m.id)
		if err != nil { // a bug: every field comes from validated input
			m.log.Error("cannot build event", "host", tr.Host, "kind", tr.Kind, "error", err)
			continue
		}
		args := []any{"host", tr.Host, "incarnation", tr.Incarnation, "last_seq", tr.LastSeq, "id", ev.ID}
		switch tr.Kind {
		case KindSuspect:
			m.log.Info("host suspected", append(args, "phi", tr.Phi)...)
		case KindFailed:
			m.log.Warn("host failed", append(args, "phi", tr.Phi, "reason", tr.Reason)...)
		case KindRecovered:
			m.log.Info("host recovered", append(args, "new_incarnation", tr.NewIncarnation)...)
		}
		pub.publish(ctx, tr.Host, ev)
	}
}

// rateLog logs a recurring problem at once, then at most once a minute with
// the number of occurrences it did not log.
type rateLog struct {
	mu         sync.Mutex
	log        hclog.Logger
	msg        string
	last       time.Time
	suppressed int
}

func newRateLog(log hclog.Logger, msg string) *rateLog { return &rateLog{log: log, msg: msg} }

func (r *rateLog) note(now time.Time, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < time.Minute {
		r.suppressed++
		return
	}
	r.log.Warn(r.msg, append(args, "suppressed_since_last", r.suppressed)...)
	r.last, r.suppressed = now, 0
}
