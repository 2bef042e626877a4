// Command xenft is the single binary of xenft: one subcommand per role
// (up, server, agent, detector, supervisor) and the operator's tools (events,
// event, status, checkpoint, vm). main only wires; the roles live in their
// packages.
package main

import (
	"errors"
	"fmt"
	"os"
)

// Exit statuses: 2 for bad input (usage, configuration, an invalid event),
// which a script can tell apart from 1, a failure while doing the work.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	err := newRootCommand().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "xenft: "+oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) {
		os.Exit(exitUsage)
	}
	os.Exit(exitFailure)
}

// usageError marks bad input: the command refuses it before doing anything.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func asUsage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}
