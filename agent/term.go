package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/store"
)

// termFile keeps the newest leader term this host has obeyed on its own
// disk, synced before the agent acts on a command of that term. The bus
// keeps terms too (the leader bucket's revisions), but a bus that loses its
// newest acknowledged writes (a power loss under a lazy sync policy, a
// corrupted replica) could hand a new leader a term this host already
// obeyed from another: with the file, the host still refuses it, tells the
// leader the term it has obeyed, and the leader takes a higher one.
type termFile struct {
	path string
}

// termFileName is the file in agent.state_dir.
const termFileName = "obeyed-term"

// epochGuard is the agent's guard: starting from the term persisted in dir
// and persisting every newer one there, or in memory only when dir is "".
func epochGuard(dir string) (*events.EpochGuard, error) {
	if dir == "" {
		return &events.EpochGuard{}, nil
	}
	f, err := newTermFile(dir)
	if err != nil {
		return nil, err
	}
	term, err := f.load()
	if err != nil {
		return nil, err
	}
	return events.NewEpochGuard(term, f.store), nil
}

func newTermFile(dir string) (*termFile, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("agent.state_dir: %w", err)
	}
	return &termFile{path: filepath.Join(dir, termFileName)}, nil
}

// load returns the term stored, 0 when there is none yet. A file that does
// not hold a term is an error, not a 0: the agent must not start trusting
// terms it may have refused before.
func (f *termFile) load() (uint64, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the obeyed term: %w", err)
	}
	term, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a leader term (%q); remove it only if no supervisor of a newer term can be running", f.path, strings.TrimSpace(string(b)))
	}
	return term, nil
}

// store replaces the file with term, durably: written to a temporary file,
// synced, renamed over the old one, and the directory synced, so that a
// power loss leaves the old term or the new one, never a torn file.
func (f *termFile) store(term uint64) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), termFileName+".*")
	if err != nil {
		return fmt.Errorf("persist term %d: %w", term, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, err = tmp.WriteString(strconv.FormatUint(term, 10) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err == nil {
		err = store.SyncDir(filepath.Dir(f.path))
	}
	if err != nil {
		return fmt.Errorf("persist term %d: %w", term, err)
	}
	return nil
}
