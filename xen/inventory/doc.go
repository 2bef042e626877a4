// Package inventory is how an agent lists its host's domains: the adapter
// from a xen driver to the heartbeat beacon's detector.HostInventory (Host),
// and the domain Lister that the VM watcher and the beacon share so that one
// `xl list` serves both (lister.go).
//
// It sits apart from both sides on purpose: package detector must not import
// xen (the supervisor imports detector, and must reach no xen driver), and
// package xen knows nothing of heartbeats. The agent (cmd/xenft), the restart
// benchmark (bench/restart) and tests that run beacons over a sim share this
// one adapter instead of each writing their own.
//
// A Lister answers each caller with a listing begun no earlier than the
// caller's bound: the watcher passes the moment it read its command
// generation, the beacon an age. It runs one listing at a time (only an
// abandoned one may still be dying when the next starts), on a goroutine it
// owns, bounded by its timeout, stopped when every caller waiting for it has
// given up, and by Close; failures are reported to every waiter and never
// kept. Commands that verify their own effects (the
// restarter's restore, destroy and fence checks) do not use it: they list
// through the driver, fresh.
//
// Host is a value with no state of its own; Host and Lister are safe for
// concurrent use as far as their driver is (every xen driver is).
package inventory
