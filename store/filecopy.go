package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// fileCopyChunk is how much is written per call and hashed per step: small
// enough that a cancelled context stops a copy soon and that hashing trails
// writing by little, large enough that the calls cost nothing.
const fileCopyChunk = 8 << 20

// errSourceChanged is returned when the source file shrinks under the copy.
var errSourceChanged = errors.New("source file changed during the copy")

// hashedFileCopy copies the regular file src into the file dst with one
// memory copy per byte, as cp does, plus the SHA-256 that cp does not take.
// src is mapped read-only: the writes go from its page cache straight into
// dst's, and the hasher reads the same mapped pages in parallel, one chunk
// behind. The user-space path (hashedCopy) copies every byte twice, out of
// the source's page cache and into dst's. The agent's upload is always this
// case: the spooled image is a file and so is the store's temporary image.
//
// ok is false when src cannot be mapped (not a regular file, empty, a file
// system without mmap): nothing was read or written, and the caller copies
// the other way.
func hashedFileCopy(ctx context.Context, dst, src *os.File) (n int64, sum string, ok bool, err error) {
	fi, err := src.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 || int64(int(fi.Size())) != fi.Size() {
		return 0, "", false, nil
	}
	start, err := src.Seek(0, io.SeekCurrent)
	if err != nil || start != 0 {
		return 0, "", false, nil // a partly read source: copy the rest the other way
	}
	size := fi.Size()
	m, err := unix.Mmap(int(src.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, "", false, nil
	}
	defer unix.Munmap(m)
	_ = unix.Madvise(m, unix.MADV_SEQUENTIAL)

	type span struct{ off, n int }
	spans := make(chan span, 2)
	type result struct {
		sum string
		err error
	}
	done := make(chan result, 1)
	go func() { // the hasher: owns h, one chunk behind the writer
		h := sha256.New()
		err := readMapped(func() {
			for s := range spans {
				h.Write(m[s.off : s.off+s.n])
			}
		})
		for range spans { // after a fault, drain so the writer never blocks
		}
		done <- result{hex.EncodeToString(h.Sum(nil)), err}
	}()
	var off int
	fault := readMapped(func() {
		for off < int(size) {
			if err = ctx.Err(); err != nil {
				return
			}
			end := min(off+fileCopyChunk, int(size))
			var w int
			w, err = dst.Write(m[off:end])
			if w > 0 {
				spans <- span{off, w}
				// Advisory, as in earlyWriteback: fsync decides durability.
				_ = unix.SyncFileRange(int(dst.Fd()), int64(off), int64(w), unix.SYNC_FILE_RANGE_WRITE)
				off += w
			}
			if err != nil {
				return
			}
		}
	})
	close(spans)
	res := <-done
	err = errors.Join(err, fault, res.err)
	if err == nil {
		// The file must still be the size it was mapped at: a source
		// truncated and regrown under the copy is not the image it was.
		if fi, serr := src.Stat(); serr != nil || fi.Size() != size {
			err = errSourceChanged
		}
	}
	return int64(off), res.sum, true, err
}

// readMapped runs f, turning a fault on a mapped page (the source file
// truncated under the copy) into errSourceChanged instead of a crash.
func readMapped(f func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(interface{ Addr() uintptr }); ok {
				err = fmt.Errorf("%w (fault at %#x)", errSourceChanged, e.Addr())
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}
