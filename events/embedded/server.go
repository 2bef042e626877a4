package embedded

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/xenft/xenft/internal/clock"
)

// Server is an embedded NATS server with JetStream. It runs in the caller's
// process: `xenft server` runs one on its own, `xenft up` and tests run one
// beside the roles.
type Server struct {
	ns  *server.Server
	cfg Config
	log hclog.Logger
	// owner is the key of the server's own connection (ConnectOwner)
	// when clients authenticate: made at start, allowed only in this
	// process, never written anywhere.
	owner nkeys.KeyPair
}

// Start starts a server from cfg and waits until it accepts clients (and,
// in a cluster, until JetStream is enabled). It fails if that takes longer than
// ready.
func Start(cfg Config, log hclog.Logger, ready time.Duration) (*Server, error) {
	if err := cfg.Validate("server"); err != nil {
		return nil, err
	}
	var owner nkeys.KeyPair
	if cfg.Auth.Identities != "" {
		var err error
		if owner, err = nkeys.CreateUser(); err != nil {
			return nil, fmt.Errorf("server.auth.identities: the server's own key: %w", err)
		}
	}
	opts, err := serverOptions(cfg, owner)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server %s: %w", cfg.Name, err)
	}
	log = log.Named("nats")
	ns.SetLoggerV2(natsLogger{log}, log.IsDebug(), log.IsTrace(), false)
	ns.Start()
	if !ns.ReadyForConnections(ready) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("nats server %s: not ready for connections within %s (is %s:%d in use?)", cfg.Name, ready, cfg.Host, cfg.Port)
	}
	return &Server{ns: ns, cfg: cfg, log: log, owner: owner}, nil
}

func serverOptions(cfg Config, owner nkeys.KeyPair) (*server.Options, error) {
	storeDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("server.data_dir: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   storeDir,
		// xenft's own signal handling stops the server; nats must not install
		// handlers of its own.
		NoSigs:            true,
		MaxPayload:        8 << 20,
		JetStreamMaxStore: cfg.MaxStore,
	}
	always, interval, err := cfg.syncPolicy()
	if err != nil {
		return nil, fmt.Errorf("server.sync: %w", err)
	}
	opts.SyncAlways = always
	if !always {
		opts.SyncInterval = interval
	}
	if cfg.MonitorPort != 0 {
		opts.HTTPHost = cfg.Host
		opts.HTTPPort = cfg.MonitorPort
	}
	if err := authOptions(cfg, owner, opts); err != nil {
		return nil, err
	}
	if cfg.TLS.Cert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, CaFile: cfg.TLS.CA, Verify: cfg.TLS.CA != ""})
		if err != nil {
			return nil, fmt.Errorf("server.tls: %w", err)
		}
		opts.TLSConfig = tc
		opts.TLS = true
		opts.TLSVerify = cfg.TLS.CA != ""
		opts.TLSTimeout = 2
	}
	if cfg.Cluster.Name != "" {
		host := cfg.Cluster.Host
		if host == "" {
			host = cfg.Host
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.Cluster.Name, Host: host, Port: cfg.Cluster.Port, NoAdvertise: cfg.Cluster.NoAdvertise}
		if err := routeTLS(cfg.Cluster.TLS, &opts.Cluster); err != nil {
			return nil, err
		}
		for _, r := range cfg.Cluster.Routes {
			urls := server.RoutesFromStr(r)
			if len(urls) == 0 {
				return nil, fmt.Errorf("server.cluster.routes: %q is not a URL", r)
			}
			opts.Routes = append(opts.Routes, urls...)
		}
	}
	return opts, nil
}

// ClientURL is the URL clients connect to (with the real port when Port was -1).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterURL is the route URL other servers use to join this one, or "".
func (s *Server) ClusterURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port))
}

// Name is the server's name.
func (s *Server) Name() string { return s.cfg.Name }

// NATS exposes the embedded server for in-process connections.
func (s *Server) NATS() *server.Server { return s.ns }

// WaitJetStream waits until JetStream can take requests; in a cluster that is
// after a meta leader is elected.
func (s *Server) WaitJetStream(timeout time.Duration) error {
	wall := clock.Real() // a wait for the server, no decision
	deadline := wall.Now().Add(timeout)
	for {
		if s.ns.JetStreamEnabled() && (s.cfg.Cluster.Name == "" || s.ns.JetStreamIsLeader() || s.ns.JetStreamIsCurrent()) {
			return nil
		}
		if wall.Now().After(deadline) {
			return errors.New("jetstream not ready within " + timeout.String())
		}
		wall.Sleep(25 * time.Millisecond)
	}
}

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// natsLogger routes the server's log lines into hclog. The server's notices
// (its start banner, leader changes) go to debug: at info an operator sees
// xenft's own lines, and warnings and errors from NATS.
type natsLogger struct{ l hclog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  { n.l.Trace(fmt.Sprintf(format, v...)) }

// InProcessConn connects a client to the server without a socket
// (events.InProcess).
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }
