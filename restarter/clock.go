package restarter

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
)

// Option changes how New builds a Restarter.
type Option func(*Restarter)

// WithClock makes the restarter read the time, and wait, on c instead of the
// machine's clock: the lease renewals' pace and acknowledgement times, the
// self-fence deadline and its action's, the watcher's and the watchdog's
// rounds, and the durations commands report. Toolstack calls keep real
// timeouts: they bound real work. A clockwork.FakeClock makes the self-fence
// timing testable to the millisecond (fence_clock_test.go).
func WithClock(c clockwork.Clock) Option {
	return func(r *Restarter) { r.clock = c }
}

// withTimeout is context.WithTimeout on r's clock. clockwork's own context
// helpers cannot serve: their Err blocks until the context is done, and the
// NATS client asks Err before every request. On the machine's clock it is
// context.WithTimeout itself (a real deadline the NATS client turns into its
// request timeout); on a fake clock the context is cancelled, with
// context.DeadlineExceeded as its cause, when the clock reaches d.
func (r *Restarter) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, fake := r.clock.(*clockwork.FakeClock); !fake {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := r.clock.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() { t.Stop(); cancel(context.Canceled) }
}
