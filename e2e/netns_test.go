//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// vethLink puts one host's agent behind a link the test can cut: the agent
// runs in network namespace ns, whose only way out is a veth pair with a
// private /30; in the root namespace a forwarder in the test process
// listens on the root end's address and relays to each server's loopback
// port. Taking the root end down drops packets both ways without a reset,
// as a pulled cable does: TCP stalls and the agent's leases and beats stop.
type vethLink struct {
	ns         string
	root, peer string // the veth ends: root namespace, agent's namespace
	rootAddr   string // the forwarder listens here
	fwd        []*forwarder
}

// newVethLink creates the namespace and the link, or skips the test where
// the machine does not allow it (not root, no ip, no network namespaces).
// Both are removed when the test ends, whatever happened.
func newVethLink(t *testing.T) *vethLink {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition scenario skipped: it needs the ip command (iproute2) to create a network namespace")
	}
	pid := os.Getpid() % 10_000_000
	l := &vethLink{ns: fmt.Sprintf("xenft-e2e-%d", pid), root: fmt.Sprintf("xe%dr", pid), peer: fmt.Sprintf("xe%dn", pid)}
	if out, err := exec.Command("ip", "netns", "add", l.ns).CombinedOutput(); err != nil {
		t.Skipf("partition scenario skipped: cannot create a network namespace (needs root): ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// Deleting the namespace takes the veth pair with it; the root end
		// is removed explicitly in case the move into it never happened.
		_ = exec.Command("ip", "link", "del", l.root).Run()
		if out, err := exec.Command("ip", "netns", "del", l.ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", l.ns, err, out)
		}
	})
	subnet := l.freeSubnet(t)
	l.rootAddr = subnet + ".1"
	steps := [][]string{
		{"ip", "link", "add", l.root, "type", "veth", "peer", "name", l.peer},
		{"ip", "link", "set", l.peer, "netns", l.ns},
		{"ip", "addr", "add", l.rootAddr + "/30", "dev", l.root},
		{"ip", "link", "set", l.root, "up"},
		{"ip", "netns", "exec", l.ns, "ip", "addr", "add", subnet + ".2/30", "dev", l.peer},
		{"ip", "netns", "exec", l.ns, "ip", "link", "set", l.peer, "up"},
		{"ip", "netns", "exec", l.ns, "ip", "link", "set", "lo", "up"},
	}
	for _, argv := range steps {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Skipf("partition scenario skipped: cannot set up a veth link: %s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return l
}

// freeSubnet picks a 10.213.x.0/30 that no interface of the machine uses
// and returns its first three bytes.
func (l *vethLink) freeSubnet(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "addr").CombinedOutput()
	if err != nil {
		t.Skipf("partition scenario skipped: ip -o addr: %v", err)
	}
	for i := range 250 {
		x := (os.Getpid()+i)%250 + 1
		subnet := fmt.Sprintf("10.213.%d", x)
		if !strings.Contains(string(out), " "+subnet+".") {
			return subnet
		}
	}
	t.Skip("partition scenario skipped: no free 10.213.x.0/30 subnet")
	return ""
}

// forward starts one relay per server on the root end's address.
func (l *vethLink) forward(t *testing.T, servers []natsNode) {
	t.Helper()
	for _, s := range servers {
		f, err := newForwarder(l.rootAddr+":0", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err != nil {
			t.Fatal(err)
		}
		l.fwd = append(l.fwd, f)
		t.Cleanup(f.close)
	}
}

// urls are the servers as the agent in the namespace reaches them.
func (l *vethLink) urls() []string {
	var out []string
	for _, f := range l.fwd {
		out = append(out, "nats://"+f.l.Addr().String())
	}
	return out
}

// cut takes the link down: from now on nothing crosses it either way.
func (l *vethLink) cut(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", l.root, "down").CombinedOutput(); err != nil {
		t.Fatalf("cut the link: %v: %s", err, out)
	}
	t.Logf("link %s down: the agent in %s is cut off", l.root, l.ns)
}

// heal brings the link back up.
func (l *vethLink) heal(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", l.root, "up").CombinedOutput(); err != nil {
		t.Fatalf("heal the link: %v: %s", err, out)
	}
	t.Logf("link %s up again", l.root)
}

// forwarder relays TCP connections from a listener to one target.
type forwarder struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newForwarder(listen, target string) (*forwarder, error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	f := &forwarder{l: l, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		in, err := f.l.Accept()
		if err != nil {
			return
		}
		if !f.track(in) {
			return
		}
		f.wg.Add(1)
		go f.relay(in)
	}
}

// track registers a connection to close with the forwarder; false if the
// forwarder is already closed (the connection is then closed).
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

// relay copies both ways; when either side ends, both are closed, as a
// proxy between a client and a server does.
func (f *forwarder) relay(in net.Conn) {
	defer f.wg.Done()
	defer in.Close()
	defer f.untrack(in)
	out, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil || !f.track(out) {
		return
	}
	defer f.untrack(out)
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
	in.Close()
	out.Close()
	<-done
}

func (f *forwarder) close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.l.Close()
	f.wg.Wait()
}
