package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// hashedCopy copies src to dst and returns the bytes copied and their
// SHA-256. Hashing runs beside the writes (chunk k is hashed while chunk k+1
// is written), so a copy costs about the slower of the two instead of their
// sum: on a fast disk SHA-256 alone would halve the throughput.
func hashedCopy(ctx context.Context, dst io.Writer, src io.Reader) (int64, string, error) {
	const chunk, buffers = 1 << 20, 4
	free := make(chan []byte, buffers)
	for i := 0; i < buffers; i++ {
		free <- make([]byte, chunk)
	}
	toHash := make(chan []byte, buffers)
	sum := make(chan string, 1)
	go func() { // the hasher: owns h; returns each buffer when done with it
		h := sha256.New()
		for b := range toHash {
			h.Write(b)
			free <- b[:cap(b)]
		}
		sum <- hex.EncodeToString(h.Sum(nil))
	}()
	var n int64
	var err error
	for err == nil {
		if err = ctx.Err(); err != nil {
			break
		}
		buf := <-free
		var r int
		r, err = io.ReadFull(src, buf)
		if r > 0 {
			if _, werr := dst.Write(buf[:r]); werr != nil {
				err = werr
				free <- buf
				break
			}
			n += int64(r)
			toHash <- buf[:r]
		} else {
			free <- buf
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = nil
			break
		}
	}
	close(toHash)
	s := <-sum
	return n, s, err
}
