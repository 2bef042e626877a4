package xen

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// The sim's save image: a real file of the domain's full memory size.
//
//	header   one or more pages: fixed fields, then a JSON block (name, uuid,
//	         xl config), zero padded; its CRC covers the whole header
//	pages    memory, page 0 first, exactly as the workload left it
//	trailer  16 bytes: "XNFTEND\n", CRC32C of all pages, 4 zero bytes
//
// Fixed header fields (little-endian):
//
//	0   32  magic
//	32   4  format version (1)
//	36   4  page size (4096)
//	40   4  header length in bytes, a multiple of the page size
//	44   4  CRC32C of the header with this field zeroed
//	48   8  memory size in bytes
//	56   8  workload progress at the moment of the save
//	64   8  workload seed (fixed at domain creation)
//	72   4  JSON length, JSON follows at 76
//
// CRC32C (Castagnoli) rather than SHA-256: the store keeps its own SHA-256
// of every image; here the checksum only has to catch torn or cut files, and
// CRC32C runs at memory speed on SSE4.2. Restore also recomputes every page
// from (seed, progress), so a single flipped bit anywhere is found.

// SimImageMagic starts every sim save image (the fake xl tells a sim image
// from a foreign file by it, as xl does by its own magic).
const SimImageMagic = imageMagic

const (
	imageMagic      = "xenft simulated domain image\n\x00\x00\x00"
	imageVersion    = 1
	imageFixedLen   = 76
	imageTrailer    = "XNFTEND\n"
	imageTrailerLen = 16
	imageMaxHeader  = 1 << 20 // a hostile header cannot make us allocate more
	imageMaxMemory  = 1 << 40 // 1 TiB
	imageChunk      = 1 << 20 // pages are generated, written and read 1 MiB at a time
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkPool recycles the 1 MiB page buffers: Save and Restore of a large
// domain would otherwise allocate per call and keep the GC busy.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, imageChunk); return &b }}

// ImageHeader describes a sim save image.
type ImageHeader struct {
	Name        string
	UUID        string
	MemoryBytes uint64
	Progress    uint64 // the workload's counter when the image was taken
	Seed        uint64 // identity of the workload: fixed for a domain's life
	Config      []byte // the domain's xl config, used by a restore without one
}

type imageMeta struct {
	Name   string `json:"name"`
	UUID   string `json:"uuid"`
	Config string `json:"config"`
}

func (h *ImageHeader) encode() ([]byte, error) {
	meta, err := json.Marshal(imageMeta{Name: h.Name, UUID: h.UUID, Config: string(h.Config)})
	if err != nil {
		return nil, err
	}
	n := imageFixedLen + len(meta)
	n = (n + PageSize - 1) / PageSize * PageSize
	if n > imageMaxHeader {
		return nil, fmt.Errorf("image header of %d bytes is too large", n)
	}
	buf := make([]byte, n)
	copy(buf, imageMagic)
	le := binary.LittleEndian
	le.PutUint32(buf[32:], imageVersion)
	le.PutUint32(buf[36:], PageSize)
	le.PutUint32(buf[40:], uint32(n))
	le.PutUint64(buf[48:], h.MemoryBytes)
	le.PutUint64(buf[56:], h.Progress)
	le.PutUint64(buf[64:], h.Seed)
	le.PutUint32(buf[72:], uint32(len(meta)))
	copy(buf[imageFixedLen:], meta)
	le.PutUint32(buf[44:], crc32.Checksum(buf, castagnoli))
	return buf, nil
}

func badImage(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrBadImage)
}

// readHeader reads and checks the header at the start of r.
func readHeader(r io.Reader) (ImageHeader, int, error) {
	fixed := make([]byte, imageFixedLen)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return ImageHeader{}, 0, badImage("header: %v", err)
	}
	if string(fixed[:32]) != imageMagic {
		return ImageHeader{}, 0, badImage("wrong magic: not a xenft sim image")
	}
	le := binary.LittleEndian
	if v := le.Uint32(fixed[32:]); v != imageVersion {
		return ImageHeader{}, 0, badImage("format version %d, want %d", v, imageVersion)
	}
	if ps := le.Uint32(fixed[36:]); ps != PageSize {
		return ImageHeader{}, 0, badImage("page size %d, want %d", ps, PageSize)
	}
	n := int(le.Uint32(fixed[40:]))
	if n < PageSize || n > imageMaxHeader || n%PageSize != 0 {
		return ImageHeader{}, 0, badImage("header length %d", n)
	}
	buf := make([]byte, n)
	copy(buf, fixed)
	if _, err := io.ReadFull(r, buf[imageFixedLen:]); err != nil {
		return ImageHeader{}, 0, badImage("header: %v", err)
	}
	want := le.Uint32(buf[44:])
	le.PutUint32(buf[44:], 0)
	if got := crc32.Checksum(buf, castagnoli); got != want {
		return ImageHeader{}, 0, badImage("header checksum %08x, want %08x", got, want)
	}
	h := ImageHeader{MemoryBytes: le.Uint64(buf[48:]), Progress: le.Uint64(buf[56:]), Seed: le.Uint64(buf[64:])}
	if h.MemoryBytes == 0 || h.MemoryBytes%PageSize != 0 || h.MemoryBytes > imageMaxMemory {
		return ImageHeader{}, 0, badImage("memory size %d", h.MemoryBytes)
	}
	metaLen := int(le.Uint32(buf[72:]))
	if metaLen > n-imageFixedLen {
		return ImageHeader{}, 0, badImage("metadata length %d", metaLen)
	}
	var meta imageMeta
	if err := json.Unmarshal(buf[imageFixedLen:imageFixedLen+metaLen], &meta); err != nil {
		return ImageHeader{}, 0, badImage("metadata: %v", err)
	}
	h.Name, h.UUID, h.Config = meta.Name, meta.UUID, []byte(meta.Config)
	return h, n, nil
}

// writeImage streams a whole image to w. It checks ctx between chunks, so a
// cancelled save stops within one chunk.
func writeImage(ctx context.Context, w io.Writer, h *ImageHeader) error {
	hdr, err := h.encode()
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	crc := uint32(0)
	pages := h.MemoryBytes / PageSize
	for first := uint64(0); first < pages; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(pages-first, imageChunk/PageSize)
		chunk := (*bp)[:n*PageSize]
		fillPages(chunk, h.Seed, first, h.Progress)
		crc = crc32.Update(crc, castagnoli, chunk)
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		first += n
	}
	var tr [imageTrailerLen]byte
	copy(tr[:], imageTrailer)
	binary.LittleEndian.PutUint32(tr[8:], crc)
	_, err = w.Write(tr[:])
	return err
}

// readImage reads a whole image from r and verifies it: header checksum,
// every page against what the header's seed and progress imply, the pages'
// checksum, and nothing after the trailer.
func readImage(ctx context.Context, r io.Reader) (ImageHeader, error) {
	h, _, err := readHeader(r)
	if err != nil {
		return ImageHeader{}, err
	}
	wp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(wp)
	want := *wp
	crc := uint32(0)
	pages := h.MemoryBytes / PageSize
	// The pages are read ahead by a goroutine while the previous chunk is
	// verified: a restore then runs at the speed of the slower of the two
	// (usually the disk), not of their sum.
	chunks, stop := readAhead(r, pages)
	defer stop()
	for first := uint64(0); first < pages; {
		if err := ctx.Err(); err != nil {
			return ImageHeader{}, err
		}
		n := min(pages-first, imageChunk/PageSize)
		c, ok := <-chunks
		if !ok || c.err != nil {
			err := io.ErrUnexpectedEOF
			if ok {
				err = c.err
			}
			return ImageHeader{}, badImage("truncated at page %d of %d: %v", first, pages, err)
		}
		got := (*c.buf)[:n*PageSize]
		crc = crc32.Update(crc, castagnoli, got)
		fillPages(want[:len(got)], h.Seed, first, h.Progress)
		if !bytes.Equal(got, want[:len(got)]) {
			for i := uint64(0); i < n; i++ {
				off := i * PageSize
				if !bytes.Equal(got[off:off+PageSize], want[off:off+PageSize]) {
					c.release()
					return ImageHeader{}, badImage("page %d does not hold the workload's state at progress %d", first+i, h.Progress)
				}
			}
		}
		c.release()
		first += n
	}
	var tr [imageTrailerLen + 1]byte
	n, err := io.ReadFull(r, tr[:])
	if n < imageTrailerLen {
		return ImageHeader{}, badImage("truncated trailer (%d of %d bytes)", n, imageTrailerLen)
	}
	if n > imageTrailerLen {
		return ImageHeader{}, badImage("data after the trailer")
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return ImageHeader{}, badImage("trailer: %v", err)
	}
	if string(tr[:8]) != imageTrailer {
		return ImageHeader{}, badImage("bad trailer")
	}
	if want := binary.LittleEndian.Uint32(tr[8:]); want != crc {
		return ImageHeader{}, badImage("pages checksum %08x, want %08x", crc, want)
	}
	return h, nil
}

// aheadChunk is one chunk of pages read ahead; release returns its buffer.
type aheadChunk struct {
	buf     *[]byte
	err     error
	release func()
}

// readAhead reads the pages of an image from r in imageChunk pieces on a
// goroutine of its own, at most two chunks ahead of the consumer. stop ends
// it (and waits for it) however far the consumer got; the reader then owns no
// buffer and the next reads from r come after the pages.
func readAhead(r io.Reader, pages uint64) (<-chan aheadChunk, func()) {
	const ahead = 2
	out := make(chan aheadChunk, ahead)
	free := make(chan *[]byte, ahead+1)
	for i := 0; i < ahead+1; i++ {
		free <- chunkPool.Get().(*[]byte)
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for first := uint64(0); first < pages; {
			var b *[]byte
			select {
			case b = <-free:
			case <-quit:
				return
			}
			n := min(pages-first, imageChunk/PageSize)
			_, err := io.ReadFull(r, (*b)[:n*PageSize])
			c := aheadChunk{buf: b, err: err, release: func() { free <- b }}
			select {
			case out <- c:
			case <-quit:
				free <- b
				return
			}
			if err != nil {
				return
			}
			first += n
		}
	}()
	stop := func() {
		close(quit)
		<-done
		for {
			select {
			case b := <-free:
				chunkPool.Put(b)
			default:
				return
			}
		}
	}
	return out, stop
}

// ReadImageHeader reads only the header of a sim image: cheap, for tests
// and tools that want the saved progress without verifying the pages.
func ReadImageHeader(path string) (ImageHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImageHeader{}, fmt.Errorf("sim image %s: %w", path, err)
	}
	defer f.Close()
	h, _, err := readHeader(f)
	if err != nil {
		return ImageHeader{}, fmt.Errorf("sim image %s: %w", path, err)
	}
	return h, nil
}

// VerifyImage reads a whole sim image and checks it as Restore does.
func VerifyImage(ctx context.Context, path string) (ImageHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImageHeader{}, fmt.Errorf("sim image %s: %w: %w", path, ErrBadImage, err)
	}
	defer f.Close()
	h, err := readImage(ctx, f)
	if err != nil {
		return ImageHeader{}, fmt.Errorf("sim image %s: %w", path, err)
	}
	return h, nil
}

// saveImageFile writes an image to path atomically: a temp file in the same
// directory, rename. A crash mid-save leaves either the old file or none,
// never a torn image under the final name. With durable the file and its
// directory are fsynced before and after the rename, for an image that is
// the domain's only copy (a save that destroys it). Without, the image
// stays in the page cache as `xl save` leaves it (xl opens, writes and
// closes; it never fsyncs): a checkpoint's capture is uploaded at once and
// the image store fsyncs its own copy, so an fsync here would only lengthen
// the guest's pause by the disk's flush.
func saveImageFile(ctx context.Context, path string, h *ImageHeader, durable bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = writeImage(ctx, f, h); err != nil {
		return err
	}
	if durable {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: some file systems refuse fsync on a directory
		d.Close()
	}
	return nil
}
