package main

import (
	"encoding/json"
	"fmt"
	"os"
)

// recordCall appends one invocation's arguments, as a JSON array on a line
// of its own, to the file $FAKEXL_CALLS names, if it names one: a test can
// then prove what the production driver exec'd, or that it exec'd nothing.
// Each line is one write to a file opened O_APPEND, so concurrent calls do
// not interleave within a line.
func recordCall(args []string) error {
	path := os.Getenv("FAKEXL_CALLS")
	if path == "" {
		return nil
	}
	line, err := json.Marshal(append([]string{}, args...))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("call log: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("call log %s: %w", path, err)
	}
	return nil
}
