package detector

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
)

// publisherShards is how many events are in flight at once. Each host's
// events go through one shard, in order: node.suspect before node.failed
// before node.recovered. Several shards keep a mass failure (thousands of
// hosts at once) from queueing behind one round trip at a time.
const publisherShards = 4

// shardQueue bounds the events waiting in one shard. When it is full the
// monitor's loop waits: back-pressure, not loss.
const shardQueue = 4096

// publisher stores events in the stream, retrying each until it is stored
// or the monitor stops. Retrying is safe because event ids are deterministic:
// JetStream drops a copy it already has.
type publisher struct {
	clock  clock.Clock
	bus    Bus
	c      *counters
	log    hclog.Logger
	shards [publisherShards]chan events.Event
	errLog *rateLog
}

func newPublisher(bus Bus, c *counters, log hclog.Logger, clk clock.Clock) *publisher {
	p := &publisher{clock: clk, bus: bus, c: c, log: log, errLog: newRateLog(log, "cannot publish event, retrying")}
	for i := range p.shards {
		p.shards[i] = make(chan events.Event, shardQueue)
	}
	return p
}

func (p *publisher) start(ctx context.Context, wg *sync.WaitGroup) {
	for i := range p.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, p.shards[i])
		}()
	}
}

// publish queues ev; events of one host keep their order. It gives up only
// when ctx ends.
func (p *publisher) publish(ctx context.Context, host string, ev events.Event) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(host))
	select {
	case p.shards[h.Sum32()%publisherShards] <- ev:
	case <-ctx.Done():
		p.c.lost.Add(1)
	}
}

// close counts what was still queued when the monitor stopped. Call it after
// every shard's goroutine has returned.
func (p *publisher) close() {
	var lost int
	for _, q := range p.shards {
		lost += len(q)
	}
	if lost > 0 {
		p.c.lost.Add(uint64(lost))
		p.log.Warn("events not published before stop", "count", lost)
	}
}

func (p *publisher) run(ctx context.Context, q chan events.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-q:
			if !p.store(ctx, ev) {
				p.c.lost.Add(1)
				return
			}
		}
	}
}

func invalid(err error) bool {
	for _, e := range []error{events.ErrInvalid, events.ErrMalformed, events.ErrTooLarge, events.ErrUnknownType} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// store publishes ev until the stream has it; false if ctx ended first.
func (p *publisher) store(ctx context.Context, ev events.Event) bool {
	bo := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(0),
	), ctx)
	err := backoff.Retry(func() error {
		ack, err := p.bus.PublishAck(ctx, ev)
		if err != nil {
			if ctx.Err() != nil {
				return backoff.Permanent(ctx.Err())
			}
			p.c.pubErrors.Add(1)
			if invalid(err) { // a bug: retrying cannot help
				p.log.Error("event refused as invalid, dropped", "id", ev.ID, "error", err)
				return backoff.Permanent(err)
			}
			p.errLog.note(p.clock.Now(), "id", ev.ID, "error", err)
			return err
		}
		if ack.Duplicate {
			p.c.duplicate.Add(1)
		} else {
			p.c.published.Add(1)
		}
		return nil
	}, bo)
	return err == nil
}
