//go:build e2e

package e2e

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// roleLinks are one process's links to the NATS servers, through a small
// fault-injecting TCP proxy in the test process: one listener per server,
// and the process is given the listeners' URLs instead of the servers'.
// This kernel has no netem qdisc, so delay, stalls and cuts are made here:
//
//   - delay: every chunk read from either side is written to the other
//     side that long after it was read (order kept, as on a slow link);
//   - stall: nothing moves either way until the stall ends, then the
//     backlog flows (as a link that drops packets until TCP retransmits);
//   - cut: every connection is closed at once, and new ones are closed
//     as soon as they are accepted for a while (as a link that resets).
//
// The servers would advertise their own client URLs to every client (INFO
// connect_urls), and nats.go would reconnect to those after a cut,
// bypassing the proxy for good: the e2e servers run with
// cluster.no_advertise, so a client only ever knows its proxy's URLs. The
// proxy relays bytes as they come, both ways: the bus is TLS, which a
// proxy that read the protocol could neither read nor pass on (it held a
// handshake's tail waiting for a newline, and the soak's cluster never
// formed).
type roleLinks struct {
	role    string
	targets []string // host:port of each server
	ls      []net.Listener

	wg sync.WaitGroup

	mu          sync.Mutex
	delay       time.Duration
	stallUntil  time.Time
	refuseUntil time.Time
	changed     chan struct{} // closed and replaced when a fault changes
	conns       map[*proxyConn]struct{}
	closed      bool
	accepted    int
}

// newRoleLinks opens one listener per target on loopback.
func newRoleLinks(role string, targets []string) (*roleLinks, error) {
	r := &roleLinks{role: role, targets: targets, changed: make(chan struct{}), conns: map[*proxyConn]struct{}{}}
	for _, target := range targets {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.close()
			return nil, err
		}
		r.ls = append(r.ls, l)
		r.wg.Add(1)
		go r.serve(l, target)
	}
	return r, nil
}

// urls are the servers as the role reaches them.
func (r *roleLinks) urls() []string {
	var out []string
	for _, l := range r.ls {
		out = append(out, "nats://"+l.Addr().String())
	}
	return out
}

func (r *roleLinks) serve(l net.Listener, target string) {
	defer r.wg.Done()
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		refuse := r.closed || time.Now().Before(r.refuseUntil)
		r.accepted++
		r.mu.Unlock()
		if refuse {
			in.Close()
			continue
		}
		r.wg.Add(1)
		go r.relay(in, target)
	}
}

// setDelay makes every chunk wait d more from now on (0 ends it).
func (r *roleLinks) setDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
	r.notifyLocked()
}

// stall holds everything for d from now.
func (r *roleLinks) stall(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stallUntil = time.Now().Add(d)
	r.notifyLocked()
}

// cut closes every connection now and refuses new ones for refuse; it
// returns how many connections it closed.
func (r *roleLinks) cut(refuse time.Duration) int {
	r.mu.Lock()
	r.refuseUntil = time.Now().Add(refuse)
	conns := make([]*proxyConn, 0, len(r.conns))
	for pc := range r.conns {
		conns = append(conns, pc)
	}
	r.mu.Unlock()
	for _, pc := range conns {
		pc.shut()
	}
	return len(conns)
}

// heal ends every fault of the links.
func (r *roleLinks) heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay, r.stallUntil, r.refuseUntil = 0, time.Time{}, time.Time{}
	r.notifyLocked()
}

func (r *roleLinks) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// hold reports when a chunk read at readAt may be written, and a channel
// closed when that may have changed.
func (r *roleLinks) hold(readAt time.Time) (time.Time, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := readAt.Add(r.delay)
	if r.stallUntil.After(at) {
		at = r.stallUntil
	}
	return at, r.changed
}

// close stops the listeners and every connection, and waits for their
// goroutines.
func (r *roleLinks) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, l := range r.ls {
		l.Close()
	}
	r.heal()
	r.cut(0)
	r.wg.Wait()
}

// proxyConn is one client connection and its connection to the server.
type proxyConn struct {
	in, out net.Conn
	once    sync.Once
	done    chan struct{}
}

func (pc *proxyConn) shut() {
	pc.once.Do(func() {
		close(pc.done)
		pc.in.Close()
		if pc.out != nil {
			pc.out.Close()
		}
	})
}

func (r *roleLinks) relay(in net.Conn, target string) {
	defer r.wg.Done()
	out, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		in.Close() // the server is down: the client tries another URL
		return
	}
	pc := &proxyConn{in: in, out: out, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		pc.shut()
		return
	}
	r.conns[pc] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.conns, pc)
		r.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pump(pc, out, in, readRaw(in)) }()
	go func() { defer wg.Done(); r.pump(pc, in, out, readRaw(out)) }()
	wg.Wait()
}

// chunk is bytes read from one side, and when.
type chunk struct {
	b  []byte
	at time.Time
}

// pump moves chunks from read to dst, each when hold allows; it shuts
// the connection when either side ends.
func (r *roleLinks) pump(pc *proxyConn, dst, src net.Conn, read func() ([]byte, error)) {
	defer pc.shut()
	// A bounded queue: a stalled link pushes back on the sender as TCP
	// would, instead of buffering without limit.
	q := make(chan chunk, 64)
	go func() {
		defer close(q)
		for {
			b, err := read()
			if len(b) > 0 {
				select {
				case q <- chunk{b: b, at: time.Now()}:
				case <-pc.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		for {
			at, changed := r.hold(c.at)
			wait := time.Until(at)
			if wait <= 0 {
				break
			}
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-changed:
			case <-pc.done:
			}
			timer.Stop()
			select {
			case <-pc.done:
				// Drain so that the reader is not left blocked.
				for range q {
				}
				return
			default:
			}
		}
		if _, err := dst.Write(c.b); err != nil {
			for range q {
			}
			return
		}
	}
}

// readRaw reads whatever comes, as it comes.
func readRaw(c net.Conn) func() ([]byte, error) {
	buf := make([]byte, 64<<10)
	return func() ([]byte, error) {
		n, err := c.Read(buf)
		return bytes.Clone(buf[:n]), err
	}
}
