package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// inode is the state of one backing file that is open through the mount or
// has unsynced data. Its key is the backing file's inode number.
//
// Once an inode had an overlay it holds wfd, a descriptor of the backing
// file of its own, until the entry goes: the data can be written back after
// every handle closed or the file was renamed or unlinked, and the backing
// inode (so its number) cannot be freed and reused while the entry lives.
// Entries that never had an overlay are pinned by the open handles that
// hold them.
type inode struct {
	ino uint64

	mu  sync.RWMutex
	wfd *os.File // read-write; once ov was set, until the entry goes
	ov  *overlay // nil: the backing file is the content
}

// inodes holds the entries, and counts for Stats.
type inodes struct {
	mu    sync.Mutex
	byIno map[uint64]*inode
	refs  map[*inode]int // open handles and calls in progress

	// Counted without t.mu: the data paths count while they hold an
	// inode's lock, and t.mu comes before an inode's lock.
	fsyncs, writes atomic.Uint64

	// writeBacks counts completed write-backs: a stat of a backing file
	// that raced one is taken again (see node.statSize).
	writeBacks atomic.Uint64

	powerLosses int
	dropped     Loss
}

func newInodes() *inodes {
	return &inodes{byIno: make(map[uint64]*inode), refs: make(map[*inode]int)}
}

// pin returns the entry of ino, making one if needed; it stays until the
// matching unpin.
func (t *inodes) pin(ino uint64) *inode {
	t.mu.Lock()
	defer t.mu.Unlock()
	in, ok := t.byIno[ino]
	if !ok {
		in = &inode{ino: ino}
		t.byIno[ino] = in
	}
	t.refs[in]++
	return in
}

// unpin releases a pin. The last one removes the entry if it holds no
// unsynced data, or if its file has been unlinked (nothing could ever read
// that data, through the mount or after a power loss).
func (t *inodes) unpin(in *inode) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refs[in]--
	if t.refs[in] > 0 {
		return
	}
	delete(t.refs, in)
	t.dropIfUnusedLocked(in)
}

// dropIfUnusedLocked removes an unpinned entry that is clean or whose file
// is gone. t.mu is held.
func (t *inodes) dropIfUnusedLocked(in *inode) {
	if t.refs[in] > 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ov != nil && linked(in.wfd) {
		return
	}
	in.closeLocked()
	delete(t.byIno, in.ino)
}

// forgetIfGone is called after an unlink or a rename over a file: if that
// removed the last name of ino, its unsynced data goes (once no handle
// holds it).
func (t *inodes) forgetIfGone(ino uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if in, ok := t.byIno[ino]; ok {
		t.dropIfUnusedLocked(in)
	}
}

// lookup returns the entry of ino, or nil.
func (t *inodes) lookup(ino uint64) *inode {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byIno[ino]
}

// size reports the content's size of ino when it has unsynced data.
func (t *inodes) size(ino uint64) (int64, bool) {
	in := t.lookup(ino)
	if in == nil {
		return 0, false
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.ov == nil {
		return 0, false
	}
	return in.ov.size, true
}

// powerLoss drops every overlay and returns what was lost.
func (t *inodes) powerLoss() Loss {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lost Loss
	for ino, in := range t.byIno {
		in.mu.Lock()
		if ov := in.ov; ov != nil && ov.changed() {
			lost.Files++
			lost.Writes += ov.writes
			lost.Bytes += ov.bytes
			lost.Truncates += ov.truncates
		}
		in.ov = nil
		if t.refs[in] == 0 {
			in.closeLocked()
			delete(t.byIno, ino)
		}
		in.mu.Unlock()
	}
	t.powerLosses++
	t.dropped = lost
	return lost
}

// syncAll writes back every overlay, as sync(2) would on a real file
// system.
func (t *inodes) syncAll() error {
	t.mu.Lock()
	all := make([]*inode, 0, len(t.byIno))
	for _, in := range t.byIno {
		all = append(all, in)
		t.refs[in]++
	}
	t.mu.Unlock()
	var errs []error
	for _, in := range all {
		in.mu.Lock()
		errs = append(errs, in.syncLocked(t))
		in.mu.Unlock()
		t.unpin(in)
	}
	return errors.Join(errs...)
}

// closeAll closes every entry's descriptor, once the file system is
// unmounted (handles that were never released, after an abort, still pin
// their entries).
func (t *inodes) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ino, in := range t.byIno {
		in.mu.Lock()
		in.closeLocked()
		in.mu.Unlock()
		delete(t.byIno, ino)
		delete(t.refs, in)
	}
}

func (t *inodes) stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Stats{
		Fsyncs:        t.fsyncs.Load(),
		Writes:        t.writes.Load(),
		PowerLosses:   t.powerLosses,
		LastPowerLoss: t.dropped,
	}
	for _, in := range t.byIno {
		in.mu.RLock()
		if ov := in.ov; ov != nil && ov.changed() {
			s.Unsynced.Files++
			s.Unsynced.Writes += ov.writes
			s.Unsynced.Bytes += ov.bytes
			s.Unsynced.Truncates += ov.truncates
		}
		in.mu.RUnlock()
	}
	return s
}

// dirtyLocked returns the overlay, starting one over the backing file when
// the inode was clean. reopen opens the backing file read-write. in.mu is
// held for writing.
func (in *inode) dirtyLocked(reopen func() (*os.File, error)) (*overlay, error) {
	if in.ov != nil {
		return in.ov, nil
	}
	if in.wfd == nil {
		f, err := reopen()
		if err != nil {
			return nil, fmt.Errorf("open backing inode %d for write-back: %w", in.ino, err)
		}
		in.wfd = f
	}
	st, err := in.wfd.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat backing inode %d: %w", in.ino, err)
	}
	in.ov = newOverlay(st.Size())
	return in.ov, nil
}

// syncLocked writes the overlay back and fsyncs the backing file. in.mu is
// held for writing.
func (in *inode) syncLocked(t *inodes) error {
	if in.ov == nil {
		return nil
	}
	if err := in.ov.writeBack(in.wfd); err != nil {
		return fmt.Errorf("backing inode %d: %w", in.ino, err)
	}
	if err := in.wfd.Sync(); err != nil {
		return fmt.Errorf("fsync backing inode %d: %w", in.ino, err)
	}
	in.ov = nil
	t.writeBacks.Add(1) // before in.mu is released: see node.statSize
	return nil
}

// closeLocked forgets the overlay and closes wfd, as the entry goes.
// in.mu is held for writing.
func (in *inode) closeLocked() {
	if in.wfd != nil {
		in.wfd.Close()
	}
	in.wfd, in.ov = nil, nil
}

// linked reports whether the file f still has a name. A file that cannot
// be stat'ed counts as linked: keep the data rather than lose it silently.
func linked(f *os.File) bool {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return true
	}
	return st.Nlink > 0
}
