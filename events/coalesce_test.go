package events

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the reads that returned data.
type countingConn struct {
	*net.TCPConn
	reads *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		c.reads.Add(1)
	}
	return n, err
}

// A sender writing small messages a millisecond apart: read as they come,
// one read each; coalesced, a few reads take them all, in order, intact,
// whether the kernel holds the wake-up (low-water mark) or reads are spaced.
func TestCoalescingConnTakesManyMessagesPerRead(t *testing.T) {
	for _, lowWater := range []bool{true, false} {
		t.Run(fmt.Sprintf("low-water %v", lowWater), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const writes = 200
			var want bytes.Buffer
			for i := range writes {
				fmt.Fprintf(&want, "MSG %03d\n", i)
			}
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				b := want.Bytes()
				for i := 0; i < len(b); i += 8 {
					if _, err := c.Write(b[i : i+8]); err != nil {
						return
					}
					time.Sleep(time.Millisecond) // pacing the sender, not synchronising
				}
			}()
			var reads atomic.Int64
			d := &coalescingDialer{window: 20 * time.Millisecond, dial: func(network, address string) (net.Conn, error) {
				c, err := net.DialTimeout(network, address, 5*time.Second)
				if err != nil {
					return nil, err
				}
				return countingConn{c.(*net.TCPConn), &reads}, nil
			}}
			raw, err := d.dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c := newCoalescingConn(raw, d.window, lowWater && setLowWater(raw.(countingConn).TCPConn, coalesceLowWater))
			defer c.Close()
			if lowWater && !c.lowWater {
				t.Skip("SO_RCVLOWAT not available here")
			}
			if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.LimitReader(c, int64(want.Len())))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("received %q, want %q", got, want.Bytes())
			}
			t.Logf("%d writes taken in %d reads", writes, reads.Load())
			if n := reads.Load(); n > writes/4 {
				t.Errorf("%d reads for %d writes a millisecond apart with a 20 ms window, want far fewer", n, writes)
			}
		})
	}
}

// The caller's deadline is kept: a read with nothing to read ends at it,
// and a deadline set in the past from another goroutine ends a waiting read.
func TestCoalescingConnKeepsTheCallersDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // sends nothing
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, lowWater := range []bool{setLowWater(raw, coalesceLowWater), false} {
		c := newCoalescingConn(raw, 10*time.Millisecond, lowWater)
		if err := c.SetDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("low-water %v: read past the caller's deadline returned %v", lowWater, err)
		}
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 10))
			done <- err
		}()
		// A read interrupted by a deadline in the past, whenever it comes.
		_ = c.SetReadDeadline(time.Unix(1, 0))
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("low-water %v: interrupted read returned %v", lowWater, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("low-water %v: a deadline in the past did not end the read", lowWater)
		}
		_ = c.SetReadDeadline(time.Time{})
	}
	raw.Close()
}

// A read that fills the caller's buffer is followed at once by the next: the
// window only applies once the socket was drained.
func TestCoalescingConnDoesNotWaitWhenMoreIsWaiting(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &coalescingConn{Conn: a, window: time.Hour}
	go func() { _, _ = b.Write([]byte("0123456789")) }()
	buf := make([]byte, 4)
	for _, want := range []string{"0123", "4567", "89"} {
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q (an hour's window must not apply while the buffer fills)", buf[:n], err, want)
		}
	}
	if c.more {
		t.Error("a short read left more set")
	}
}
