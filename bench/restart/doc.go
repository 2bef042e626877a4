package main

// What the figures showed when this bench was written (2 shared cores,
// 100 x 20 VMs, 10 hosts failing; see bench/RESULTS.md for current figures):
//
//   - A single VM's decision (vm.failed -> vm.restarting) takes a few ms at
//     p50 and tens of ms at p99.
//
//   - The 200-VM burst takes seconds, not the decision core's ~2 ms
//     (BenchmarkApply_Burst10Hosts): the shell applies inputs one at a time
//     and persists the whole core state (about 370 KiB of JSON at 2,000 VMs)
//     after each one that changes it, before it acts. node.failed of the
//     later hosts waits behind the fence and restore results of the earlier
//     ones, which the timeline shows as node.fenced spread over seconds
//     although the fence command (/bin/true) returns at once. Because the
//     later failures are not applied yet, some restores are placed on hosts
//     that are already dead; they fail with "no responders" and are retried
//     after the backoff.
//
//   - The restarter's watcher reports vm.failed for domains that a
//     checkpoint is saving at that moment (the sim shows them shut down and
//     suspended, flags ---ss-, as xl does during a save); the executor and the
//     watcher do not share what is in flight. The bench counts these reports.
