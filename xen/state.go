package xen

import "strings"

// State is the run state of a domain, reduced from Xen's six flags to the
// one a caller acts on.
type State string

const (
	StateRunning  State = "running"  // on a CPU, or runnable and waiting for one
	StateBlocked  State = "blocked"  // alive and idle (waiting on an event)
	StatePaused   State = "paused"   // paused by the toolstack; keeps its memory
	StateShutdown State = "shutdown" // shut down (or left suspended); not yet destroyed
	StateCrashed  State = "crashed"  // the guest crashed and is preserved
	StateDying    State = "dying"    // being destroyed
	StateUnknown  State = "unknown"  // the flags could not be read
)

// Alive reports whether the domain is able to make progress once unpaused:
// running, blocked or paused, but not shut down, crashed or dying.
func (s State) Alive() bool {
	return s == StateRunning || s == StateBlocked || s == StatePaused
}

// StateFromFlags reduces xl's State column to a State. xl prints six
// characters: r(unning), b(locked), p(aused), s(hutdown), then the shutdown
// reason as a letter ('-' poweroff, 'r' reboot, 's' suspend, 'c' crash,
// 'w' watchdog, 'S' soft reset, '?' unknown; xl_list.c) and d(ying). So
// "---sc-" is a crashed guest and "---ss-" one left suspended, e.g. by a
// save that was killed (seen in the nested lab). When several flags are set
// the most final one wins: a paused domain that has also crashed is, for a
// supervisor, crashed. No flag at all means runnable but not on a CPU at
// the moment: running.
func StateFromFlags(flags string) State {
	if len(flags) != 6 {
		return StateUnknown
	}
	for i := 0; i < 6; i++ {
		ok := flags[i] == '-' || flags[i] == "rbps?d"[i] // [4] is checked below
		if i == 4 {
			ok = strings.IndexByte("-rscwS?", flags[4]) >= 0
		}
		if !ok {
			return StateUnknown
		}
	}
	switch {
	case flags[5] == 'd':
		return StateDying
	case flags[4] == 'c' || flags[4] == 'w': // a watchdog reset is a hung guest
		return StateCrashed
	case flags[3] == 's' || flags[4] != '-':
		return StateShutdown
	case flags[2] == 'p':
		return StatePaused
	case flags[1] == 'b':
		return StateBlocked
	}
	return StateRunning
}
