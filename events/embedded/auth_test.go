package embedded_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/events/eventstest"
)

var n1 = events.Publisher{Role: events.RoleAgent, Name: "n1"}

func connect(url string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)...)
	if err == nil {
		nc.Close()
	}
	return err
}

// With server.auth.identities only the identities of the file get in, and
// only over TLS.
func TestOnlyAnIssuedIdentityOverTLSConnects(t *testing.T) {
	s := eventstest.SecuredServer(t, n1)
	ca := nats.RootCAs(filepath.Join(s.Dir, auth.CAFile))
	seed, err := nats.NkeyOptionFromSeed(filepath.Join(s.Dir, auth.SeedFile("agent", "n1")))
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(s.ClientURL(), ca, seed); err != nil {
		t.Fatalf("agent/n1 with its seed over TLS: %v", err)
	}
	stranger, _ := nkeys.CreateUser()
	spub, _ := stranger.PublicKey()
	for name, opts := range map[string][]nats.Option{
		"no credential":             {ca},
		"a key not in the file":     {ca, nats.Nkey(spub, stranger.Sign)},
		"a user and password":       {ca, nats.UserInfo("admin", "admin")},
		"n1's seed without TLS":     {seed},
		"n1's seed, TLS unverified": {seed, nats.Secure(nil)},
	} {
		err := connect(s.ClientURL(), opts...)
		if err == nil {
			t.Errorf("%s: connected", name)
			continue
		}
		if name != "n1's seed without TLS" && name != "n1's seed, TLS unverified" && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}
}

// With server.tls.ca a client must also present a certificate of the
// set's CA: one from another CA, or none, is refused even with a good seed.
func TestAClientCertificateOfAnotherCAIsRefused(t *testing.T) {
	s := eventstest.SecuredServerSpec(t, auth.Spec{Identities: []events.Publisher{n1}, ClientCerts: true}, func(c *embedded.Config) {
		c.TLS.CA = filepath.Join(c.TLS.Cert, "..", auth.CAFile)
	})
	other := filepath.Join(t.TempDir(), "other")
	if _, err := auth.Init(other, auth.Spec{Identities: []events.Publisher{n1}, ClientCerts: true}); err != nil {
		t.Fatal(err)
	}
	ca := nats.RootCAs(filepath.Join(s.Dir, auth.CAFile))
	seed, err := nats.NkeyOptionFromSeed(filepath.Join(s.Dir, auth.SeedFile("agent", "n1")))
	if err != nil {
		t.Fatal(err)
	}
	cert, key := auth.ClientCertFiles("agent", "n1")
	if err := connect(s.ClientURL(), ca, seed, nats.ClientCert(filepath.Join(s.Dir, cert), filepath.Join(s.Dir, key))); err != nil {
		t.Fatalf("n1 with its seed and its certificate: %v", err)
	}
	if err := connect(s.ClientURL(), ca, seed, nats.ClientCert(filepath.Join(other, cert), filepath.Join(other, key))); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	if err := connect(s.ClientURL(), ca, seed); err == nil {
		t.Fatal("no client certificate was accepted")
	}
}

// server.auth.user beside identities is a user with every permission (the
// tests' and an emergency's), and the roles' in-process connections (xenft
// up) authenticate with their seeds like any other.
func TestAUserBesideIdentitiesAndInProcessIdentities(t *testing.T) {
	s := eventstest.SecuredServerSpec(t, auth.Spec{Identities: []events.Publisher{n1}}, func(c *embedded.Config) {
		c.Auth.User, c.Auth.Password = "root", "secret"
	})
	cfg := eventstest.BusConfig(s.Server)
	cfg.TLS.CA = filepath.Join(s.Dir, auth.CAFile)
	cfg.Auth = events.ClientAuth{User: "root", Password: "secret"}
	b, err := events.Connect(cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatalf("the user: %v", err)
	}
	defer b.Close()
	if err := b.Conn().Publish("xenft.cmd.n1.vm.destroy", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Conn().FlushTimeout(5 * time.Second); err != nil || b.Conn().LastError() != nil {
		t.Fatalf("the user may not publish a command: %v, %v", err, b.Conn().LastError())
	}

	ic := s.BusConfig(n1)
	ic.TLS = events.TLSFiles{} // nothing leaves the process
	in, err := events.Connect(ic, eventstest.Logger(t, hclog.Warn), events.InProcess(s.Server))
	if err != nil {
		t.Fatalf("agent/n1 in process: %v", err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.AwaitResources(ctx, in.Names().Hosts()); err != nil {
		t.Fatalf("agent/n1 in process: %v", err)
	}
}

// A cluster's routes are mutual TLS: two servers of the set form a
// cluster; a server with a certificate of another CA, or with an
// identity's client certificate of the same CA, is no route.
func TestRoutesAcceptOnlyTheSetsServerCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	if _, err := auth.Init(dir, auth.Spec{Identities: []events.Publisher{n1}, ClientCerts: true}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if _, err := auth.Init(other, auth.Spec{Identities: []events.Publisher{n1}}); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	routes := []string{fmt.Sprintf("nats-route://127.0.0.1:%d", ports[0]), fmt.Sprintf("nats-route://127.0.0.1:%d", ports[1])}
	start := func(name string, port int, certDir, cert, key string) (*embedded.Server, *eventstest.LogBuffer) {
		cfg := embedded.DefaultConfig()
		cfg.Name, cfg.Port, cfg.DataDir = name, -1, t.TempDir()
		cfg.Auth.Identities = filepath.Join(dir, auth.IdentitiesFile)
		cfg.TLS = events.TLSFiles{Cert: filepath.Join(dir, auth.ServerCertFile), Key: filepath.Join(dir, auth.ServerKeyFile)}
		cfg.Cluster = embedded.ClusterConfig{Name: "c", Host: "127.0.0.1", Port: port, Routes: routes,
			TLS: events.TLSFiles{Cert: filepath.Join(certDir, cert), Key: filepath.Join(certDir, key), CA: filepath.Join(dir, auth.CAFile)}}
		log := &eventstest.LogBuffer{}
		s, err := embedded.Start(cfg, log.Logger(t, hclog.Info), 10*time.Second)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(s.Shutdown)
		return s, log
	}
	a, alog := start("a", ports[0], dir, auth.ServerCertFile, auth.ServerKeyFile)
	b, _ := start("b", ports[1], dir, auth.ServerCertFile, auth.ServerKeyFile)
	eventstest.Eventually(t, 20*time.Second, func() bool { return a.NATS().NumRoutes() > 0 && b.NATS().NumRoutes() > 0 }, "a and b form no cluster")

	cert, key := auth.ClientCertFiles("agent", "n1")
	for _, tc := range []struct{ name, dir, cert, key, refusal string }{
		{"stranger", other, auth.ServerCertFile, auth.ServerKeyFile, "certificate signed by unknown authority"},
		{"agent", dir, cert, key, "certificate not pinned"},
	} {
		start(tc.name, -1, tc.dir, tc.cert, tc.key)
		eventstest.Eventually(t, 20*time.Second, func() bool { return len(alog.Lines("TLS route handshake error", tc.refusal)) > 0 },
			"a did not refuse the %s's route (%s)", tc.name, tc.refusal)
		rz, err := a.NATS().Routez(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rz.Routes {
			if r.RemoteName == tc.name {
				t.Fatalf("a has a route to the %s", tc.name)
			}
		}
	}
}

// freePorts reserves n loopback ports by listening and closing: the
// routes must name every server's port before any starts.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		defer l.Close()
	}
	return ports
}

// The auth keys are checked before anything starts, each error naming its
// key; a file that is not an identities file stops the start naming it.
func TestAuthConfigurationErrorsNameTheKey(t *testing.T) {
	tlsFiles := events.TLSFiles{Cert: "s.pem", Key: "s-key.pem"}
	for _, tc := range []struct {
		adjust func(*embedded.Config)
		want   string
	}{
		{func(c *embedded.Config) { c.Auth.Identities = "ids.json" }, "server.tls.cert: required with server.auth.identities"},
		{func(c *embedded.Config) {
			c.Auth.Identities, c.TLS = "ids.json", tlsFiles
			c.Cluster = embedded.ClusterConfig{Name: "c", Port: 6222}
		}, "server.cluster.tls.cert: required with server.auth.identities on a cluster"},
		{func(c *embedded.Config) {
			c.Cluster = embedded.ClusterConfig{Name: "c", Port: 6222, TLS: events.TLSFiles{Cert: "s.pem", Key: "k.pem"}}
		}, "server.cluster.tls: cert, key and ca must be set together"},
		{func(c *embedded.Config) { c.Auth.Identities, c.TLS, c.Name = "ids.json", tlsFiles, "_s" }, `server.name: "_s" must be`},
	} {
		cfg := embedded.DefaultConfig()
		cfg.Name = "s1"
		tc.adjust(&cfg)
		err := cfg.Validate("server")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", cfg, err, tc.want)
		}
	}
	cfg := embedded.DefaultConfig()
	cfg.Name, cfg.Port, cfg.DataDir = "s1", -1, t.TempDir()
	cfg.Auth.Identities = filepath.Join(t.TempDir(), "missing.json")
	cfg.TLS = tlsFiles
	if _, err := embedded.Start(cfg, eventstest.Logger(t, hclog.Warn), 5*time.Second); err == nil || !strings.HasPrefix(err.Error(), "server.auth.identities: ") {
		t.Fatalf("start with a missing identities file: %v", err)
	}
}
