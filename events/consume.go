package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"
)

// SupervisorConsumer is the name of the supervisors' durable consumer of
// the event stream. Only supervisors may read it: another role pulling from
// it would hold the leader's events until their ack wait ran out.
const SupervisorConsumer = "xenft-supervisor"

// Meta is where a delivered event sits in the stream.
type Meta struct {
	Subject   string    // the NATS subject it was published on
	Seq       uint64    // stream sequence
	Delivered uint64    // delivery attempt, from 1
	Stored    time.Time // when the stream stored it
	// Publisher is the identity named by the subject (Subjects.PublisherOf):
	// with per-role credentials, the server's word, not the envelope's.
	Publisher Publisher
}

// Handler receives one valid event. For a durable consumer, nil acknowledges
// the event and an error asks for redelivery after ConsumeConfig.RetryDelay;
// for Tail, an error stops the tail and is returned.
type Handler func(ctx context.Context, ev Event, m Meta) error

// ConsumeConfig describes a durable consumer of the event stream.
type ConsumeConfig struct {
	// Durable names the consumer; it survives restarts of the process and of
	// the servers, and resumes after the last acknowledged event.
	Durable string
	// Filters are NATS subjects (see Subjects); empty means every event.
	Filters []string
	// AckWait is how long the server waits for an ack before redelivering.
	AckWait time.Duration
	// RetryDelay is the wait before redelivering an event the handler failed.
	RetryDelay time.Duration
	// StartAt, when set, is where a durable that does not exist yet starts
	// (events stored at or after it); an existing durable resumes where it
	// stopped. Zero starts a new durable at the beginning of the stream.
	StartAt time.Time
}

func (c *ConsumeConfig) defaults() {
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
}

// Consume delivers events of a durable consumer to h, one at a time and in
// order, until ctx ends (then it returns ErrStopped). The handler is called
// only with valid events: invalid ones are counted in Drops and Ignored
// (invalid_event), logged at most once per IgnoreLogEvery, and terminated so
// they are never redelivered and never block the events behind them.
func (b *Bus) Consume(ctx context.Context, cc ConsumeConfig, h Handler) error {
	return b.consume(ctx, cc, func(ctx context.Context, msg jetstream.Msg, ev Event, m Meta, log hclog.Logger) error {
		if err := h(ctx, ev, m); err != nil {
			log.Warn("handler failed, will retry", "event", ev.ID, "type", ev.Type.Short(), "delivered", m.Delivered, "error", err)
			return msg.NakWithDelay(cc.RetryDelay)
		}
		actx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		defer cancel()
		return msg.DoubleAck(actx)
	})
}

// consume creates (or resumes) the durable and runs deliver for each valid
// event; invalid ones are terminated.
func (b *Bus) consume(ctx context.Context, cc ConsumeConfig, deliver func(context.Context, jetstream.Msg, Event, Meta, hclog.Logger) error) error {
	cc.defaults()
	if cc.Durable == "" {
		return errors.New("consume: a durable name is required")
	}
	filters := cc.Filters
	if len(filters) == 0 {
		filters = []string{b.subjects.AllEvents()}
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        cc.Durable,
		FilterSubjects: filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cc.AckWait,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		MaxAckPending:  256,
		Replicas:       b.cfg.Replicas,
	}
	if !cc.StartAt.IsZero() {
		start := cc.StartAt
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	// A durable's deliver policy cannot change: keep an existing one's.
	if existing, err := b.js.Consumer(cctx, b.names.Stream(), cc.Durable); err == nil {
		ci := existing.CachedInfo()
		cfg.DeliverPolicy, cfg.OptStartTime = ci.Config.DeliverPolicy, ci.Config.OptStartTime
	}
	cons, err := b.js.CreateOrUpdateConsumer(cctx, b.names.Stream(), cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cc.Durable, err)
	}
	log := b.log.Named("consumer").With("durable", cc.Durable)
	return b.run(ctx, cons, log, func(ctx context.Context, msg jetstream.Msg, ev Event, m Meta) error {
		return deliver(ctx, msg, ev, m, log)
	}, func(msg jetstream.Msg) { _ = msg.Term() })
}

// run pulls messages from cons until ctx ends, decoding each and passing valid
// events to deliver and invalid ones to drop.
func (b *Bus) run(ctx context.Context, cons jetstream.Consumer, log hclog.Logger,
	deliver func(context.Context, jetstream.Msg, Event, Meta) error, drop func(jetstream.Msg)) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("pull messages: %w", err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() { // stops the iterator when ctx ends so Next returns
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-done:
		}
		it.Stop()
	}()
	defer func() { close(done); wg.Wait() }()

	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ErrStopped
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return fmt.Errorf("message iterator closed: %w", err)
			}
			log.Warn("pull failed, retrying", "error", err)
			select {
			case <-ctx.Done():
				return ErrStopped
			case <-wall.After(250 * time.Millisecond):
			}
			continue
		}
		ev, derr := Decode(msg.Data())
		if derr != nil {
			b.dropInvalid(log, msg.Subject(), derr)
			drop(msg)
			continue
		}
		m := Meta{Subject: msg.Subject(), Publisher: b.subjects.PublisherOf(msg.Subject())}
		if md, err := msg.Metadata(); err == nil {
			m.Seq, m.Delivered, m.Stored = md.Sequence.Stream, md.NumDelivered, md.Timestamp
		}
		if err := deliver(ctx, msg, ev, m); err != nil {
			if ctx.Err() != nil {
				return ErrStopped
			}
			log.Warn("ack failed", "event", ev.ID, "error", err)
		}
	}
}

// dropInvalid counts and logs (rate-limited) an event that failed Decode.
func (b *Bus) dropInvalid(log hclog.Logger, subject string, err error) {
	b.ignored.Ignore(log, IgnoredInvalidEvent, "event", "subject", subject, "error", b.drops.Count(err))
}

// Await waits until a delivered event has been dealt with; its error asks
// for redelivery (see ConsumePipelined).
type Await func() error

// StartHandler starts dealing with one event and returns how to wait for it.
// It is called in stream order, one event at a time, and must not block for
// long: it should hand the event on (in order) and return.
type StartHandler func(ctx context.Context, ev Event, m Meta) Await

// ConsumePipelined is Consume for a consumer that records events in order
// but slowly (the supervisor persists its state before it acks): events are
// started in order without waiting for the previous one to be recorded, and
// each is acknowledged (or, on error, redelivered) once its Await returns.
// At most maxInFlight events await at once.
func (b *Bus) ConsumePipelined(ctx context.Context, cc ConsumeConfig, maxInFlight int, start StartHandler) error {
	if maxInFlight <= 0 {
		maxInFlight = 64
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	return b.consume(ctx, cc, func(ctx context.Context, msg jetstream.Msg, ev Event, m Meta, log hclog.Logger) error {
		await := start(ctx, ev, m)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := await(); err != nil {
				if ctx.Err() == nil {
					log.Warn("handler failed, will retry", "event", ev.ID, "type", ev.Type.Short(), "delivered", m.Delivered, "error", err)
				}
				_ = msg.NakWithDelay(cc.RetryDelay)
				return
			}
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.RequestTimeout)
			defer cancel()
			if err := msg.DoubleAck(actx); err != nil && ctx.Err() == nil {
				log.Warn("ack failed", "event", ev.ID, "error", err)
			}
		}()
		return nil
	})
}
