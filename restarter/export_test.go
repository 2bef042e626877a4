package restarter

// WatchRounds is how many listings the watcher has compared.
func (r *Restarter) WatchRounds() uint64 { return r.watchRounds.Load() }

// WatchdogRounds is how many times the watchdog loop decided to pet or not.
func (r *Restarter) WatchdogRounds() uint64 { return r.watchdogRounds.Load() }

// ArmWithoutLease arms the fence as a first acknowledged renewal would, for
// tests that serve the handlers without Run (no lease at all).
func (r *Restarter) ArmWithoutLease() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fence.everRenewed = true
	r.armed.Store(true)
}
