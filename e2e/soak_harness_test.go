//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The soak's own tools, checked on their own (they run with make e2e and
// take about a second): a soak whose proxy leaked the servers' addresses
// or whose disk never stalled would pass for the wrong reason.

// fakeNATSServer accepts connections, greets each with an INFO that
// advertises client URLs and a message, then echoes what it reads.
func fakeNATSServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "INFO {\"server_id\":\"S1\",\"connect_urls\":[\"127.0.0.1:4222\"],\"max_payload\":1048576}\r\n"+
					"MSG a.b 1 _INBOX.x 12\r\nINFO {\"x\":1}\r\n\r\nPING\r\n")
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

func TestSoakProxyRelaysBytesAsTheyComeAndInjectsFaults(t *testing.T) {
	r, err := newRoleLinks("n1", []string{fakeNATSServer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	addr := strings.TrimPrefix(r.urls()[0], "nats://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	line := func() string {
		t.Helper()
		s, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return s
	}
	if info := line(); !strings.Contains(info, `"connect_urls":["127.0.0.1:4222"]`) || !strings.Contains(info, `"server_id":"S1"`) || !strings.HasSuffix(info, "\r\n") {
		t.Fatalf("INFO relayed as %q; want it unchanged", info)
	}
	if msg, payload := line(), line(); msg != "MSG a.b 1 _INBOX.x 12\r\n" || payload != "INFO {\"x\":1}\r\n" {
		t.Fatalf("MSG relayed as %q %q", msg, payload)
	}
	if blank, ping := line(), line(); blank != "\r\n" || ping != "PING\r\n" {
		t.Fatalf("then %q %q", blank, ping)
	}

	roundTrip := func() time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := io.WriteString(c, "PUB x 2\r\nhi\r\n"); err != nil {
			t.Fatal(err)
		}
		if got := line() + line(); got != "PUB x 2\r\nhi\r\n" {
			t.Fatalf("echo %q", got)
		}
		return time.Since(start)
	}
	roundTrip()
	r.setDelay(150 * time.Millisecond)
	if rt := roundTrip(); rt < 300*time.Millisecond {
		t.Errorf("round trip with 150 ms each way took %s", rt)
	}
	r.setDelay(0)
	r.stall(400 * time.Millisecond)
	if rt := roundTrip(); rt < 350*time.Millisecond {
		t.Errorf("round trip in a 400 ms stall took %s", rt)
	}
	if n := r.cut(time.Second); n != 1 {
		t.Errorf("cut %d connections, want 1", n)
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("the connection survived its cut")
	}
	// New connections are closed at once while refused.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(c2).ReadString('\n'); err == nil {
		t.Error("a connection made while refused was served")
	}
}

func TestSoakSlowDiskStallsWritesOnlyWhereAsked(t *testing.T) {
	if why := fuseUsable(); why != "" {
		t.Skip(why)
	}
	dir := t.TempDir()
	d, err := mountSlowDisk("test", filepath.Join(dir, "mnt"), filepath.Join(dir, "backing"))
	if err != nil {
		t.Skipf("no FUSE here: %v", err)
	}
	t.Cleanup(func() {
		if err := d.unmount(); err != nil {
			t.Error(err)
		}
	})
	for _, sub := range []string{"slow", "fast"} {
		if err := os.MkdirAll(filepath.Join(d.mnt, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string) time.Duration {
		t.Helper()
		start := time.Now()
		f, err := os.OpenFile(filepath.Join(d.mnt, rel), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("x"); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	write("slow/f")
	write("fast/f")
	d.stall(time.Now().Add(600*time.Millisecond), func(rel string) bool { return strings.HasPrefix(rel, "slow/") })
	if took := write("fast/f"); took > 300*time.Millisecond {
		t.Errorf("a write outside the stalled paths took %s", took)
	}
	if took := write("slow/f"); took < 400*time.Millisecond {
		t.Errorf("a write in a 600 ms stall took %s", took)
	}
	if b, err := os.ReadFile(filepath.Join(d.backing, "slow", "f")); err != nil || string(b) != "xx" {
		t.Errorf("backing file holds %q, %v", b, err)
	}
	// lift lets a held write go at once.
	d.stall(time.Now().Add(time.Minute), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(filepath.Join(d.mnt, "fast", "g"), []byte("x"), 0o644) }()
	lifted := time.AfterFunc(200*time.Millisecond, d.lift)
	defer lifted.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		d.lift()
		<-done
		t.Fatal("a held write did not go on within 10 s of lift")
	}
}
