package checkpointer

import "github.com/xenft/xenft/internal/clock"

// Option changes how NewCatalog and NewCoordinator build their value.
type Option = clock.Option

// WithClock makes a catalog or a coordinator read the time on c instead of
// the machine's clock: the records' timestamps, the events' times and the
// durations a checkpoint reports.
func WithClock(c clock.Clock) Option { return clock.With(c) }
