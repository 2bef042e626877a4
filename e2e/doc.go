// Package e2e is xenft's end-to-end chaos suite (make e2e). It has no code
// of its own outside tests; its tests build under the e2e tag, so that
// make test does not run them a second time, and run with
//
//	go test -race -tags e2e -timeout 15m -v ./e2e
//
// # What runs
//
// Every scenario starts a cluster of separate OS processes on loopback, as a
// site runs them: a 3-node `xenft server` JetStream cluster (stream, buckets
// and object store with replicas 3), two `xenft supervisor`s (one leads),
// two `xenft detector`s and four `xenft agent`s, each driving its own host's
// fake xl (xen/cmd/fakexl: the production xl driver execs it; each host has
// its own state directory). The binaries are built once, the xenft one with
// -race, so a data race in any process fails the suite. The test process
// itself only plays the operator and the chaos monkey: it registers VMs,
// asks for checkpoints, injects the fault, watches the event stream and
// reads the fake hosts' state.
//
// Images live in the NATS object store (store.backend nats), not in a
// shared directory: then the images are replicated by the same cluster as
// everything else, and "one NATS server killed" also proves that a restore
// still finds every image on the two that are left. The corrupted-image
// scenario damages an object's content while keeping its recorded
// checksum, as bit rot in the store would.
//
// # Scenarios and what each proves
//
// Each scenario injects one fault and then asserts the same three things:
// every VM whose policy restarts it runs exactly once across the four hosts
// and keeps doing so for a few seconds; a VM that was restored resumed from
// the progress recorded in the image of its group's latest verified
// committed checkpoint (taken before the fault, checked by reading the
// images); and the event stream tells the story in order (node.failed,
// node.fenced, vm.restarting, vm.restarted, group.rolled_back, ...), with
// no VM restarted twice. At the end no xenft or fake xl process is left.
//
//   - host crash: the agent and its domains die (SIGKILL, power cut);
//   - agent crash with the domains alive: either the agent comes back at
//     once and keeps its host, or it stays dead and the fence command powers
//     the host off before its VMs start elsewhere;
//   - network partition of one agent: the agent runs in a network namespace
//     behind a veth pair whose link the test takes down (packets vanish, TCP
//     stalls); it must fence itself, its VMs restart elsewhere, and when the
//     link comes back it rejoins without a second copy of anything. Needs
//     root (ip netns); skipped with a message otherwise;
//   - the leading supervisor killed while restores are in flight;
//   - one of the three NATS servers killed;
//   - a checkpoint whose save fails: it aborts, and a later rollback uses
//     the previous one;
//   - the latest checkpoint's image corrupted: the rollback falls back to
//     the previous verified checkpoint for the whole group.
//
// Timing: fence timeouts and leases are shortened (seconds) so that each
// scenario takes well under a minute; every wait has a deadline of tens of
// seconds, generous for a loaded 2-core machine, and the package's total is
// bounded by go test -timeout.
package e2e
