package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xenft/xenft/xen"
)

// store is the fake xl's state directory ($FAKEXL_STATE):
//
//	lock           flock(2)ed for the whole of every invocation, so that
//	               concurrent xl calls see each other's effects in order
//	state.json     the sim's domains (xen.SimState) and the host's start time
//	faults/<verb>  a fault switch for the next call of that verb (see fault)
//	hang.pids      written by a hanging call: its pid and its child's
type store struct {
	dir  string
	lock *os.File
}

type stateFile struct {
	Started time.Time    `json:"started"` // dom0's "boot", for its Time(s)
	Sim     xen.SimState `json:"sim"`
}

// openStore locks the state directory. The lock is released when the
// process exits, however it exits (the kernel drops flock locks with the
// last descriptor), so a killed fake xl never wedges the next one.
func openStore(dir string) (*store, error) {
	if dir == "" {
		return nil, errors.New("FAKEXL_STATE is not set")
	}
	if err := os.MkdirAll(filepath.Join(dir, "faults"), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return &store{dir: dir, lock: f}, nil
}

// close releases the lock; exiting does the same, but tests call run
// in-process many times.
func (s *store) close() { s.lock.Close() }

func (s *store) load() (stateFile, error) {
	var st stateFile
	data, err := os.ReadFile(filepath.Join(s.dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return stateFile{Started: time.Now()}, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(s.dir, "state.json"), err)
	}
	return st, nil
}

// save writes the state atomically, so a fake xl killed mid-write leaves
// the previous state, as a killed real xl leaves the hypervisor's.
func (s *store) save(st stateFile) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, "state.json"))
}

// fault returns the fault switched on for verb and switches it off: faults
// apply to the next call only. Modes: "fail", "hang", "truncate" (save).
func (s *store) fault(verb string) string {
	p := filepath.Join(s.dir, "faults", verb)
	data, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	os.Remove(p)
	return strings.TrimSpace(string(data))
}

// hang never returns: it stands for an xl stuck in the hypervisor. It first
// starts a child that shares its output pipes, as xl's forked helpers do,
// and records both pids so a test can check that a timeout killed both.
func (s *store) hang() {
	self, err := os.Executable()
	pids := fmt.Sprintf("%d\n", os.Getpid())
	if err == nil {
		child := &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}}
		if p, err := os.StartProcess(self, []string{self, hangChildArg}, child); err == nil {
			pids += fmt.Sprintf("%d\n", p.Pid)
		}
	}
	os.WriteFile(filepath.Join(s.dir, "hang.pids"), []byte(pids), 0o644)
	for {
		time.Sleep(time.Hour)
	}
}

// hangChildArg makes the fake xl binary act as the hanging child.
const hangChildArg = "__fakexl_hang_child"
