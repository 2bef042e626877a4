package checkpointer

import "github.com/xenft/xenft/internal/clock"

// Option changes how NewCatalog and NewCoordinator build their value.
type Option func(*options)

type options struct {
	clock clock.Clock
}

// WithClock makes a catalog or a coordinator read the time on c instead of
// the machine's clock: the records' timestamps, the events' times and the
// durations a checkpoint reports.
func WithClock(c clock.Clock) Option {
	return func(o *options) { o.clock = c }
}

func buildOptions(opts []Option) options {
	o := options{clock: clock.Real()}
	for _, f := range opts {
		f(&o)
	}
	return o
}
