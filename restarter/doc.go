// Package restarter is the per-host executor of the supervisor's restart
// decisions, run by `xenft agent` beside the checkpointer: it restores a
// domain from a verified checkpoint image, destroys, unpauses and
// cold-starts domains, lists them; it self-fences when it loses the bus; and
// it reports the VMs that die on its host without a command (vm.failed). It
// obeys; the supervisor decides.
//
// # Commands (protocol.go, package protocol)
//
// Handlers answers vm.restore, vm.destroy, vm.unpause, vm.coldstart and
// vm.list on <prefix>.cmd.<host>.<verb>. Every command carries an epoch,
// checked by the agent's one events.EpochGuard, which the checkpointer
// shares: a command of an older leader term is refused whichever of the two
// receives it. Per VM, an epoch older than the newest received for that VM
// is refused too (stale_epoch), and commands on one VM run one at a time
// (a destroy cancels an older command still running on the VM instead of
// waiting for it). Every command is idempotent: destroying a missing domain
// succeeds, and a restore or cold start retried after it succeeded finds its
// own domain and succeeds without a second copy; any other domain of the
// name is refused with a permanent error (the supervisor destroys first).
//
// # Input (protocol/validate.go, internal/reqcheck)
//
// Before a handler does anything — before even its epoch is admitted — the
// request passes its Validate: names that xl could read as an option or that
// could leave the spool, image keys outside the store, sizes beyond
// protocol.MaxImageSize, checksums that are not 64 hex digits, config paths
// that are not absolute and clean, commands of no leader's term. A refusal
// is bad_request (the supervisor does not retry it), one line naming each
// field and its value, quoted and cut if long. The store checks keys again
// on every call, the xl driver refuses a leading '-' again, and xl is exec'd
// with its arguments as they are, never through a shell (xen/xl_exec.go).
//
// # Self-fencing (fence.go)
//
// The agent renews its lease (key <host> in xenft_hosts) every
// fence.renew_interval. If no renewal is acknowledged for fence.self_timeout
// − fence.action_timeout, it destroys every guest domain, each call bounded
// so that all are gone within fence.self_timeout of the last acknowledged
// renewal, and stays fenced — refusing restores, cold starts and unpauses,
// destroying whatever appears — until the lease is renewed again and the
// supervisor reconciles the host with a vm.list carrying a leader's epoch.
// fence.go states the rule and why it is enough.
//
// # Hardware watchdog (watchdog.go)
//
// With fence.watchdog set (e.g. /dev/watchdog), Run opens the device first
// and fails if it cannot. It pets the device every fence.watchdog_interval
// (default: a quarter of the device's timeout) only while the agent may keep
// guest domains running: its lease is fresh (last acknowledged renewal
// within fence.self_timeout), or a completed self-fence left no guest. A dead
// or wedged agent, or one that can neither renew nor complete its fence,
// pets nothing and the device resets the host. A clean stop writes the magic
// close 'V' (disarming the device) unless the agent may not keep its guests
// running at that moment. docs/fencing.md gives the guarantees and limits.
//
// # Watcher (watch.go)
//
// Every watch_interval the domains are listed (in the agent, through the
// listing it shares with the beacon: WatchThrough); a domain seen alive that
// vanishes, crashes, shuts down or comes back under a new domain id without
// a command of ours is reported once as vm.failed, with the deterministic id
// vm.failed/<host>/<incarnation>/<vm>/<domid>.
//
// # Ownership and concurrency
//
// The Restarter's state is under one mutex; handlers run concurrently (one
// goroutine per command, as ServeCommands runs them). Run owns three
// goroutines — lease renewal, fence, watcher — started with its context and
// ended before it returns, and with a watchdog a fourth, which it ends last
// (after a self-fence carried past the stop). Handlers may serve before Run starts; the fence
// clock starts with Run. FenceStatus and LastRenewal are safe from any
// goroutine.
//
// It declares the hypervisor calls it needs (Hypervisor) and takes a
// store.ImageStore; cmd/xenft wires a xen driver and a store in.
package restarter
