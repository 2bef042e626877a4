// Package inventory is what an agent reports of its host's domains: the
// adapter from a xen driver to the heartbeat beacon's detector.HostInventory.
//
// It sits apart from both sides on purpose: package detector must not import
// xen (the supervisor imports detector, and must reach no xen driver), and
// package xen knows nothing of heartbeats. The agent (cmd/xenft), the restart
// benchmark (bench/restart) and tests that run beacons over a sim share this
// one adapter instead of each writing their own.
//
// Host is a value with no state of its own; it is safe for concurrent use as
// far as its driver is (every xen driver is).
package inventory
