package supervisor

import "github.com/xenft/xenft/internal/clock"

// Option changes how New builds a Supervisor.
type Option func(*Supervisor)

// WithClock makes the supervisor read the time, and wait, on c instead of
// the machine's clock: its leader lease (the Elector's renewals and Holds),
// the grants it gives agents and the term's floor, the times it stamps on
// the core's inputs, its schedule and its tick. Calls to the bus and the
// fence command keep real timeouts: they bound real work.
func WithClock(c clock.Clock) Option {
	return func(s *Supervisor) { s.clock = c }
}
