package eventstest

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events/embedded"
)

// Restartable is an embedded server that a test stops and starts again on
// the same port and store, as a bus outage does: clients reconnect to the
// URL they know. Stop and Server are safe from any goroutine.
type Restartable struct {
	t   testing.TB
	cfg embedded.Config
	mu  sync.Mutex
	s   *embedded.Server
}

// NewRestartable starts a Restartable on a free loopback port with its store
// in a temporary directory; it is stopped when the test ends.
func NewRestartable(t testing.TB) *Restartable {
	t.Helper()
	cfg := embedded.DefaultConfig()
	cfg.Name = "test"
	cfg.Port = -1
	cfg.DataDir = t.TempDir()
	r := &Restartable{t: t, cfg: cfg}
	r.Start()
	r.cfg.Port = r.Server().NATS().Addr().(*net.TCPAddr).Port
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server again after Stop (logging errors only: an outage
// is noisy by design).
func (r *Restartable) Start() {
	r.t.Helper()
	s, err := embedded.Start(r.cfg, Logger(r.t, hclog.Error), 10*time.Second)
	if err != nil {
		r.t.Fatalf("start nats server: %v", err)
	}
	r.mu.Lock()
	r.s = s
	r.mu.Unlock()
}

// Stop shuts the server down; stopping a stopped server does nothing.
func (r *Restartable) Stop() {
	r.mu.Lock()
	s := r.s
	r.s = nil
	r.mu.Unlock()
	if s != nil {
		s.Shutdown()
	}
}

// Server is the running server, nil while stopped.
func (r *Restartable) Server() *embedded.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s
}

// URL is the server's client URL, the same across restarts.
func (r *Restartable) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", r.cfg.Port) }
