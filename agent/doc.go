// Package agent is everything xenft runs in dom0 of one host, composed and
// owned in one place: the heartbeat beacon and its answer to the detectors'
// probes (package detector), the checkpoint executor (checkpointer/executor),
// the restarter with its self-fence lease and VM watcher (restarter), and the
// command server that answers the supervisor for both.
//
// New builds the parts from one Config; Run owns their goroutines: it
// returns when ctx ends or when any part stops (then every part stops), and
// unpauses domains a checkpoint left paused on the way out. `xenft agent`
// runs one Agent, `xenft up` one per simulated host, and bench/restart one
// per benchmark host, so that none of them can forget a part (a beacon run
// without AnswerProbes leaves a live host without its defence against lost
// beats, and nothing says so).
//
// The parts are wired as the safety rules need:
//   - the executor and the restarter share one events.EpochGuard, so a
//     command of an older leader term is refused whichever receives it;
//   - beats carry whether the self-fence is armed (restarter.FenceArmed):
//     until it is, a supervisor must not count the host as self-fenced;
//   - a capture suspends the guest while it is saved, so the executor's
//     hypervisor is wrapped by the restarter's HoldSaves and the watcher
//     does not report the pause as a failure;
//   - one domain listing serves the watcher and the beacon (an `xl list`
//     takes the toolstack's lock on a real dom0).
package agent
