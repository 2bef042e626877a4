package events

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// CoalesceReads makes the connection take what it receives in batches, at
// most window apart, instead of one small message at a time.
//
// This is interrupt moderation for a NATS client that receives many small
// messages. A detector receiving 10,000 beats a second as they come is woken
// for nearly every one: the kernel signals the socket readable at each
// arriving packet, Go's network poller wakes a thread, and the client makes
// a read system call; together that costs more than everything the
// detector does with the beats. With CoalesceReads the kernel is asked
// (SO_RCVLOWAT, on Linux) not to signal the socket until a full read buffer
// is waiting, and each read waits at most window for that: every read then
// takes dozens of messages, and a quiet connection still delivers what it
// has within window. Where the low-water mark cannot be set, each read
// instead waits until window has passed since the previous one (fewer reads,
// but the wake-ups per packet remain).
//
// The price is latency: everything this connection receives (messages,
// PONGs, JetStream acks, request replies) comes up to window later. Nothing
// is lost or reordered, writes are not touched, a read still fails as soon
// as the connection does, and deadlines the client sets are kept. 0 (or an
// in-process connection) reads as soon as data arrive.
func CoalesceReads(window time.Duration) ConnectOption {
	return func(o *connectOptions) { o.coalesce = window }
}

// coalesceLowWater is the low-water mark asked of the kernel: the NATS
// client's read buffer (32 KiB), so that a wake-up fills one read. Reading
// more per system call than the buffer holds would gain nothing.
const coalesceLowWater = 32 << 10

// coalescingDialer dials TCP as the client's own dialer would and wraps the
// connection in a coalescingConn.
type coalescingDialer struct {
	window time.Duration
	dial   func(network, address string) (net.Conn, error)
}

func newCoalescingDialer(window, connectTimeout time.Duration) *coalescingDialer {
	d := &net.Dialer{Timeout: connectTimeout}
	return &coalescingDialer{window: window, dial: d.Dial}
}

func (d *coalescingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := d.dial(network, address)
	if err != nil {
		return nil, err
	}
	return newCoalescingConn(c, d.window, setLowWater(c, coalesceLowWater)), nil
}

// coalescingConn reads in batches (see CoalesceReads). The NATS client reads
// from one goroutine at a time (the connect handshake, then its read loop),
// so the read state needs no lock; the caller's deadline may be set from
// any goroutine.
type coalescingConn struct {
	net.Conn
	window time.Duration
	// lowWater: the kernel holds the readable signal until a full buffer
	// is queued, and a read waits for it at most window. Else reads are
	// spaced window apart.
	lowWater bool

	lastRead time.Time // spaced mode: when the previous read returned
	more     bool      // spaced mode: it filled the caller's buffer

	mu       sync.Mutex
	deadline time.Time // the caller's read deadline; zero: none
}

func newCoalescingConn(c net.Conn, window time.Duration, lowWater bool) *coalescingConn {
	return &coalescingConn{Conn: c, window: window, lowWater: lowWater}
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	if !c.lowWater {
		return c.spacedRead(p)
	}
	for {
		caller := c.callerDeadline()
		wake := wall.Now().Add(c.window)
		if !caller.IsZero() && caller.Before(wake) {
			wake = caller
		}
		if err := c.Conn.SetReadDeadline(wake); err != nil {
			return 0, err
		}
		// The read system call returns whatever is queued, even below the
		// mark: only the wake-up waits for it.
		n, err := c.Conn.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		if caller := c.callerDeadline(); !caller.IsZero() && !wall.Now().Before(caller) {
			return n, err // the caller's own deadline
		}
		// The window passed with less than the mark queued: go read it.
	}
}

// spacedRead waits until window has passed since the previous read returned,
// unless that read filled the buffer (more is waiting), then reads.
func (c *coalescingConn) spacedRead(p []byte) (int, error) {
	if !c.more && !c.lastRead.IsZero() {
		wait := c.window - wall.Since(c.lastRead)
		if caller := c.callerDeadline(); !caller.IsZero() {
			wait = min(wait, wall.Until(caller))
		}
		if wait > 0 {
			wall.Sleep(wait) // bounded by window; a Close meanwhile fails the read below
		}
	}
	n, err := c.Conn.Read(p)
	c.lastRead, c.more = wall.Now(), n == len(p) && n > 0
	return n, err
}

func (c *coalescingConn) callerDeadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline
}

// SetReadDeadline records the caller's deadline (Read keeps it) and applies
// it at once, so that a deadline in the past interrupts a waiting Read.
func (c *coalescingConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}
