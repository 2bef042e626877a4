package detector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
)

// BeaconBus is what a beacon needs of the bus: the core connection its beats
// and probe answers go on. *events.Bus is one.
type BeaconBus interface {
	Conn() *nats.Conn
	Subjects() events.Subjects
}

// Bus is what a monitor needs of the bus: the beacon's, and JetStream
// publishing for the events it decides. *events.Bus is one.
type Bus interface {
	BeaconBus
	PublishAck(ctx context.Context, ev events.Event) (*jetstream.PubAck, error)
}

var _ Bus = (*events.Bus)(nil)

// HostInventory lists what a beacon reports of its host. The agent adapts its
// hypervisor driver to it. Both calls must honour ctx: the beacon bounds them
// with heartbeat.inventory_timeout.
type HostInventory interface {
	Domains(ctx context.Context) ([]DomainSummary, error)
	FreeMemoryMiB(ctx context.Context) (uint64, error)
}

// ListingNotifier is implemented by a HostInventory whose listings are
// shared with other parts of the agent (xen/inventory's Lister, which the VM
// watcher drives every second): Listed is signalled after each listing, made
// for whoever. The beacon then refreshes its inventory at once, so beats
// carry the newest listing and its own rounds list only when nobody else has
// for an interval. A nil channel never signals.
type ListingNotifier interface {
	Listed() <-chan struct{}
}

// BeaconStats counts a beacon's work.
type BeaconStats struct {
	Sent              uint64 // beats handed to the NATS connection
	Failed            uint64 // beats that could not be handed over
	InventoryFailures uint64 // listings that failed or timed out
	ProbesAnswered    uint64 // detectors' probes answered (AnswerProbes)
	ProbesUnanswered  uint64 // probes whose reply could not be sent, or that had no reply subject
}

// Beacon publishes one host's heartbeat on <prefix>.hb.<host>, core NATS, at
// a steady interval. One Beacon is one incarnation: make a new one at every
// agent start. Run it once; Stats and Incarnation are safe to call from any
// goroutine.
type Beacon struct {
	clock       clock.Clock
	bus         BeaconBus
	host        string
	inv         HostInventory
	cfg         BeaconConfig
	log         hclog.Logger
	incarnation string
	subject     string

	latest atomic.Pointer[Inventory]
	// fenceArmed, when set (ReportFence), says whether the agent's
	// self-fence is armed; beats say fence_unarmed while it is not.
	fenceArmed atomic.Pointer[func() bool]
	// seq is the last beat's number: Run's goroutine writes it, the probe
	// responder reads it.
	seq                       atomic.Uint64
	sent, failed, invFailures atomic.Uint64
	answered, unanswered      atomic.Uint64
}

// NewBeacon returns the beacon of host. inv may be nil: beats then carry no
// inventory.
func NewBeacon(bus BeaconBus, host string, inv HostInventory, cfg BeaconConfig, log hclog.Logger, opts ...Option) (*Beacon, error) {
	if !ValidName(host) {
		return nil, fmt.Errorf("beacon: host %q must be letters, digits, '.', '_' or '-', starting with a letter or digit", host)
	}
	if err := cfg.Validate("heartbeat"); err != nil {
		return nil, err
	}
	inc, err := NewIncarnation()
	if err != nil {
		return nil, err
	}
	return &Beacon{
		clock: clock.Build(opts).Clock,
		bus:   bus, host: host, inv: inv, cfg: cfg,
		log:         log.Named("beacon").With("host", host, "incarnation", inc),
		incarnation: inc,
		subject:     bus.Subjects().Heartbeat(host),
	}, nil
}

// NewIncarnation returns a fresh random incarnation: 16 hex digits.
func NewIncarnation() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("incarnation: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Incarnation identifies this run of the agent.
func (b *Beacon) Incarnation() string { return b.incarnation }

// Stats returns the beacon's counters.
func (b *Beacon) Stats() BeaconStats {
	return BeaconStats{Sent: b.sent.Load(), Failed: b.failed.Load(), InventoryFailures: b.invFailures.Load(),
		ProbesAnswered: b.answered.Load(), ProbesUnanswered: b.unanswered.Load()}
}

// errNotConnected: the beacon does not let the client buffer beats while it
// reconnects, because a burst of stale beats on reconnection would teach
// every detector's window wrong inter-arrival times.
var errNotConnected = errors.New("not connected to nats")

// Run beats until ctx ends, then returns nil. The first beat goes out at
// once. When a beat cannot be published, Run keeps trying with exponential
// backoff (from 100 ms, at most one interval), and logs when publishing
// starts failing and when it works again, not at every beat.
func (b *Beacon) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if b.inv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.inventoryLoop(ctx)
		}()
	}

	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(b.cfg.Interval),
		backoff.WithMaxElapsedTime(0), // forever: a beacon never gives up
	)
	var (
		failing  bool
		missed   uint64
		due      = b.clock.Now()
		timer    = b.clock.NewTimer(0)
		interval = b.cfg.Interval
	)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.Chan():
		}
		err := b.beat()
		now := b.clock.Now()
		switch {
		case err != nil:
			b.failed.Add(1)
			missed++
			if !failing {
				failing = true
				b.log.Warn("heartbeats cannot be published, retrying", "error", err)
			}
			timer.Reset(bo.NextBackOff())
			continue
		case failing:
			failing = false
			b.log.Info("heartbeats published again", "failed_attempts", missed)
			missed = 0
			bo.Reset()
			due = now // a new rhythm from the first good beat
		}
		// A steady rhythm anchored at the first beat: a late wake-up does not
		// shift every later beat.
		due = due.Add(interval)
		if !due.After(now) {
			due = now.Add(interval)
		}
		timer.Reset(due.Sub(now))
	}
}

// ReportFence makes every beat say whether armed() holds: the agent's
// self-fence state (restarter.Restarter.FenceArmed). Call it before Run.
func (b *Beacon) ReportFence(armed func() bool) { b.fenceArmed.Store(&armed) }

func (b *Beacon) fenceUnarmed() bool {
	f := b.fenceArmed.Load()
	return f != nil && !(*f)()
}

func (b *Beacon) beat() error {
	nc := b.bus.Conn()
	if !nc.IsConnected() {
		return errNotConnected
	}
	seq := b.seq.Add(1)
	data, err := EncodeHeartbeat(Heartbeat{
		V: HeartbeatVersion, Host: b.host, Incarnation: b.incarnation, Seq: seq,
		Sent: b.clock.Now().UTC(), IntervalMs: b.cfg.Interval.Milliseconds(), Inventory: b.latest.Load(),
		FenceUnarmed: b.fenceUnarmed(),
	})
	if err != nil {
		return err
	}
	if err := nc.Publish(b.subject, data); err != nil {
		return err
	}
	b.sent.Add(1)
	return nil
}

// AnswerProbes answers the detectors' probes of this host, on
// <prefix>.hb.probe.<host>, until ctx ends, then returns nil. Each reply
// names the host, this incarnation and the latest beat's number; a detector
// that was about to accuse the host on a silence (lost beats) takes it as
// evidence of life. Run it beside Run, on the same connection, so that a
// reply means what a beat would: this agent is running and reaches the bus.
// It returns an error only if it cannot subscribe.
//
// Replies are sent from the NATS client's delivery goroutine for the
// subscription, without a goroutine per probe: answering is an encode and a
// publish, and probes are few (a silent host gets about four a second from
// each detector).
func (b *Beacon) AnswerProbes(ctx context.Context) error {
	nc := b.bus.Conn()
	subject := b.bus.Subjects().Probe(b.host)
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if m.Reply == "" || events.FromConsumer(m) {
			// A publish, not a request: nobody to answer; or a JetStream
			// consumer's delivery, no detector's probe.
			b.unanswered.Add(1)
			return
		}
		data, err := EncodeProbeReply(ProbeReply{V: ProbeVersion, Host: b.host, Incarnation: b.incarnation, Seq: b.seq.Load()})
		if err == nil {
			err = m.Respond(data)
		}
		if err != nil {
			b.unanswered.Add(1)
			return
		}
		b.answered.Add(1)
	})
	if err != nil {
		return fmt.Errorf("beacon %s: subscribe to probes on %s: %w", b.host, subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		// The client subscribes again when it reconnects.
		b.log.Warn("probe subscription not confirmed by the server yet", "error", err)
	}
	<-ctx.Done()
	return nil
}

// inventoryLoop refreshes the inventory the beats carry. It runs apart from
// the beats so that a slow toolstack never delays one. With a
// ListingNotifier it also refreshes after a listing made for someone else,
// at most every half interval (a watcher listing faster than that must not
// make every round cost an `xl info`).
func (b *Beacon) inventoryLoop(ctx context.Context) {
	var (
		failing bool
		listed  <-chan struct{}
		last    time.Time
	)
	if n, ok := b.inv.(ListingNotifier); ok {
		listed = n.Listed()
	}
	t := b.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		case <-listed:
			if b.clock.Since(last) < b.cfg.InventoryInterval/2 {
				continue // the next timed round takes it
			}
		}
		last = b.clock.Now()
		inv, err := b.list(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			b.invFailures.Add(1)
			if !failing {
				failing = true
				b.log.Warn("host inventory failed; beats carry the last good one", "error", err)
			}
			// Keep the last good data, marked stale with the error.
			if prev := b.latest.Load(); prev != nil {
				stale := *prev
				stale.Error = err.Error()
				b.latest.Store(&stale)
			}
		default:
			if failing {
				failing = false
				b.log.Info("host inventory works again")
			}
			b.latest.Store(inv)
		}
		if listed != nil {
			select {
			case <-listed: // made during this round: inv has it already
			default:
			}
		}
		t.Reset(b.cfg.InventoryInterval)
	}
}

func (b *Beacon) list(ctx context.Context) (*Inventory, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.InventoryTimeout)
	defer cancel()
	doms, err := b.inv.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	free, err := b.inv.FreeMemoryMiB(ctx)
	if err != nil {
		return nil, fmt.Errorf("free memory: %w", err)
	}
	if doms == nil {
		doms = []DomainSummary{} // known to be none, not unknown
	}
	return &Inventory{At: b.clock.Now().UTC(), Domains: doms, FreeMemoryMiB: free}, nil
}
