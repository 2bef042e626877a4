package lazyfs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose files keep their data in an overlay until
// fsync. Names (create, mkdir, rename, unlink, rmdir, link, symlink) and
// attributes other than the size pass through to the backing directory at
// once; what it overrides is where a file's size or data is read or
// changed.
type node struct {
	*fs.LoopbackNode
	t *inodes
}

// The calls node serves itself; every other one is the loopback's.
var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// WrapChild makes every node of the tree a lazyfs node.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), t: n.t}
}

// backingPath is the node's path in the backing directory (of its child
// name, if name is not "").
func (n *node) backingPath(name string) string {
	return filepath.Join(n.RootData.Path, n.Path(nil), name)
}

// statSize reports a file's size including its unsynced data: the kernel
// trusts this size (stat, SEEK_END, O_APPEND). stat stats the backing
// file into a; the size then comes from the overlay, if any. A write-back
// that completes between the two would leave neither the overlay nor the
// stat's size right, so then the stat is taken again.
func (n *node) statSize(a *fuse.Attr, stat func() syscall.Errno) syscall.Errno {
	for {
		gen := n.t.writeBacks.Load()
		if errno := stat(); errno != 0 {
			return errno
		}
		if a.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return 0
		}
		if size, ok := n.t.size(a.Ino); ok { // a.Ino is still the backing inode's
			a.Size = uint64(size)
		}
		if n.t.writeBacks.Load() == gen {
			return 0
		}
	}
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno != 0 {
		return nil, errno
	}
	first := true
	errno = n.statSize(&out.Attr, func() syscall.Errno {
		if first { // Lookup's own stat
			first = false
			return 0
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(n.backingPath(name), &st); err != nil {
			return fs.ToErrno(err)
		}
		out.Attr.FromStat(&st)
		return 0
	})
	if errno != 0 {
		return nil, errno
	}
	return ch, 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return n.statSize(&out.Attr, func() syscall.Errno {
		if h, ok := f.(*handle); ok {
			return h.lf.Getattr(ctx, out) // fstat: works after an unlink too
		}
		return n.LoopbackNode.Getattr(ctx, nil, out)
	})
}

func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	for {
		gen := n.t.writeBacks.Load()
		var errno syscall.Errno
		if h, ok := f.(*handle); ok {
			errno = h.lf.Statx(ctx, flags, mask, out)
		} else {
			errno = n.LoopbackNode.Statx(ctx, nil, flags, mask, out)
		}
		if errno != 0 || out.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return errno
		}
		if size, ok := n.t.size(out.Ino); ok {
			out.Size = uint64(size)
		}
		if n.t.writeBacks.Load() == gen {
			return 0
		}
	}
}

// Setattr truncates in the overlay; mode, owner and times pass through.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	h, _ := f.(*handle)
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(h, int64(size)); errno != 0 {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	if h != nil {
		if errno := h.lf.Setattr(ctx, in, out); errno != 0 {
			return errno
		}
	} else if errno := n.LoopbackNode.Setattr(ctx, nil, in, out); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, f, out)
}

// truncate sets the size in the overlay: through the handle h, or by path
// (truncate(2)) when h is nil.
func (n *node) truncate(h *handle, size int64) syscall.Errno {
	if h != nil {
		return h.truncate(size)
	}
	p := n.backingPath("")
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fs.ToErrno(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return syscall.EINVAL
	}
	in := n.t.pin(st.Ino)
	defer n.t.unpin(in)
	in.mu.Lock()
	defer in.mu.Unlock()
	ov, err := in.dirtyLocked(func() (*os.File, error) { return os.OpenFile(p, os.O_RDWR, 0) })
	if err != nil {
		return fs.ToErrno(err)
	}
	return fs.ToErrno(ov.truncate(size))
}

// Open opens the backing file and serves its data through the overlay,
// with direct I/O: the kernel keeps no pages of it, so nothing it cached
// can outlive a power loss. O_TRUNC truncates in the overlay, not the
// backing file.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	trunc := flags&syscall.O_TRUNC != 0
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags&^(syscall.O_TRUNC|syscall.O_DIRECT))
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.wrap(fh, flags)
	if errno != 0 {
		fh.(fs.FileReleaser).Release(ctx)
		return nil, 0, errno
	}
	if h == nil {
		return fh, fuseFlags, 0
	}
	if trunc {
		if errno := h.truncate(0); errno != 0 {
			h.Release(ctx)
			return nil, 0, errno
		}
	}
	return h, fuseFlags | fuse.FOPEN_DIRECT_IO, 0
}

// Create creates the file in the backing directory at once (a name is
// metadata); an existing file opened with O_TRUNC is truncated in the
// overlay.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	var st syscall.Stat_t
	existed := syscall.Lstat(n.backingPath(name), &st) == nil
	trunc := flags&syscall.O_TRUNC != 0 && existed
	ch, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags&^(syscall.O_TRUNC|syscall.O_DIRECT), mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h, errno := n.wrap(fh, flags)
	if errno != 0 {
		fh.(fs.FileReleaser).Release(ctx)
		return nil, nil, 0, errno
	}
	if h == nil {
		return ch, fh, fuseFlags, 0
	}
	if trunc {
		if errno := h.truncate(0); errno != 0 {
			h.Release(ctx)
			return nil, nil, 0, errno
		}
	}
	var attr fuse.AttrOut
	if errno := n.Getattr(ctx, h, &attr); errno == 0 {
		out.Attr.Size = attr.Size
	}
	return ch, h, fuseFlags | fuse.FOPEN_DIRECT_IO, 0
}

// wrap makes a handle of the loopback's file if it is a regular file; for
// others it returns nil and the loopback's file serves them.
func (n *node) wrap(fh fs.FileHandle, flags uint32) (*handle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	fd, ok := lf.PassthroughFd() // the descriptor lf owns until Release
	if !ok {
		return nil, syscall.EBADF
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, 0
	}
	return &handle{
		lf:   lf,
		fd:   fd,
		in:   n.t.pin(st.Ino),
		t:    n.t,
		sync: flags&syscall.O_DSYNC != 0, // O_SYNC includes O_DSYNC's bit
	}, 0
}

// Tmpfile is not supported: an O_TMPFILE file would need its own path to
// the overlay, and nothing we test uses one.
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// CopyFileRange would copy between backing files behind the overlay's
// back; ENOSYS makes the kernel copy through read and write.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Unlink passes through; the unsynced data of a file that lost its last
// name goes with it (once no handle holds it).
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	var st syscall.Stat_t
	statted := syscall.Lstat(n.backingPath(name), &st) == nil
	if errno := n.LoopbackNode.Unlink(ctx, name); errno != 0 {
		return errno
	}
	if statted && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		n.t.forgetIfGone(st.Ino)
	}
	return 0
}

// Rename passes through; a file it replaces is unlinked.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	var st syscall.Stat_t
	target := filepath.Join(n.RootData.Path, newParent.EmbeddedInode().Path(nil), newName)
	replaces := flags&unix.RENAME_EXCHANGE == 0 && syscall.Lstat(target, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG
	if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
		return errno
	}
	if replaces {
		n.t.forgetIfGone(st.Ino)
	}
	return 0
}
