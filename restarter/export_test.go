package restarter

// WatchRounds is how many listings the watcher has compared.
func (r *Restarter) WatchRounds() uint64 { return r.watchRounds.Load() }

// WatchdogRounds is how many times the watchdog loop decided to pet or not.
func (r *Restarter) WatchdogRounds() uint64 { return r.watchdogRounds.Load() }
