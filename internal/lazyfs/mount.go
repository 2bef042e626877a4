package lazyfs

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hashicorp/go-hclog"
)

// FS is a mounted lazy file system. Its methods are safe to call
// concurrently with each other and with the file system's use.
type FS struct {
	backing, mountpoint string
	t                   *inodes
	srv                 *fuse.Server
	log                 hclog.Logger

	mu         sync.Mutex
	unmounted  bool
	unmountErr error
}

// Stats says what the file system holds unsynced and what power losses
// dropped.
type Stats struct {
	// Writes counts the write calls served since Mount.
	Writes uint64
	// Fsyncs counts fsync and fdatasync calls, and writes and truncations
	// through O_SYNC or O_DSYNC descriptors, since Mount.
	Fsyncs uint64
	// Unsynced is what a power loss now would drop.
	Unsynced Loss
	// PowerLosses counts the calls of PowerLoss.
	PowerLosses int
	// LastPowerLoss is what the last PowerLoss dropped.
	LastPowerLoss Loss
}

// Loss is unsynced data: dropped by a power loss, or that one would drop.
type Loss struct {
	// Files is how many files had unsynced data.
	Files int
	// Writes and Bytes count the write calls since each file's last sync
	// and their lengths added up (a byte written twice counts twice).
	Writes, Bytes uint64
	// Truncates counts the truncations (and extending fallocates) since
	// each file's last sync.
	Truncates uint64
}

// Option configures Mount.
type Option func(*options)

type options struct {
	log   hclog.Logger
	debug bool
}

// WithLogger logs power losses, write-back failures and the FUSE trace
// (WithDebug) to log. Default: no logging.
func WithLogger(log hclog.Logger) Option { return func(o *options) { o.log = log } }

// WithDebug logs every FUSE request and reply (go-fuse's Debug option).
func WithDebug() Option { return func(o *options) { o.debug = true } }

// Mount serves the directory backing at mountpoint (both must exist) until
// Unmount.
//
// It mounts with mount(2) itself (we run as root), and falls back to the
// fusermount helper only when one is installed: without it, go-fuse's
// fallback would hide mount(2)'s error behind "fusermount not found".
func Mount(backing, mountpoint string, opts ...Option) (*FS, error) {
	o := options{log: hclog.NewNullLogger()}
	for _, opt := range opts {
		opt(&o)
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: backing dir: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: backing dir %s: %w", backing, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, fmt.Errorf("lazyfs: backing %s is not a directory", backing)
	}

	t := newInodes()
	root := &fs.LoopbackRoot{Path: backing, Dev: st.Dev}
	rootNode := &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, t: t}
	root.RootNode = rootNode

	// Zero timeouts: the kernel asks for a file's size every time it needs
	// it, so a size that a power loss shrank is never served from its cache.
	var zero time.Duration
	fopts := &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName:            "lazyfs:" + backing,
			Name:              "lazyfs",
			DirectMount:       haveFusermount(),
			DirectMountStrict: !haveFusermount(),
			// Passthrough would let the kernel read and write the backing
			// file directly, around the overlay.
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
			Debug:                o.debug,
			Logger:               o.log.Named("fuse").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		},
	}
	srv, err := fs.Mount(mountpoint, rootNode, fopts)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s on %s: %w", backing, mountpoint, err)
	}
	return &FS{backing: backing, mountpoint: mountpoint, t: t, srv: srv, log: o.log}, nil
}

// haveFusermount reports whether a fusermount helper is installed.
func haveFusermount() bool {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
	}
	return false
}

// PowerLoss drops every file's unsynced data: from now on the mount shows
// exactly what the backing directory holds, which is what was synced.
//
// Call it once the processes that use the mount are dead (SIGKILL): a
// write in flight may land before or after the cut, as on real hardware,
// and descriptors that stay open see the backing file from then on.
func (f *FS) PowerLoss() Loss {
	lost := f.t.powerLoss()
	f.log.Info("power loss", "mount", f.mountpoint, "files", lost.Files, "writes", lost.Writes, "bytes", lost.Bytes, "truncates", lost.Truncates)
	return lost
}

// Sync writes every file's unsynced data back and fsyncs it, as sync(2)
// would on a real file system (sync(2) and syncfs(2) do not reach a FUSE
// server).
func (f *FS) Sync() error { return f.t.syncAll() }

// Stats reports the counters and what is unsynced now.
func (f *FS) Stats() Stats { return f.t.stats() }

// Mountpoint is where the file system is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Backing is the directory the file system serves.
func (f *FS) Backing() string { return f.backing }

// Unmount unmounts and then writes back the unsynced data, as a clean
// umount of a real file system does (call PowerLoss first to drop it).
// If something still holds a file open, Unmount aborts the FUSE
// connection (those files then fail with ENOTCONN) and returns an error
// saying so. A second call returns the first call's result.
func (f *FS) Unmount() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unmounted {
		return f.unmountErr
	}
	f.unmounted = true
	var errs []error
	if err := f.srv.Unmount(); err != nil {
		// Busy: something still holds a file open. MNT_FORCE makes FUSE
		// abort the connection (fuse_umount_begin): open files fail with
		// ENOTCONN from now on and the server's loops end. Waiting for the
		// files to close instead could wait forever, and if this process
		// holds them, it would hang even in exit(2) (close sends FLUSH to
		// the server that is exiting).
		errs = append(errs, fmt.Errorf("lazyfs: unmount %s: %w (aborted the connection)", f.mountpoint, err))
		if ferr := syscall.Unmount(f.mountpoint, syscall.MNT_FORCE); ferr != nil {
			if derr := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); derr != nil {
				errs = append(errs, fmt.Errorf("lazyfs: detach %s: %w", f.mountpoint, derr))
			}
		}
	}
	f.srv.Wait()
	if err := f.t.syncAll(); err != nil {
		errs = append(errs, fmt.Errorf("lazyfs: write back after unmount: %w", err))
	}
	f.t.closeAll()
	f.unmountErr = errors.Join(errs...)
	return f.unmountErr
}
