// Package eventstest starts real embedded NATS servers with JetStream for
// tests in any package: no mocks of the bus.
package eventstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
)

// Logger returns an hclog logger writing to the test's log at the given level.
func Logger(t testing.TB, level hclog.Level) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: level, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// LogBuffer keeps log output for a test to search; it is safe for
// concurrent writes.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Logger returns a logger at level writing to l and to the test's log.
func (l *LogBuffer) Logger(t testing.TB, level hclog.Level) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: level, Output: io.MultiWriter(l, testWriter{t})})
}

// Lines returns the lines written so far that contain every one of subs.
func (l *LogBuffer) Lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// Server starts a single embedded server on a free loopback port with its
// store in a temporary directory, stopped when the test ends.
func Server(t testing.TB) *embedded.Server {
	t.Helper()
	cfg := embedded.DefaultConfig()
	cfg.Name = "test"
	cfg.Port = -1
	cfg.DataDir = t.TempDir()
	s, err := embedded.Start(cfg, Logger(t, hclog.Warn), 10*time.Second)
	if err != nil {
		t.Fatalf("start nats server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// BusConfig is a bus configuration for s with short timeouts.
func BusConfig(s *embedded.Server) events.BusConfig {
	cfg := events.DefaultBusConfig()
	cfg.URLs = []string{s.ClientURL()}
	cfg.ClientName = "test"
	cfg.LeaderTTL = 2 * time.Second
	return cfg
}

// Bus connects to s over TCP, creates the stream and buckets, and closes the
// connection when the test ends.
func Bus(t testing.TB, s *embedded.Server) *events.Bus {
	t.Helper()
	return BusLogged(t, s, Logger(t, hclog.Warn))
}

// BusAs is Bus publishing events as the identity role/name (events.As).
func BusAs(t testing.TB, s *embedded.Server, role, name string) *events.Bus {
	t.Helper()
	return BusLogged(t, s, Logger(t, hclog.Warn), events.As(role, name))
}

// BusLogged is Bus logging to log (a LogBuffer's, to search what it said).
func BusLogged(t testing.TB, s *embedded.Server, log hclog.Logger, opts ...events.ConnectOption) *events.Bus {
	t.Helper()
	b, err := events.Connect(BusConfig(s), log, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.EnsureResources(ctx); err != nil {
		t.Fatalf("ensure resources: %v", err)
	}
	return b
}

// Eventually polls cond until it is true or timeout passes, then fails the
// test with msg. Tests wait on conditions, never on bare sleeps.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	Poll(t, timeout, 10*time.Millisecond, cond, func() string {
		return fmt.Sprintf("timed out after %s: "+msg, append([]any{timeout}, args...)...)
	})
}

// Poll is the tests' one wait-until loop: it calls cond every interval
// until cond returns true, and fails the test with what's text once timeout
// has passed. what is called only then, so it can show the last value cond
// saw.
func Poll(t testing.TB, timeout, interval time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			if cond() { // one last look: the deadline may have passed during a slow cond
				return
			}
			t.Fatal(what())
		case <-tick.C:
		}
	}
}

// NoGoroutines waits until no goroutine's stack mentions any of funcs (for
// example "xenft/events.(*Bus).run"), and fails the test with the offending
// stack if one is still there at the deadline. Unlike a global leak check it
// ignores an embedded server's goroutines, which outlive a client by design.
func NoGoroutines(t testing.TB, timeout time.Duration, funcs ...string) {
	t.Helper()
	var leaked string
	Poll(t, timeout, 10*time.Millisecond, func() bool {
		leaked = goroutineMentioning(funcs)
		return leaked == ""
	}, func() string { return "goroutine leaked:\n" + leaked })
}

func goroutineMentioning(funcs []string) string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range funcs {
			if strings.Contains(g, f) {
				return g
			}
		}
	}
	return ""
}
