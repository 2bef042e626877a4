package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// ImageStore keeps checkpoint images. Implementations are safe for
// concurrent use; a Put of one key concurrent with an Open of the same key is
// undefined (the coordinator never does it: keys are never rewritten).
type ImageStore interface {
	// Put streams r into key, computing size and SHA-256 as it goes. The image
	// becomes visible only when complete: on any error nothing is left under
	// key that Open or List would take for an image.
	Put(ctx context.Context, key string, r io.Reader) (Info, error)
	// Open streams key. The reader verifies size and SHA-256 against what Put
	// recorded and returns ErrCorrupt from Read instead of io.EOF on a
	// mismatch, so a caller that reads to the end cannot miss corruption.
	Open(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat returns what Put recorded for key without reading it.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the complete images whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// Info describes a stored image.
type Info struct {
	Key      string    `json:"key"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"` // lower-case hex
	Modified time.Time `json:"modified"`
}

// Errors, matched with errors.Is.
var (
	ErrNotFound   = errors.New("image not found")
	ErrCorrupt    = errors.New("image corrupt")
	ErrInvalidKey = errors.New("invalid image key")
)

// hashingReader counts and hashes what passes through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newHashingReader(r io.Reader) *hashingReader { return &hashingReader{r: r, h: sha256.New()} }

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashingReader) sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// verifyingReader checks size and digest at EOF against want.
type verifyingReader struct {
	hr   *hashingReader
	c    io.Closer
	want Info
	err  error // sticky verdict once EOF is reached
}

func newVerifyingReader(rc io.ReadCloser, want Info) *verifyingReader {
	return &verifyingReader{hr: newHashingReader(rc), c: rc, want: want}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.hr.Read(p)
	if v.hr.n > v.want.Size {
		v.err = fmt.Errorf("%w: %s is longer than its recorded %d bytes", ErrCorrupt, v.want.Key, v.want.Size)
		return n, v.err
	}
	if errors.Is(err, io.EOF) {
		switch {
		case v.hr.n != v.want.Size:
			v.err = fmt.Errorf("%w: %s has %d bytes, recorded %d", ErrCorrupt, v.want.Key, v.hr.n, v.want.Size)
		case v.hr.sum() != v.want.SHA256:
			v.err = fmt.Errorf("%w: %s sha256 %s, recorded %s", ErrCorrupt, v.want.Key, v.hr.sum(), v.want.SHA256)
		default:
			v.err = io.EOF
		}
		return n, v.err
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.c.Close() }

// CorruptReads is how many times a read that finds an image corrupt is made
// before the image is believed corrupt. In the NATS object store each read
// may be served by another of the stream's replicas, and one replica whose
// files a failing disk damaged serves garbled chunks while the others hold
// the image intact: e2e/corruption_test.go saw a third to a half of the
// reads of a good image fail its digest that way. Five reads make a false
// verdict about one in 250 at one bad replica in three; an image corrupt
// everywhere costs four more reads, once.
const CorruptReads = 5

// Verify reads key to the end and reports ErrCorrupt if its size or checksum
// differ from what Put recorded, or from want when want's fields are set (the
// checkpoint catalog's record of the image), on each of CorruptReads reads.
func Verify(ctx context.Context, s ImageStore, key string, want Info) error {
	var err error
	for range CorruptReads {
		if err = verifyOnce(ctx, s, key, want); !errors.Is(err, ErrCorrupt) {
			return err
		}
	}
	return err
}

func verifyOnce(ctx context.Context, s ImageStore, key string, want Info) error {
	rc, info, err := s.Open(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	if want.Size != 0 && want.Size != info.Size {
		return fmt.Errorf("%w: %s stored size %d, catalog says %d", ErrCorrupt, key, info.Size, want.Size)
	}
	if want.SHA256 != "" && want.SHA256 != info.SHA256 {
		return fmt.Errorf("%w: %s stored sha256 %s, catalog says %s", ErrCorrupt, key, info.SHA256, want.SHA256)
	}
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := rc.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
