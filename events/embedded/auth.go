package embedded

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
)

// authOptions sets who may connect: the single user of server.auth.user,
// and the identities of server.auth.identities with their role's
// permissions plus the server's own key (owner), allowed only in process.
func authOptions(cfg Config, owner nkeys.KeyPair, opts *server.Options) error {
	if cfg.Auth.Identities == "" {
		if cfg.Auth.User != "" {
			opts.Username, opts.Password = cfg.Auth.User, cfg.Auth.Password
		}
		return nil
	}
	f, err := auth.Load(cfg.Auth.Identities)
	if err != nil {
		return fmt.Errorf("server.auth.identities: %w", err)
	}
	users, err := f.NkeyUsers()
	if err != nil {
		return fmt.Errorf("server.auth.identities: %w", err)
	}
	pub, err := owner.PublicKey()
	if err != nil {
		return fmt.Errorf("server.auth.identities: the server's own key: %w", err)
	}
	perms, err := auth.Permissions(f.Prefix, ownerIdentity(cfg))
	if err != nil {
		return fmt.Errorf("server.name: %w", err)
	}
	users = append(users, &server.NkeyUser{Nkey: pub, Permissions: perms, AllowedConnectionTypes: auth.InProcessConnections()})
	opts.Nkeys = users
	if cfg.Auth.User != "" {
		// Beside identities the single user must be one of a list: it has
		// every permission (tests, an emergency).
		opts.Users = []*server.User{{Username: cfg.Auth.User, Password: cfg.Auth.Password}}
	}
	return nil
}

// ownerIdentity is who the server's own connection publishes as.
func ownerIdentity(cfg Config) events.Publisher {
	return events.Publisher{Role: events.RoleServer, Name: cfg.Name}
}

// routeTLS makes the routes mutually authenticated: each side presents its
// certificate and verifies the other's against the CA, and a peer must
// present the key of this server's own certificate, so that an identity's
// client certificate from the same CA is no route.
func routeTLS(t events.TLSFiles, c *server.ClusterOpts) error {
	if t.Cert == "" {
		return nil
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.CA, Verify: true})
	if err != nil {
		return fmt.Errorf("server.cluster.tls: %w", err)
	}
	pin, err := spkiPin(t.Cert)
	if err != nil {
		return fmt.Errorf("server.cluster.tls.cert: %w", err)
	}
	// A server also dials its routes: it verifies their certificates
	// with the same CA, as nats-server's own configuration does.
	tc.RootCAs = tc.ClientCAs
	c.TLSConfig = tc
	c.TLSTimeout = 2
	c.TLSPinnedCerts = server.PinnedCertSet{pin: {}}
	return nil
}

// spkiPin is the server's pin of a certificate: the hex SHA-256 of its
// public key info.
func spkiPin(certFile string) (string, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", errors.New("no PEM certificate in " + certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]), nil
}

// ConnectOwner connects the server's own process to it without a socket:
// the connection `xenft server` and `xenft up` create the stream and
// buckets on. With server.auth.identities it authenticates with the
// server's own key, allowed only in this process, and has the server
// role's permissions (creating the stream, buckets and object store);
// otherwise it uses cfg's user and password, if any. cfg's TLS files and
// identity are not used: the connection never leaves the process.
func (s *Server) ConnectOwner(cfg events.BusConfig, log hclog.Logger, opts ...events.ConnectOption) (*events.Bus, error) {
	cfg.TLS = events.TLSFiles{}
	cfg.Identity = ""
	all := []events.ConnectOption{events.InProcess(s)}
	if s.owner != nil {
		pub, err := s.owner.PublicKey()
		if err != nil {
			return nil, err
		}
		cfg.Auth = events.ClientAuth{}
		id := ownerIdentity(s.cfg)
		all = append(all, events.As(id.Role, id.Name), events.NATSOptions(nats.Nkey(pub, s.owner.Sign)))
	}
	return events.Connect(cfg, log, append(all, opts...)...)
}
