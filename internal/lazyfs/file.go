package lazyfs

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// handle is an open regular file. Reads and writes go through its inode's
// overlay; its own descriptor of the backing file serves reads while the
// inode is clean, and fstat-based attributes.
//
// handle deliberately does not embed fs.LoopbackFile: what that serves
// directly from the backing file (reads, writes, fsync, passthrough,
// copy_file_range, ioctl) would bypass the overlay.
type handle struct {
	lf   *fs.LoopbackFile // owns fd; attributes and locks
	fd   int
	in   *inode // pinned until Release
	t    *inodes
	sync bool // opened O_SYNC or O_DSYNC: every write is an fsync too
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileWritever  = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileLseeker   = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

// reopen opens the backing file read-write, through this handle's
// descriptor: it reaches the file even after a rename or an unlink.
func (h *handle) reopen() (*os.File, error) {
	return os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", h.fd), os.O_RDWR, 0)
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	in := h.in
	in.mu.RLock()
	defer in.mu.RUnlock()
	var n int
	var err error
	if in.ov != nil {
		n, err = in.ov.read(dest, off, in.wfd)
	} else {
		n, err = preadFull(h.fd, dest, off)
	}
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.t.writes.Add(1)
	errno := h.change(func(ov *overlay) error { return ov.write(data, off, h.in.wfd) })
	if errno != 0 {
		return 0, errno
	}
	return uint32(len(data)), 0
}

// change applies fn to the inode's overlay (starting one if the inode is
// clean), and writes it back at once if the handle is O_SYNC or O_DSYNC.
func (h *handle) change(fn func(ov *overlay) error) syscall.Errno {
	in := h.in
	in.mu.Lock()
	defer in.mu.Unlock()
	ov, err := in.dirtyLocked(h.reopen)
	if err != nil {
		return fs.ToErrno(err)
	}
	if err := fn(ov); err != nil {
		return fs.ToErrno(err)
	}
	if h.sync {
		h.t.fsyncs.Add(1)
		if err := in.syncLocked(h.t); err != nil {
			return syscall.EIO
		}
	}
	return 0
}

// Writev is one write of the slices laid end to end (the kernel sends
// them for one write(2) of a large buffer).
func (h *handle) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, b := range data {
		all = append(all, b...)
	}
	return h.Write(ctx, all, off)
}

// truncate sets the file's size in the overlay.
func (h *handle) truncate(size int64) syscall.Errno {
	return h.change(func(ov *overlay) error { return ov.truncate(size) })
}

// Fsync writes the file's unsynced data back and fsyncs the backing file
// (fdatasync too: flags are ignored, both make the data durable).
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.t.fsyncs.Add(1)
	in := h.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ov == nil {
		return fs.ToErrno(syscall.Fsync(h.fd))
	}
	if err := in.syncLocked(h.t); err != nil {
		return syscall.EIO
	}
	return 0
}

// Flush (close(2)) makes nothing durable, as with a page cache.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Release(ctx context.Context) syscall.Errno {
	errno := h.lf.Release(ctx)
	h.t.unpin(h.in)
	return errno
}

// Lseek answers SEEK_DATA and SEEK_HOLE as if the whole file were data
// (the kernel serves SEEK_SET, SEEK_CUR and SEEK_END itself, from the size
// Getattr reports).
func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	size, errno := h.size()
	if errno != 0 {
		return 0, errno
	}
	if int64(off) >= size {
		return 0, syscall.ENXIO
	}
	switch whence {
	case unix.SEEK_DATA:
		return off, 0
	case unix.SEEK_HOLE:
		return uint64(size), 0
	}
	return 0, syscall.EINVAL
}

// Allocate extends the file (mode 0) in the overlay; FALLOC_FL_KEEP_SIZE
// only reserves space, which a test does not need. Other modes (punching
// holes, zeroing ranges) are not supported.
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	switch mode {
	case unix.FALLOC_FL_KEEP_SIZE:
		return 0
	case 0:
	default:
		return syscall.EOPNOTSUPP
	}
	return h.change(func(ov *overlay) error {
		if end := int64(off + size); end > ov.size {
			return ov.truncate(end)
		}
		return nil
	})
}

// size is the file's size, unsynced data included.
func (h *handle) size() (int64, syscall.Errno) {
	in := h.in
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.ov != nil {
		return in.ov.size, 0
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return 0, fs.ToErrno(err)
	}
	return st.Size, 0
}

// preadFull reads into p at off until p is full or the file ends.
func preadFull(fd int, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Pread(fd, p[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}
