package clock

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
)

// Clock is the time source every timing decision reads.
type Clock = clockwork.Clock

// Real is the machine's clock.
func Real() Clock { return clockwork.NewRealClock() }

// WithTimeout is context.WithTimeout on c.
//
// clockwork's own context helpers cannot serve: their Err blocks until the
// context is done, and the NATS client asks Err before every request. On
// the machine's clock this is context.WithTimeout itself (a real deadline,
// which the NATS client turns into its request timeout); on a fake clock the
// context has no deadline and is cancelled, with context.DeadlineExceeded as
// its cause, when the clock reaches d.
func WithTimeout(ctx context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, fake := c.(*clockwork.FakeClock); !fake {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := c.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() { t.Stop(); cancel(context.Canceled) }
}

// WithDeadline is context.WithDeadline on c (see WithTimeout).
func WithDeadline(ctx context.Context, c Clock, at time.Time) (context.Context, context.CancelFunc) {
	if _, fake := c.(*clockwork.FakeClock); !fake {
		return context.WithDeadline(ctx, at)
	}
	return WithTimeout(ctx, c, c.Until(at))
}

// Sleep waits d on c, or until ctx ends.
func Sleep(ctx context.Context, c Clock, d time.Duration) {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.Chan():
	}
}

// Timer is a timer of a Clock (clockwork.Timer).
type Timer = clockwork.Timer

// Option sets the clock of a value whose constructor takes options
// (detector.WithClock, checkpointer.WithClock).
type Option func(*Options)

// Options are what an Option sets.
type Options struct {
	Clock Clock
}

// With is the Option that sets c.
func With(c Clock) Option { return func(o *Options) { o.Clock = c } }

// Build applies opts over the defaults (the machine's clock).
func Build(opts []Option) Options {
	o := Options{Clock: Real()}
	for _, f := range opts {
		f(&o)
	}
	return o
}
