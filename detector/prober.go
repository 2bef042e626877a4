package detector

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// prober is the Monitor's side of probing: it sends the probes the tracker
// asks for and matches the replies to them. It starts no goroutine and never
// waits: a probe is one publish with a reply subject under a private inbox,
// whose replies arrive on one channel subscription that the Monitor's Run
// goroutine drains with the beats. That goroutine owns the prober; the
// timeout is enforced by forgetting a probe once probe_timeout has passed,
// and the bound on probes in flight by skipping new ones.
type prober struct {
	nc      *nats.Conn
	subject func(host string) string
	inbox   string // "<inbox>.": a reply comes on inbox + nonce
	timeout time.Duration
	max     int
	c       *counters

	nonce uint64
	// pending is every probe sent and not yet answered or timed out, by
	// nonce; queue holds them in the order sent (so by deadline), which
	// makes expiry a walk from the front.
	pending map[uint64]pendingProbe
	queue   []sentProbe
	head    int
}

type pendingProbe struct {
	host string
	sent time.Time
}

type sentProbe struct {
	nonce uint64
	sent  time.Time
}

// The header and status of the server's reply to a request nobody
// subscribes to (nats.go keeps its own names unexported).
const (
	statusHeader = "Status"
	noResponders = "503"
)

// probeReplyQueue is how many replies may wait for the owner goroutine; at
// most ProbeMaxOutstanding are expected at once, plus strays.
const probeReplyQueue = 4096

func newProber(nc *nats.Conn, subject func(string) string, cfg Config, c *counters) *prober {
	return &prober{
		nc: nc, subject: subject, inbox: nc.NewInbox() + ".",
		timeout: cfg.ProbeTimeout, max: cfg.ProbeMaxOutstanding, c: c,
		pending: map[uint64]pendingProbe{},
	}
}

// subscribe starts receiving replies on ch.
func (p *prober) subscribe(ch chan *nats.Msg) (*nats.Subscription, error) {
	return p.nc.ChanSubscribe(p.inbox+"*", ch)
}

// send publishes the probes the tracker asked for at now, after forgetting
// those whose time is up. Publishing only hands the request to the client's
// buffer; it does not wait for the network.
func (p *prober) send(now time.Time, probes []Probe) {
	p.expire(now)
	for _, pr := range probes {
		if len(p.pending) >= p.max {
			p.c.probesSkipped.Add(1)
			continue
		}
		p.nonce++
		if err := p.nc.PublishRequest(p.subject(pr.Host), p.inbox+strconv.FormatUint(p.nonce, 10), nil); err != nil {
			p.c.probeErrors.Add(1)
			continue
		}
		p.c.probesSent.Add(1)
		p.pending[p.nonce] = pendingProbe{host: pr.Host, sent: now}
		p.queue = append(p.queue, sentProbe{nonce: p.nonce, sent: now})
	}
}

// expire forgets the probes sent more than timeout before now.
func (p *prober) expire(now time.Time) {
	for p.head < len(p.queue) && now.Sub(p.queue[p.head].sent) > p.timeout {
		if _, ok := p.pending[p.queue[p.head].nonce]; ok {
			delete(p.pending, p.queue[p.head].nonce)
			p.c.probeTimeouts.Add(1)
		}
		p.head++
	}
	// Reuse the front of the slice once most of it is spent.
	if p.head > 0 && p.head*2 >= len(p.queue) {
		n := copy(p.queue, p.queue[p.head:])
		p.queue, p.head = p.queue[:n], 0
	}
}

// errProbeLate is reply's error for a reply to no probe in flight: after
// probe_timeout, duplicated or forged.
var errProbeLate = errors.New("reply after probe_timeout or to no probe in flight")

// reply matches one reply received at at to its probe, decodes it, and
// returns it with the time its probe was sent. ok is false for a reply to no
// probe in flight (late, duplicated or forged: err is errProbeLate), the
// server's "no responders" (err nil), an undecodable reply, or one naming
// another host than the one asked (err matches ErrBadProbeReply).
func (p *prober) reply(msg *nats.Msg, at time.Time) (r ProbeReply, probedAt time.Time, ok bool, err error) {
	nonce, perr := strconv.ParseUint(msg.Subject[min(len(p.inbox), len(msg.Subject)):], 10, 64)
	pr, found := p.pending[nonce]
	if perr != nil || !found || at.Sub(pr.sent) > p.timeout {
		p.c.probeLate.Add(1)
		return ProbeReply{}, time.Time{}, false, errProbeLate
	}
	delete(p.pending, nonce)
	if len(msg.Data) == 0 && msg.Header.Get(statusHeader) == noResponders {
		// The server's answer when nothing is subscribed to the host's
		// probe subject: its agent is not connected (or runs without a
		// responder). No evidence of life; the deadlines decide.
		p.c.probeNoResponders.Add(1)
		return ProbeReply{}, time.Time{}, false, nil
	}
	r, err = DecodeProbeReply(msg.Data)
	if err == nil && r.Host != pr.host {
		err = fmt.Errorf("%w: %q answered a probe of %q", ErrBadProbeReply, r.Host, pr.host)
	}
	if err != nil {
		p.c.probeGarbage.Add(1)
		return ProbeReply{}, time.Time{}, false, err
	}
	return r, pr.sent, true, nil
}
