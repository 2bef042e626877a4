package restarter

import (
	"context"
	"time"

	"github.com/xenft/xenft/internal/clock"
)

// Option changes how New builds a Restarter.
type Option func(*Restarter)

// WithClock makes the restarter read the time, and wait, on c instead of the
// machine's clock: the lease renewals' pace and acknowledgement times, the
// self-fence deadline and its action's, the watcher's and the watchdog's
// rounds, and the durations commands report. Toolstack calls keep real
// timeouts: they bound real work. A clockwork.FakeClock makes the self-fence
// timing testable to the millisecond (fence_clock_test.go).
func WithClock(c clock.Clock) Option {
	return func(r *Restarter) { r.clock = c }
}

// withTimeout is context.WithTimeout on r's clock (internal/clock).
func (r *Restarter) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return clock.WithTimeout(ctx, r.clock, d)
}
