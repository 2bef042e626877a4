//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// slowDisk is a FUSE loopback file system, served by the test process,
// under one NATS server's data directory (its JetStream store: the image
// store's objects, the buckets, the Raft logs). On command it stalls the
// calls that make data durable (write, fsync, create, rename, unlink,
// mkdir, truncate) of every path, or of the paths a filter picks, until
// a deadline: the server's threads block in those calls as they do when
// a disk or an NFS mount stops answering. Reads are never held.
//
// Why this and not another trick: a SIGSTOP of the server is a frozen
// process, not a slow disk (its routes and client connections stop too);
// ionice and dm-delay need a block device of their own and slow
// everything, not the one stream we mean. Under FUSE the server really
// waits in the kernel for its write to be acknowledged, and only the
// files we choose (the image store's stream, or the whole store) do.
type slowDisk struct {
	server  string // the NATS server whose store it holds
	mnt     string
	backing string
	fuse    *fuse.Server

	mu      sync.Mutex
	until   time.Time
	match   func(rel string) bool // nil: every path
	lifted  chan struct{}         // closed and replaced when a stall is lifted
	held    int                   // calls held so far, for the log
	mounted bool
}

// fuseName names the soak's FUSE mounts with the pid of the test process
// that serves them, so that a later run can tell a dead one's mounts.
func fuseName(pid int) string { return fmt.Sprintf("xenft-soak-%d", pid) }

// fuseUsable reports why slow disks cannot be mounted here, or "".
func fuseUsable() string {
	if os.Geteuid() != 0 {
		return "mounting FUSE without fusermount needs root"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "no /dev/fuse"
	}
	return ""
}

// mountSlowDisk mounts a loopback of backing on mnt.
func mountSlowDisk(server, mnt, backing string) (*slowDisk, error) {
	for _, d := range []string{mnt, backing} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, err
	}
	d := &slowDisk{server: server, mnt: mnt, backing: backing, lifted: make(chan struct{})}
	sec := time.Second
	opts := &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			// No fusermount here: mount(2) directly (the soak runs as root).
			DirectMountStrict: true,
			FsName:            fuseName(os.Getpid()),
			Name:              "xenftsoak",
			MaxBackground:     64,
		},
	}
	srv, err := fs.Mount(mnt, &slowNode{LoopbackNode: root.(*fs.LoopbackNode), disk: d}, opts)
	if err != nil {
		return nil, fmt.Errorf("mount a slow disk for %s on %s: %w", server, mnt, err)
	}
	d.fuse, d.mounted = srv, true
	return d, nil
}

// stall holds the calls on the paths match picks (every path if nil)
// until until.
func (d *slowDisk) stall(until time.Time, match func(rel string) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.until, d.match = until, match
}

// lift ends a stall now: the held calls proceed.
func (d *slowDisk) lift() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.until, d.match = time.Time{}, nil
	close(d.lifted)
	d.lifted = make(chan struct{})
}

// stalled reports whether a stall is on: the cheap test every call makes
// before it computes its path.
func (d *slowDisk) stalled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Now().Before(d.until)
}

// hold waits while a stall covers the path rel returns.
func (d *slowDisk) hold(ctx context.Context, rel func() string) {
	if !d.stalled() {
		return
	}
	path := rel()
	counted := false
	for {
		d.mu.Lock()
		until, match, lifted := d.until, d.match, d.lifted
		wait := time.Until(until)
		covered := wait > 0 && (match == nil || match(path))
		if covered && !counted {
			d.held++
			counted = true
		}
		d.mu.Unlock()
		if !covered {
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-lifted:
		case <-ctx.Done(): // the caller was interrupted (killed)
			timer.Stop()
			return
		}
		timer.Stop()
	}
}

// heldCalls is how many calls a stall has held so far.
func (d *slowDisk) heldCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held
}

// unmount lifts any stall and unmounts; the server must have stopped.
func (d *slowDisk) unmount() error {
	d.lift()
	d.mu.Lock()
	mounted := d.mounted
	d.mounted = false
	d.mu.Unlock()
	if !mounted {
		return nil
	}
	err := d.fuse.Unmount()
	if err != nil {
		// Something still holds a file open: detach it lazily so that
		// the directory can be removed.
		err = syscall.Unmount(d.mnt, syscall.MNT_DETACH)
	}
	d.fuse.Wait()
	return err
}

// slowNode is a loopback node whose durable calls wait for the disk's
// stall first.
type slowNode struct {
	*fs.LoopbackNode
	disk *slowDisk
}

var (
	_ fs.NodeWrapChilder = (*slowNode)(nil)
	_ fs.NodeWriter      = (*slowNode)(nil)
	_ fs.NodeWritever    = (*slowNode)(nil)
	_ fs.NodeFsyncer     = (*slowNode)(nil)
	_ fs.NodeCreater     = (*slowNode)(nil)
	_ fs.NodeRenamer     = (*slowNode)(nil)
	_ fs.NodeUnlinker    = (*slowNode)(nil)
	_ fs.NodeMkdirer     = (*slowNode)(nil)
	_ fs.NodeSetattrer   = (*slowNode)(nil)
)

// WrapChild makes every node of the tree a slowNode.
func (n *slowNode) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &slowNode{LoopbackNode: ops.(*fs.LoopbackNode), disk: n.disk}
}

// rel is the path of the node's child name ("" for the node itself),
// relative to the mount.
func (n *slowNode) rel(name string) string {
	p := n.Path(nil)
	if name == "" {
		return p
	}
	if p == "" {
		return name
	}
	return p + "/" + name
}

func (n *slowNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n.disk.hold(ctx, func() string { return n.rel("") })
	w, ok := f.(fs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	return w.Write(ctx, data, off)
}

func (n *slowNode) Writev(ctx context.Context, f fs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	n.disk.hold(ctx, func() string { return n.rel("") })
	if w, ok := f.(fs.FileWritever); ok {
		return w.Writev(ctx, data, off)
	}
	w, ok := f.(fs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	var all []byte
	for _, b := range data {
		all = append(all, b...)
	}
	return w.Write(ctx, all, off)
}

func (n *slowNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	n.disk.hold(ctx, func() string { return n.rel("") })
	if s, ok := f.(fs.FileFsyncer); ok {
		return s.Fsync(ctx, flags)
	}
	return 0
}

func (n *slowNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	n.disk.hold(ctx, func() string { return n.rel(name) })
	return n.LoopbackNode.Create(ctx, name, flags, mode, out)
}

func (n *slowNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	n.disk.hold(ctx, func() string { return n.rel(name) })
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *slowNode) Unlink(ctx context.Context, name string) syscall.Errno {
	n.disk.hold(ctx, func() string { return n.rel(name) })
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *slowNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.disk.hold(ctx, func() string { return n.rel(name) })
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *slowNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, truncates := in.GetSize(); truncates {
		n.disk.hold(ctx, func() string { return n.rel("") })
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// detachStaleMounts lazily unmounts the soak mounts whose test process is
// gone (a run killed before its cleanup): a dead FUSE mount would make
// every later walk of the temporary directory fail.
func detachStaleMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var detached []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mount point (5th field) ... " - " fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 2 || !strings.HasPrefix(qf[0], "fuse") || !strings.HasPrefix(qf[1], "xenft-soak-") {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(qf[1], "xenft-soak-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test still runs
		}
		if syscall.Unmount(pf[4], syscall.MNT_DETACH) == nil {
			detached = append(detached, pf[4])
		}
	}
	return detached
}
