// Package detector turns heartbeats into node events.
//
// Three parts, one concept per file:
//
//   - Beacon (beacon.go), run by `xenft agent` on every host: publishes a
//     Heartbeat (heartbeat.go) on <prefix>.hb.<host>, core NATS, every
//     BeaconConfig.Interval, with the host's incarnation (new at every start),
//     a sequence number and the latest HostInventory listing, which a separate
//     loop refreshes so a slow toolstack never delays a beat (at once, too,
//     after a listing the agent's VM watcher caused: ListingNotifier).
//   - Monitor (monitor.go), run by `xenft detector`: subscribes to every
//     host's beats and feeds a Tracker (tracker.go), the pure decision core:
//     per host a Window of inter-arrival times (phi.go) and a state machine
//     alive -> suspect -> failed -> alive, driven only by Beat(heartbeat,
//     receive time), ProbeReply(reply, receive time) and Tick(now), with no
//     clock, goroutine, I/O or logging inside. Its Transitions become
//     node.suspect, node.failed and node.recovered events with
//     deterministic ids (ids.go), so that several detectors store each
//     transition once. Before it fails a silent host it asks for Probes
//     (probe.go): the Monitor sends them on <prefix>.hb.probe.<host>
//     (prober.go) and the agent's Beacon answers (AnswerProbes); a reply
//     defers the failure. The Monitor also runs the exec plug-ins of
//     Config.Plugins (plugin.go), which publish node.fault.
//   - The QoS benchmark (bench/detect) drives the same Tracker on a
//     simulated clock.
//
// Detectors only publish events; they never act on hosts.
//
// Ownership and concurrency: a Beacon's Run owns its sequence number (its
// probe responder reads it atomically); its inventory loop hands the latest
// listing over through an atomic pointer. A Monitor's Run goroutine owns the
// Tracker and the probes in flight; publishing goes through
// per-host-ordered queues served by a few goroutines, and each plug-in has
// its own goroutine. Run (of either) is called once and returns after every
// goroutine it started has ended (AnswerProbes likewise). Stats, Metrics, Incarnation, ID and Ready
// are safe to call from any goroutine. A Tracker or Window is not safe for
// concurrent use. See docs/detectors.md for the model, defaults and
// benchmarks.
package detector
