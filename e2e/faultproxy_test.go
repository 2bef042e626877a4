//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
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
// The servers advertise their own client URLs to every client (INFO
// connect_urls), and nats.go would reconnect to those after a cut,
// bypassing the proxy for good; the proxy removes them from the INFO
// lines it relays, so that a client only ever knows its proxy's URLs.
// (xenft server has no cluster.no_advertise setting.)
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
	go func() { defer wg.Done(); r.pump(pc, in, out, readServerOps(out)) }()
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

// readServerOps reads the server's side of the NATS protocol op by op,
// removing the advertised client URLs from INFO, and returns what is
// available at once as one chunk.
func readServerOps(c net.Conn) func() ([]byte, error) {
	br := bufio.NewReaderSize(c, 64<<10)
	return func() ([]byte, error) {
		var out []byte
		for {
			op, err := nextServerOp(br)
			out = append(out, op...)
			if err != nil {
				return out, err
			}
			if br.Buffered() == 0 || len(out) >= 256<<10 {
				return out, nil
			}
		}
	}
}

// nextServerOp reads one protocol op sent by a server (INFO, MSG, HMSG,
// PING, PONG, +OK, -ERR) with its payload.
func nextServerOp(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// No op of the protocol has a control line this long; pass it on.
		return bytes.Clone(line), nil
	}
	if err != nil {
		return bytes.Clone(line), err
	}
	switch {
	case hasOp(line, "INFO"):
		return stripConnectURLs(line), nil
	case hasOp(line, "MSG"), hasOp(line, "HMSG"):
		out := bytes.Clone(line)
		f := bytes.Fields(line)
		size, perr := strconv.Atoi(string(f[len(f)-1]))
		if perr != nil || size < 0 {
			return out, fmt.Errorf("proxy: bad payload size in %q", bytes.TrimSpace(line))
		}
		payload := make([]byte, size+2) // and its \r\n
		n, err := io.ReadFull(br, payload)
		return append(out, payload[:n]...), err
	default:
		return bytes.Clone(line), nil
	}
}

func hasOp(line []byte, op string) bool {
	return len(line) > len(op) && bytes.EqualFold(line[:len(op)], []byte(op)) && (line[len(op)] == ' ' || line[len(op)] == '\t')
}

// stripConnectURLs rewrites an INFO line without the server's list of
// client URLs to try.
func stripConnectURLs(line []byte) []byte {
	body := bytes.TrimSpace(line[len("INFO"):])
	var info map[string]json.RawMessage
	if err := json.Unmarshal(body, &info); err != nil {
		return bytes.Clone(line)
	}
	delete(info, "connect_urls")
	delete(info, "ws_connect_urls")
	b, err := json.Marshal(info)
	if err != nil {
		return bytes.Clone(line)
	}
	return append(append([]byte("INFO "), b...), '\r', '\n')
}
