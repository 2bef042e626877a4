package detector

import "github.com/xenft/xenft/internal/clock"

// Option changes how NewBeacon and NewMonitor build their value.
type Option = clock.Option

// WithClock makes a beacon or a monitor read the time, and wait, on c
// instead of the machine's clock: the beats' pace and send times, the
// monitor's ticks and the times it judges silences by, the plug-ins'
// schedule.
func WithClock(c clock.Clock) Option { return clock.With(c) }
