package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/xenft/xenft/events"
)

// Config describes an embedded NATS server with JetStream: the "server"
// section of `xenft server` and `xenft up`.
type Config struct {
	// Name must be unique within a cluster. Default: the machine's host name.
	Name string `mapstructure:"name"`
	// Host is the client listen address. Default 127.0.0.1: a server is
	// reachable from elsewhere only when an operator says so.
	Host string `mapstructure:"host"`
	// Port is the client port; -1 picks a free one. Default 4222.
	Port int `mapstructure:"port"`
	// DataDir holds the JetStream file store.
	DataDir string `mapstructure:"data_dir"`
	// MonitorPort serves NATS's HTTP monitoring (/varz, /jsz); 0 disables it.
	MonitorPort int `mapstructure:"monitor_port"`
	// MaxStore bounds JetStream's disk use in bytes; 0 lets the server decide.
	MaxStore int64 `mapstructure:"max_store"`
	// Sync is when JetStream writes reach the disk: "always" (default) syncs
	// every write before it is acknowledged (replicated streams commit in
	// groups), or a duration such as "2m" (nats-server's own default) syncs
	// in the background that often, so a power loss of a majority of servers
	// can lose writes acknowledged within the last interval: a term, an
	// epoch or a checkpoint commit that the safety rules rest on.
	Sync string `mapstructure:"sync"`
	// Cluster joins other servers; leave Name empty for a single server.
	Cluster ClusterConfig `mapstructure:"cluster"`
	// Auth says who may connect: a single user and password, the
	// identities `xenft auth init` issued with their per-role permissions,
	// or both. With neither, anyone who reaches the port may do anything.
	Auth Auth `mapstructure:"auth"`
	// TLS of client connections: Cert and Key make TLS required; CA also
	// requires and verifies client certificates.
	TLS events.TLSFiles `mapstructure:"tls"`
}

// ClusterConfig joins servers with routes; JetStream then replicates streams
// and buckets over them (bus.replicas 3 on a 3-node cluster).
type ClusterConfig struct {
	Name   string   `mapstructure:"name"`
	Host   string   `mapstructure:"host"`
	Port   int      `mapstructure:"port"`
	Routes []string `mapstructure:"routes"` // nats-route://host:port of the other servers
	// NoAdvertise keeps the servers from telling clients each other's
	// client URLs: a client then reconnects only to the URLs it was
	// given (bus.urls), as a site that reaches its servers through
	// proxies or NAT needs.
	NoAdvertise bool `mapstructure:"no_advertise"`
	// TLS of the routes, mutual: each server presents Cert and verifies
	// its peer's against CA, and accepts as a route only a peer whose
	// certificate has the same key as its own (the set's server
	// certificate), not an identity's client certificate of the same CA.
	// Required with auth.identities.
	TLS events.TLSFiles `mapstructure:"tls"`
}

// Auth is who may connect.
type Auth struct {
	// User and Password: one user with every permission (tests, a
	// single-tenant lab).
	User     string `mapstructure:"user"`
	Password string `mapstructure:"password"`
	// Identities is the identities file `xenft auth init` wrote
	// (identities.json): each role/name may connect with its nkey and
	// gets its role's permissions (events/auth). Requires tls.cert.
	Identities string `mapstructure:"identities"`
}

// validate checks the cluster section; key names a key of the server section.
func (c ClusterConfig) validate(key func(string) string) error {
	var errs []error
	if c.Name == "" {
		if len(c.Routes) > 0 {
			errs = append(errs, fmt.Errorf("%s: required when cluster.routes is set", key("cluster.name")))
		}
		return errors.Join(errs...)
	}
	if c.Port < -1 || c.Port > 65535 || c.Port == 0 {
		errs = append(errs, fmt.Errorf("%s: %d is not a port", key("cluster.port"), c.Port))
	}
	for _, r := range c.Routes {
		if !strings.HasPrefix(r, "nats-route://") && !strings.HasPrefix(r, "nats://") {
			errs = append(errs, fmt.Errorf("%s: %q is not a URL like nats-route://host:6222", key("cluster.routes"), r))
		}
	}
	t := c.TLS
	if t != (events.TLSFiles{}) && (t.Cert == "" || t.Key == "" || t.CA == "") {
		errs = append(errs, fmt.Errorf("%s: cert, key and ca must be set together (routes verify each other)", key("cluster.tls")))
	}
	return errors.Join(errs...)
}

// DefaultConfig returns a loopback single server on port 4222 storing
// under ./.xenft/nats.
func DefaultConfig() Config {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "xenft"
	}
	return Config{
		Name:    name,
		Host:    "127.0.0.1",
		Port:    4222,
		DataDir: ".xenft/nats",
		Sync:    SyncAlways,
	}
}

// SyncAlways is the Sync value that syncs every write before its
// acknowledgement.
const SyncAlways = "always"

// syncPolicy is Sync as nats-server options: always, or the interval.
func (c Config) syncPolicy() (always bool, interval time.Duration, err error) {
	if c.Sync == "" || c.Sync == SyncAlways {
		return true, 0, nil
	}
	d, err := time.ParseDuration(c.Sync)
	if err != nil || d < time.Millisecond {
		return false, 0, fmt.Errorf("%q is neither %q nor a duration of at least 1ms such as 2m", c.Sync, SyncAlways)
	}
	return false, d, nil
}

// Validate checks the configuration; errors name the key under section.
func (c Config) Validate(section string) error {
	key := func(k string) string { return section + "." + k }
	var errs []error
	if c.Name == "" || strings.ContainsAny(c.Name, " \t.*>") {
		errs = append(errs, fmt.Errorf("%s: %q must be non-empty without spaces, '.', '*' or '>'", key("name"), c.Name))
	}
	if net.ParseIP(c.Host) == nil && c.Host != "localhost" {
		errs = append(errs, fmt.Errorf("%s: %q is not an IP address", key("host"), c.Host))
	}
	if c.Port < -1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("%s: %d is not a port (or -1 for any)", key("port"), c.Port))
	}
	if c.MonitorPort < -1 || c.MonitorPort > 65535 {
		errs = append(errs, fmt.Errorf("%s: %d is not a port", key("monitor_port"), c.MonitorPort))
	}
	if c.DataDir == "" {
		errs = append(errs, fmt.Errorf("%s: required (JetStream keeps its files there)", key("data_dir")))
	}
	if _, _, err := c.syncPolicy(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", key("sync"), err))
	}
	if c.MaxStore < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative", key("max_store")))
	}
	errs = append(errs, c.Cluster.validate(key))
	if (c.Auth.User == "") != (c.Auth.Password == "") {
		errs = append(errs, fmt.Errorf("%s: user and password must be set together", key("auth")))
	}
	errs = append(errs, c.TLS.Validate(key("tls")))
	if c.Auth.Identities != "" {
		if !events.ValidName(c.Name) {
			errs = append(errs, fmt.Errorf("%s: %q must be %s with %s (the server's own identity)", key("name"), c.Name, events.NameRule, key("auth.identities")))
		}
		if c.TLS.Cert == "" {
			errs = append(errs, fmt.Errorf("%s: required with %s: identities authenticate clients, TLS keeps their traffic private", key("tls.cert"), key("auth.identities")))
		}
		if c.Cluster.Name != "" && c.Cluster.TLS.Cert == "" {
			errs = append(errs, fmt.Errorf("%s: required with %s on a cluster: a route is trusted with everything", key("cluster.tls.cert"), key("auth.identities")))
		}
	}
	return errors.Join(errs...)
}
