package store

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// writebackEvery is how much is written before the kernel is asked to start
// writing it to disk.
const writebackEvery = 8 << 20

// earlyWriteback wraps a file being filled so the kernel starts writing its
// pages to disk every writebackEvery bytes (sync_file_range, asynchronous):
// the final fsync then waits for little instead of flushing the whole image,
// as cp's copy and the kernel's own writeback overlap. Any other writer is
// returned as it is.
func earlyWriteback(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	return &writebackFile{f: f}
}

type writebackFile struct {
	f         *os.File
	off, last int64
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.last >= writebackEvery {
		// Advisory: a failure here only loses the overlap; fsync still
		// decides durability.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.last, w.off-w.last, unix.SYNC_FILE_RANGE_WRITE)
		w.last = w.off
	}
	return n, err
}
