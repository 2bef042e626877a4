package executor

import "github.com/xenft/xenft/internal/clock"

// Option changes how New builds an Executor.
type Option func(*Executor)

// WithClock makes the executor read the time, and wait, on c instead of the
// machine's clock: a capture's pause limit (max_pause) and the durations it
// reports.
func WithClock(c clock.Clock) Option {
	return func(x *Executor) { x.clock = c }
}
