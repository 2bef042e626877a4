package eventstest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
	"github.com/xenft/xenft/events/embedded"
)

// Secured is an embedded server that lets in only the identities of a
// credential set (events/auth), over TLS, with each role's permissions: the
// server a production cluster runs, on a free loopback port.
type Secured struct {
	*embedded.Server
	// Dir holds the credential set: ca.pem, the seeds, identities.json.
	Dir string
	// Log is what the server logged, to look for "Violation" lines.
	Log *LogBuffer
}

// SecuredServer issues a credential set for ids (auth.Init, into a
// temporary directory) and starts a server on it, stopped when the test
// ends. The stream and buckets are created on the server's own
// connection, as `xenft server` does.
func SecuredServer(t testing.TB, ids ...events.Publisher) *Secured {
	t.Helper()
	return SecuredServerSpec(t, auth.Spec{Identities: ids}, nil)
}

// SecuredServerSpec is SecuredServer with the whole spec, and adjust to
// change the server's configuration before it starts (server.tls.ca to
// require client certificates).
func SecuredServerSpec(t testing.TB, spec auth.Spec, adjust func(*embedded.Config)) *Secured {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "auth")
	if _, err := auth.Init(dir, spec); err != nil {
		t.Fatalf("auth init: %v", err)
	}
	cfg := embedded.DefaultConfig()
	cfg.Name = "test"
	cfg.Port = -1
	cfg.DataDir = t.TempDir()
	cfg.Auth.Identities = filepath.Join(dir, auth.IdentitiesFile)
	cfg.TLS = events.TLSFiles{Cert: filepath.Join(dir, auth.ServerCertFile), Key: filepath.Join(dir, auth.ServerKeyFile)}
	if adjust != nil {
		adjust(&cfg)
	}
	log := &LogBuffer{}
	s, err := embedded.Start(cfg, log.Logger(t, hclog.Warn), 10*time.Second)
	if err != nil {
		t.Fatalf("start secured nats server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	own, err := s.ConnectOwner(BusConfig(s), Logger(t, hclog.Warn))
	if err != nil {
		t.Fatalf("the server's own connection: %v", err)
	}
	defer own.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := own.EnsureResources(ctx); err != nil {
		t.Fatalf("ensure resources as the server: %v", err)
	}
	return &Secured{Server: s, Dir: dir, Log: log}
}

// BusConfig is how identity id reaches the server over TLS with its seed.
func (s *Secured) BusConfig(id events.Publisher) events.BusConfig {
	cfg := BusConfig(s.Server)
	cfg.URLs = []string{s.ClientURL()}
	cfg.ClientName = id.String()
	cfg.Auth.NKeySeedFile = filepath.Join(s.Dir, auth.SeedFile(id.Role, id.Name))
	cfg.TLS.CA = filepath.Join(s.Dir, auth.CAFile)
	cfg.Identity = id.String()
	return cfg
}

// Bus connects as id (without creating anything) and closes the connection
// when the test ends.
func (s *Secured) Bus(t testing.TB, id events.Publisher, opts ...events.ConnectOption) *events.Bus {
	t.Helper()
	b, err := events.Connect(s.BusConfig(id), Logger(t, hclog.Warn), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", id, err)
	}
	t.Cleanup(b.Close)
	return b
}

// Violations are the server's log lines about refused publishes and
// subscriptions.
func (s *Secured) Violations() []string { return s.Log.Lines("Violation") }
