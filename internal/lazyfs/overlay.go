package lazyfs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// pageSize is the unit the overlay caches, like a kernel page: a write to
// part of a page loads the rest of it from the file first, so a cached page
// always holds the file's current content.
const pageSize = 4096

// flushChunk bounds the buffer a write-back coalesces neighbouring pages
// into.
const flushChunk = 1 << 20

// backing is what the overlay reads through and writes back to: the backing
// file (an *os.File).
type backing interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
}

// overlay is one file's unsynced data: the writes and truncations made
// since the file was last written back, over the backing file's content.
//
// The file's content is the backing file's bytes below cut, zeros from cut
// on, with the cached pages on top, up to size. A write caches the pages it
// touches; a truncation lowers cut below the bytes it removes and drops or
// zeroes the cached pages past the new size, so bytes past size always read
// as zeros, whatever the backing file still holds there.
//
// An overlay is not safe for concurrent use: its inode's lock guards it.
type overlay struct {
	size  int64
	cut   int64 // math.MaxInt64 while nothing was truncated away
	pages map[int64]*[pageSize]byte
	base  int64 // the backing file's size

	// What a power loss would lose, for Stats.
	writes, bytes, truncates uint64
}

// newOverlay starts an overlay over a backing file of size bytes.
func newOverlay(size int64) *overlay {
	return &overlay{size: size, cut: math.MaxInt64, pages: make(map[int64]*[pageSize]byte), base: size}
}

// write writes p at off, as pwrite(2) would.
func (o *overlay) write(p []byte, off int64, base io.ReaderAt) error {
	if off < 0 {
		return fmt.Errorf("write at %d: negative offset", off)
	}
	for done := 0; done < len(p); {
		at := off + int64(done)
		idx, in := at/pageSize, int(at%pageSize)
		pg, err := o.page(idx, base)
		if err != nil {
			return err
		}
		done += copy(pg[in:], p[done:])
	}
	o.size = max(o.size, off+int64(len(p)))
	o.writes++
	o.bytes += uint64(len(p))
	return nil
}

// changed reports whether anything was written or truncated (an overlay
// can be started by a call that then changes nothing).
func (o *overlay) changed() bool { return o.writes > 0 || o.truncates > 0 }

// page returns page idx, loading it from the file's current content when it
// is not cached yet.
func (o *overlay) page(idx int64, base io.ReaderAt) (*[pageSize]byte, error) {
	if pg, ok := o.pages[idx]; ok {
		return pg, nil
	}
	pg := new([pageSize]byte)
	start := idx * pageSize
	if end := min(start+pageSize, o.cut, o.size); end > start {
		if err := readFull(base, pg[:end-start], start); err != nil {
			return nil, fmt.Errorf("load page at %d: %w", start, err)
		}
	}
	o.pages[idx] = pg
	return pg, nil
}

// truncate sets the size, as ftruncate(2) would: bytes past a smaller size
// are gone, a larger size reads as zeros.
func (o *overlay) truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("truncate to %d: negative size", size)
	}
	if size < o.size {
		o.cut = min(o.cut, size)
		for idx, pg := range o.pages {
			switch start := idx * pageSize; {
			case start >= size:
				delete(o.pages, idx)
			case start+pageSize > size:
				clear(pg[size-start:])
			}
		}
	}
	o.size = size
	o.truncates++
	return nil
}

// read reads into p from off, as pread(2) would: it returns fewer bytes
// only at the end of the file.
func (o *overlay) read(p []byte, off int64, base io.ReaderAt) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	if off >= o.size {
		return 0, nil
	}
	p = p[:min(int64(len(p)), o.size-off)]
	end := off + int64(len(p))
	fromBase := max(0, min(end, o.cut)-off)
	if err := readFull(base, p[:fromBase], off); err != nil {
		return 0, err
	}
	clear(p[fromBase:])
	for idx := off / pageSize; idx*pageSize < end; idx++ {
		pg, ok := o.pages[idx]
		if !ok {
			continue
		}
		start := idx * pageSize
		lo, hi := max(start, off), min(start+pageSize, end)
		copy(p[lo-off:hi-off], pg[lo-start:hi-start])
	}
	return len(p), nil
}

// writeBack makes the backing file hold the file's content: it cuts what
// was truncated away, writes the cached pages (neighbours coalesced) and
// sets the size (if the writes did not: an ftruncate costs a metadata
// update even when it changes nothing). The caller fsyncs and then drops
// the overlay.
func (o *overlay) writeBack(f backing) error {
	backingSize := o.base
	if o.cut != math.MaxInt64 {
		if err := f.Truncate(o.cut); err != nil {
			return fmt.Errorf("write back: truncate to %d: %w", o.cut, err)
		}
		backingSize = o.cut
	}
	idxs := make([]int64, 0, len(o.pages))
	for idx := range o.pages {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	buf := make([]byte, 0, min(flushChunk, len(idxs)*pageSize))
	var bufAt int64
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := f.WriteAt(buf, bufAt); err != nil {
			return fmt.Errorf("write back %d bytes at %d: %w", len(buf), bufAt, err)
		}
		backingSize = max(backingSize, bufAt+int64(len(buf)))
		buf = buf[:0]
		return nil
	}
	for _, idx := range idxs {
		start := idx * pageSize
		n := min(pageSize, o.size-start) // the last page stops at size
		if len(buf) > 0 && (bufAt+int64(len(buf)) != start || len(buf)+pageSize > flushChunk) {
			if err := flush(); err != nil {
				return err
			}
		}
		if len(buf) == 0 {
			bufAt = start
		}
		buf = append(buf, o.pages[idx][:n]...)
	}
	if err := flush(); err != nil {
		return err
	}
	if backingSize == o.size {
		return nil
	}
	if err := f.Truncate(o.size); err != nil {
		return fmt.Errorf("write back: set size %d: %w", o.size, err)
	}
	return nil
}

// readFull fills p from base at off; bytes past the end of base read as
// zeros (the file was extended past the backing file's end).
func readFull(base io.ReaderAt, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	n, err := base.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		clear(p[n:])
		return nil
	}
	return err
}
