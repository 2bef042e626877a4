// Package lazyfs is a FUSE file system for tests that cut the power, after
// Jepsen's LazyFS: a passthrough of a backing directory that keeps every
// file's unsynced writes in memory, so that a test can drop them all at once
// and see what a program (a NATS server's JetStream store) made durable.
//
// # Semantics
//
//   - Data is cached, like a page cache. write(2), ftruncate(2) and
//     truncate(2), O_TRUNC and an extending fallocate(2) change an
//     in-memory overlay of the file (4 KiB pages, plus how far the file was
//     truncated), never the backing file. Every reader through the mount
//     sees the overlay at once: reads lay it over the backing file, and
//     stat, fstat and lseek report the size including unsynced data.
//   - fsync(2) and fdatasync(2) of a file write its overlay back to the
//     backing file and fsync that; so does every write or truncation
//     through a descriptor opened O_SYNC or O_DSYNC. close(2) makes
//     nothing durable.
//   - sync(2) and syncfs(2) do not reach a FUSE server (the kernel sends
//     FUSE_SYNCFS only to virtiofs), so they make nothing durable here,
//     where a real file system would write everything back. FS.Sync is
//     the in-process equivalent.
//   - Metadata passes through to the backing directory at once: create,
//     mkdir, rename, unlink, rmdir, link, symlink, chmod, chown, utimes. It
//     models a journaled file system whose metadata survives a crash but
//     whose unsynced file data does not (ext4 data=writeback): a file
//     created and never synced comes back empty, a rename of an unsynced
//     file comes back under its new name, empty. Directory fsync is
//     passed through and needed for nothing.
//   - FS.PowerLoss drops every overlay; the mount then shows exactly the
//     backing directory, which holds exactly what was synced. It is meant
//     to be called once the processes using the mount are dead (SIGKILL).
//   - Unmount writes the overlays back, as a clean umount does; call
//     PowerLoss first to model a crash.
//
// # How the kernel is kept out of the way
//
// Files are opened with FOPEN_DIRECT_IO and entry, attribute and negative
// timeouts are zero: the kernel keeps no page of a file's data and asks for
// its size every time, so nothing it cached survives PowerLoss. Kernel
// passthrough (CAP_PASSTHROUGH) is disabled, and copy_file_range answers
// ENOSYS so the kernel copies through read and write: both would reach the
// backing file around the overlay.
//
// # Limits
//
//   - mmap: MAP_SHARED fails with ENODEV (the kernel maps direct I/O files
//     shared only with FUSE_DIRECT_IO_ALLOW_MMAP, which go-fuse does not
//     negotiate); MAP_PRIVATE works, read through the page cache, and a
//     mapping made before a PowerLoss keeps what it read. nats-server maps
//     none of its files.
//   - File locks (flock, fcntl) are kept by the kernel, local to the mount.
//   - O_TMPFILE is refused (EOPNOTSUPP); fallocate supports mode 0 and
//     FALLOC_FL_KEEP_SIZE only; SEEK_DATA/SEEK_HOLE see no holes.
//   - A file's mtime and its block count are the backing file's: writes
//     change them only when they are written back.
//   - The backing directory must be one file system: overlays are keyed by
//     backing inode number.
//   - Nothing else may write to the backing directory while it is mounted.
//
// # Ownership and concurrency
//
// Mount starts go-fuse's server goroutines; Unmount stops them and waits
// for them (aborting the connection if a file is still open, so that it
// never waits on a process that holds one). The package starts no goroutine of its own. Every method of FS
// is safe to call concurrently with each other and with file system
// traffic. Overlays live in an inode table (inodes.go) keyed by backing
// inode number: an entry that has had unsynced data holds a read-write
// descriptor of the backing file until it goes, so the inode cannot be
// freed and its number reused, and its data can be written back after the
// last close, a rename or an unlink.
//
// # Where things live
//
//   - The overlay of one file (write, truncate, read, write-back): overlay.go.
//   - The inode table, PowerLoss, Sync and Stats: inodes.go.
//   - Names and attributes, open and create (O_TRUNC, direct I/O): node.go.
//   - Reads, writes, fsync, O_SYNC, lseek, fallocate of an open file: file.go.
//   - Mount options and why, Unmount: mount.go.
package lazyfs
