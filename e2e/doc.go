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
// its own state directory). The binaries are built once: the supervisors,
// detectors and agents run xenft built with -race, so a data race in any of
// them fails the suite; the servers run it without (nats-server's code under
// the race detector was slow enough to hold heartbeats back for seconds
// behind image replication, and to fail live hosts). The test process
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
// committed checkpoint (found before the fault by reading every image, as a
// restore would); and the event stream tells the story in order
// (node.failed, node.fenced, vm.restarting, vm.restarted,
// group.rolled_back, ...), with no VM restarted twice. At the end no xenft
// or fake xl process is left. The story is read from the stream one
// sequence after the other (story_test.go says why not through a consumer).
//
//   - host crash (host_crash_test.go): the agent, its xl calls and its
//     domains die at once;
//   - agent crash with the domains alive (agent_crash_test.go): either the
//     agent comes back (at once, or after its host was declared failed) and
//     keeps its host and its VMs, or it stays dead and the fence command
//     powers the host off before its VMs start elsewhere;
//   - network partition of one agent (partition_test.go): the agent runs in
//     a network namespace behind a veth pair whose link the test takes down
//     (packets vanish, TCP stalls); it must fence itself before its VMs
//     restart elsewhere, and when the link comes back it rejoins without a
//     second copy of anything. Needs root and ip (iproute2); skipped with a
//     message otherwise;
//   - the leading supervisor killed while restores are in flight
//     (leader_test.go);
//   - one NATS server killed, the one leading the hosts bucket
//     (nats_test.go): with a lease window longer than a JetStream failover
//     nothing may happen; with a shorter one nothing may happen either,
//     because the leading supervisor's lease grants renew every agent it
//     reaches (the leader bucket's own leader is moved off the victim
//     first);
//   - a checkpoint whose save fails, and the latest checkpoint's image
//     corrupted (checkpoint_faults_test.go): the rollback uses the previous
//     verified checkpoint, for the whole group.
//
// # The soak lane
//
// TestSoak (soak_test.go; make soak, docs/soak.md) runs the same cluster for
// as long as SOAK says, each role behind a fault-injecting proxy and each
// server's store on a FUSE disk that can stall, injects seeded random faults
// (CPU quotas, a hog, frozen agents, slow and cut links, stalled disks, NATS
// restarts) and host crashes, and checks every second that each VM runs
// exactly once, that no healthy host is fenced and that every crash is
// recovered from the latest consistent checkpoint. Without SOAK it is
// skipped, so make e2e does not run it.
//
// Timing: fence timeouts and leases are shortened (a host's VMs restart 10 s
// after its last beat) so that a scenario takes under a minute and the
// suite about four on two cores; every wait has a deadline of tens of
// seconds, generous for a loaded machine, and the whole is bounded by go
// test -timeout.
package e2e
