package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// chunkTimeout bounds the request for one chunk: a server that does not
// answer within it fails the read (the supervisor retries the restore,
// perhaps elsewhere), rather than holding a restore for its whole context.
const chunkTimeout = 30 * time.Second

// chunkReader streams an object's chunks in order: each a get (from the
// stream's leader, LeaderChunks) of the next message on the object's chunk
// subject after the previous one. A chunk that is not found although bytes
// are missing is asked for again for laggingReplicaWait (a leader newly
// elected may still be applying), then the image is corrupt.
type chunkReader struct {
	ctx     context.Context
	get     ChunkGetter
	subject string
	key     string
	next    uint64 // the stream sequence to look from
	left    uint64 // bytes still to read
	buf     []byte
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.left == 0 {
			return 0, io.EOF
		}
		if err := c.fetch(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// fetch reads the next chunk into buf.
func (c *chunkReader) fetch() error {
	wait := 20 * time.Millisecond
	deadline := time.Now().Add(laggingReplicaWait)
	for {
		ctx, cancel := context.WithTimeout(c.ctx, chunkTimeout)
		m, err := c.get.NextChunk(ctx, max(c.next, 1), c.subject)
		cancel()
		switch {
		case err == nil:
			if len(m.Data) == 0 || uint64(len(m.Data)) > c.left {
				return fmt.Errorf("%w: %s: a chunk of %d bytes where %d are left", ErrCorrupt, c.key, len(m.Data), c.left)
			}
			c.next, c.buf, c.left = m.Sequence+1, m.Data, c.left-uint64(len(m.Data))
			return nil
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return fmt.Errorf("read %s: %w", c.key, err)
		case time.Now().After(deadline):
			return fmt.Errorf("%w: %s: chunks missing, %d bytes short", ErrCorrupt, c.key, c.left)
		}
		select {
		case <-c.ctx.Done():
			return c.ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (c *chunkReader) Close() error { c.buf, c.left = nil, 0; return nil }
