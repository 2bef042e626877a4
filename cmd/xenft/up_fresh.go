package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// upStateDirs are what a run of `xenft up` keeps under its data directory:
// the embedded server's JetStream state, the image store, the simulated
// hosts' spools and configs, and the run's credentials.
var upStateDirs = []string{"nats", "images", "hosts", "auth"}

// startFresh makes dataDir ready for a new demo run and returns the lock
// that keeps a second `xenft up` off it until this one ends.
//
// A demo does not resume: its simulated hosts and their VMs live in this
// process's memory and died with the last run, while the bus would still
// hold that run's supervisor state, host leases, checkpoint catalog and
// images. Resuming that made the new run start by judging hosts against an
// old run's leases and VMs (the first minutes of a rerun on a reused
// ./.xenft), and its summary counted the old run's events. So every run
// starts from an empty bus, and says so when it removed a previous run's
// state. The log file is kept (appended to).
func startFresh(dataDir string, out io.Writer) (*os.File, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dataDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s: another xenft up is using it (run this one with --data DIR)", dataDir)
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dataDir, err)
	}
	var removed []string
	for _, name := range upStateDirs {
		p := filepath.Join(dataDir, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			lock.Close()
			return nil, fmt.Errorf("data dir %s: remove the previous run's %s: %w", dataDir, name, err)
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		fmt.Fprintf(out, "starting fresh: removed the previous run's state in %s (%s); a demo's simulated VMs do not outlive it\n",
			dataDir, strings.Join(removed, ", "))
	}
	return lock, nil
}
