package restarter

// WatchRounds is how many listings the watcher has compared.
func (r *Restarter) WatchRounds() uint64 { return r.watchRounds.Load() }
