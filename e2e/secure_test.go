//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
)

// Every scenario runs on a secured bus, as a site deploys it: the servers
// require TLS and know each process by its own nkey identity with its
// role's permissions (xenft auth init), routes are mutual TLS, and the
// supervisors take node events only from the detectors and the site
// identity "ipmi" (supervisor.trusted_sources). The test's own connection,
// which registers the workload and plays the operator and the monitor, is
// the servers' single admin user.

// Identities the scenarios may use beyond the cluster's processes: a
// trusted and an untrusted site plug-in, and a monitor.
var (
	trustedSite   = events.Publisher{Role: events.RoleSite, Name: "ipmi"}
	untrustedSite = events.Publisher{Role: events.RoleSite, Name: "rogue"}
	monitor       = events.Publisher{Role: events.RoleMonitor, Name: "e2e"}
)

// security is the cluster's credential set.
type security struct {
	dir           string
	adminPassword string
}

// secure issues the credential set into the cluster's directory and
// returns the settings every process shares.
func (c *cluster) secure() []string {
	c.t.Helper()
	var ids []events.Publisher
	for _, h := range hosts {
		ids = append(ids, events.Publisher{Role: events.RoleAgent, Name: h})
	}
	for _, d := range detectors {
		ids = append(ids, events.Publisher{Role: events.RoleDetector, Name: d})
	}
	for _, s := range supervisors {
		ids = append(ids, events.Publisher{Role: events.RoleSupervisor, Name: s})
	}
	ids = append(ids, trustedSite, untrustedSite, monitor)
	spec := auth.Spec{Identities: ids}
	if c.link != nil {
		// The partitioned agent reaches the servers at the veth link's
		// root address: the certificate must name it.
		spec.IPs = append(spec.IPs, net.ParseIP(c.link.rootAddr))
	}
	dir := filepath.Join(c.dir, "auth")
	if _, err := auth.Init(dir, spec); err != nil {
		c.t.Fatalf("xenft auth init: %v", err)
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	c.sec = security{dir: dir, adminPassword: hex.EncodeToString(pw)}
	trusted := []string{trustedSite.String()}
	for _, d := range detectors {
		trusted = append(trusted, events.RoleDetector+"/"+d)
	}
	return []string{
		"XENFT_BUS_TLS_CA=" + filepath.Join(dir, auth.CAFile),
		"XENFT_SUPERVISOR_TRUSTED_SOURCES=" + strings.Join(trusted, ","),
	}
}

// credentials is the environment that makes process name connect as its
// identity.
func (c *cluster) credentials(name string) []string {
	role := ""
	switch {
	case slices.Contains(hosts, name):
		role = events.RoleAgent
	case slices.Contains(detectors, name):
		role = events.RoleDetector
	case slices.Contains(supervisors, name):
		role = events.RoleSupervisor
	default:
		return nil
	}
	return []string{"XENFT_BUS_AUTH_NKEY_SEED_FILE=" + c.seed(events.Publisher{Role: role, Name: name})}
}

// seed is the path of an identity's nkey seed.
func (c *cluster) seed(id events.Publisher) string {
	return filepath.Join(c.sec.dir, auth.SeedFile(id.Role, id.Name))
}

// serverSecurity is the servers' auth and TLS configuration (YAML under
// server:).
func (c *cluster) serverSecurity() string {
	d := c.sec.dir
	return `  auth:
    user: e2e-admin
    password: ` + c.sec.adminPassword + `
    identities: ` + filepath.Join(d, auth.IdentitiesFile) + `
  tls:
    cert: ` + filepath.Join(d, auth.ServerCertFile) + `
    key: ` + filepath.Join(d, auth.ServerKeyFile) + `
`
}

// routeSecurity is the servers' route TLS (YAML under server.cluster:).
func (c *cluster) routeSecurity() string {
	d := c.sec.dir
	return `    tls:
      cert: ` + filepath.Join(d, auth.ServerCertFile) + `
      key: ` + filepath.Join(d, auth.ServerKeyFile) + `
      ca: ` + filepath.Join(d, auth.CAFile) + `
`
}

// busConfig is a bus config for the test's own connections: the admin user, or
// an identity's seed.
func (c *cluster) busConfig(urls []string, id *events.Publisher) events.BusConfig {
	cfg := events.DefaultBusConfig()
	cfg.URLs, cfg.Replicas, cfg.LeaderTTL, cfg.ClientName = urls, 3, leaderTTL, "e2e-test"
	cfg.TLS.CA = filepath.Join(c.sec.dir, auth.CAFile)
	if id == nil {
		cfg.Auth.User, cfg.Auth.Password = "e2e-admin", c.sec.adminPassword
	} else {
		cfg.Auth.NKeySeedFile = c.seed(*id)
		cfg.ClientName = "e2e-" + id.Role + "-" + id.Name
	}
	return cfg
}
