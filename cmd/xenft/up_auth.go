package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
)

// xenft up is secured like a production cluster unless --insecure: at every
// start it issues a fresh credential set into <data>/auth (the previous
// run's is removed with the rest of its state), its server lets in only
// those identities over TLS, and every role in the process connects with
// its own (in process, so without TLS). It also issues the identities a
// person uses from another terminal: operator/admin, with a ready client
// configuration, and monitor/mon for the nats CLI.

// Identities of xenft up besides its agents.
var (
	upSupervisor = events.Publisher{Role: events.RoleSupervisor, Name: "sup-1"}
	upDetector   = events.Publisher{Role: events.RoleDetector, Name: "det-1"}
	upSelf       = events.Publisher{Role: events.RoleOperator, Name: "up"} // the demo's view, recorder and registrations
	upAdmin      = events.Publisher{Role: events.RoleOperator, Name: "admin"}
	upMonitor    = events.Publisher{Role: events.RoleMonitor, Name: "mon"}
)

// upCreds is the credential set of one run (nil with --insecure).
type upCreds struct {
	dir string
}

func upHost(i int) string { return fmt.Sprintf("n%d", i) }

// issueUpCredentials writes a new set for hosts agents into dataDir/auth.
func issueUpCredentials(dataDir, prefix string, hosts int) (*upCreds, error) {
	dir := filepath.Join(dataDir, "auth")
	ids := []events.Publisher{upSupervisor, upDetector, upSelf, upAdmin, upMonitor}
	for i := 1; i <= hosts; i++ {
		ids = append(ids, events.Publisher{Role: events.RoleAgent, Name: upHost(i)})
	}
	if _, err := auth.Init(dir, auth.Spec{Prefix: prefix, Identities: ids}); err != nil {
		return nil, fmt.Errorf("credentials for the demo: %w", err)
	}
	return &upCreds{dir: dir}, nil
}

func (c *upCreds) path(name string) string         { return filepath.Join(c.dir, name) }
func (c *upCreds) seed(id events.Publisher) string { return c.path(auth.SeedFile(id.Role, id.Name)) }

// secure makes the server section let in the set's identities over TLS.
func (c *upCreds) secure(cfg *Config) {
	cfg.Server.Auth.Identities = c.path(auth.IdentitiesFile)
	cfg.Server.TLS = events.TLSFiles{Cert: c.path(auth.ServerCertFile), Key: c.path(auth.ServerKeyFile)}
}

// adminConfig writes the client configuration of operator/admin for the
// server at url (xenft events tail --config FILE) and returns its path.
func (c *upCreds) adminConfig(url, prefix string) (string, error) {
	seed, err := filepath.Abs(c.seed(upAdmin))
	if err != nil {
		return "", err
	}
	ca, err := filepath.Abs(c.path(auth.CAFile))
	if err != nil {
		return "", err
	}
	body := fmt.Sprintf(`# The operator credential of this xenft up run: xenft <command> --config %s
bus:
  prefix: %q
  urls: [%q]
  identity: %q
  auth:
    nkey_seed_file: %q
  tls:
    ca: %q
`, c.path("admin.yaml"), prefix, url, upAdmin.String(), seed, ca)
	p := c.path("admin.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// natsCLI is how a nats CLI user watches the events as monitor/mon.
func (c *upCreds) natsCLI(url, prefix string) string {
	return fmt.Sprintf("nats --server %s --nkey %s --tlsca %s sub '%s'", url, c.seed(upMonitor), c.path(auth.CAFile), events.Subjects{Prefix: prefix}.AllEvents())
}
