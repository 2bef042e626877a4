package events

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// BusConfig is how a role reaches the bus. It is the "bus" section of every
// role's configuration file.
type BusConfig struct {
	// Prefix is the first token of every subject and names the stream and
	// buckets, so several installations can share one NATS. Default "xenft".
	Prefix string `mapstructure:"prefix"`
	// URLs of the NATS servers to connect to. Default nats://127.0.0.1:4222
	// (a `xenft server` on this machine).
	URLs []string `mapstructure:"urls"`
	// ClientName shows in the server's connection list. Default: the role.
	ClientName string `mapstructure:"client_name"`
	// ConnectTimeout bounds the first connection and each reconnect attempt.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// RequestTimeout bounds every JetStream API call and request/reply.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// Replicas of the stream, buckets and object store: 1 on a single server,
	// 3 on a 3-node cluster.
	Replicas int `mapstructure:"replicas"`
	// Stream limits of XENFT_EVENTS: events older than MaxAge or beyond
	// MaxBytes are discarded oldest first.
	Stream StreamConfig `mapstructure:"stream"`
	// LeaderTTL is the lease of the supervisor leader (the TTL of the
	// xenft_leader bucket): a successor takes over within LeaderTTL plus one
	// renewal after the leader stops renewing.
	LeaderTTL time.Duration `mapstructure:"leader_ttl"`
	// Identity is who this client publishes events as, "role/name" (a site
	// script's "site/ipmi", the CLI's "operator/admin"). It must be the
	// identity its credential was issued for: the server lets a credential
	// publish only under its own. The daemons set their own (an agent is
	// agent/<host>); empty publishes anonymously, which only a server
	// without per-role credentials accepts.
	Identity string `mapstructure:"identity"`
	// Auth and TLS of the client connection.
	Auth ClientAuth `mapstructure:"auth"`
	TLS  TLSFiles   `mapstructure:"tls"`
}

// StreamConfig limits the event stream.
type StreamConfig struct {
	MaxAge   time.Duration `mapstructure:"max_age"`
	MaxBytes int64         `mapstructure:"max_bytes"`
	// DuplicateWindow is how long JetStream remembers event ids to drop
	// duplicates (several detectors publishing the same transition).
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
}

// ClientAuth holds one way to authenticate; leave the others empty.
type ClientAuth struct {
	CredsFile    string `mapstructure:"creds_file"`     // a NATS .creds file (JWT + seed)
	NKeySeedFile string `mapstructure:"nkey_seed_file"` // a file holding an nkey user seed
	User         string `mapstructure:"user"`
	Password     string `mapstructure:"password"`
}

// TLSFiles names PEM files. CA alone verifies the server; Cert and Key
// together present a client (or server) certificate.
type TLSFiles struct {
	CA   string `mapstructure:"ca"`
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

// DefaultBusConfig returns the defaults: a local server, one replica, a week
// or 1 GiB of events, whichever comes first.
func DefaultBusConfig() BusConfig {
	return BusConfig{
		Prefix:         DefaultPrefix,
		URLs:           []string{"nats://127.0.0.1:4222"},
		ConnectTimeout: 5 * time.Second,
		RequestTimeout: 5 * time.Second,
		Replicas:       1,
		Stream: StreamConfig{
			MaxAge:          7 * 24 * time.Hour,
			MaxBytes:        1 << 30,
			DuplicateWindow: 2 * time.Minute,
		},
		LeaderTTL: 10 * time.Second,
	}
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ValidPrefix reports whether s can be bus.prefix: 1-32 letters, digits,
// '_' or '-'.
func ValidPrefix(s string) bool { return prefixRE.MatchString(s) }

// Validate checks the configuration; each error names its key under section
// (usually "bus").
func (c BusConfig) Validate(section string) error {
	key := func(k string) string { return section + "." + k }
	var errs []error
	if !prefixRE.MatchString(c.Prefix) {
		errs = append(errs, fmt.Errorf("%s: %q must be 1-32 letters, digits, '_' or '-'", key("prefix"), c.Prefix))
	}
	for _, u := range c.URLs {
		if !strings.Contains(u, "://") {
			errs = append(errs, fmt.Errorf("%s: %q is not a URL like nats://host:4222", key("urls"), u))
		}
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", key("connect_timeout"), c.ConnectTimeout))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", key("request_timeout"), c.RequestTimeout))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("%s: must be 1 to 5, got %d", key("replicas"), c.Replicas))
	}
	if c.Stream.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", key("stream.max_age"), c.Stream.MaxAge))
	}
	if c.Stream.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("%s: must be at least 1 MiB, got %d", key("stream.max_bytes"), c.Stream.MaxBytes))
	}
	if c.Stream.DuplicateWindow <= 0 || c.Stream.DuplicateWindow > c.Stream.MaxAge {
		errs = append(errs, fmt.Errorf("%s: must be positive and at most stream.max_age, got %s", key("stream.duplicate_window"), c.Stream.DuplicateWindow))
	}
	if c.Identity != "" {
		if _, err := ParsePublisher(c.Identity); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key("identity"), err))
		}
	}
	if c.LeaderTTL < time.Second {
		errs = append(errs, fmt.Errorf("%s: must be at least 1s, got %s", key("leader_ttl"), c.LeaderTTL))
	}
	errs = append(errs, c.Auth.validate(key("auth")))
	errs = append(errs, c.TLS.Validate(key("tls")))
	return errors.Join(errs...)
}

func (a ClientAuth) validate(section string) error {
	n := 0
	for _, set := range []bool{a.CredsFile != "", a.NKeySeedFile != "", a.User != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%s: set only one of creds_file, nkey_seed_file, user", section)
	}
	if a.Password != "" && a.User == "" {
		return fmt.Errorf("%s.user: required when %s.password is set", section, section)
	}
	return nil
}

// Validate checks that cert and key are set together; the error names
// section.
func (t TLSFiles) Validate(section string) error {
	if (t.Cert == "") != (t.Key == "") {
		return fmt.Errorf("%s: cert and key must be set together", section)
	}
	return nil
}

// Names of the JetStream resources for a prefix. With the default prefix they
// are the names DESIGN.md uses: XENFT_EVENTS, xenft_hosts, ...
type Names struct{ prefix string }

// NamesFor returns the resource names of prefix.
func NamesFor(prefix string) Names {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Names{prefix: prefix}
}

func (n Names) Stream() string      { return strings.ToUpper(n.prefix) + "_EVENTS" }
func (n Names) Hosts() string       { return n.prefix + "_hosts" }
func (n Names) VMs() string         { return n.prefix + "_vms" }
func (n Names) Groups() string      { return n.prefix + "_groups" }
func (n Names) Checkpoints() string { return n.prefix + "_checkpoints" }
func (n Names) Leader() string      { return n.prefix + "_leader" }
func (n Names) Images() string      { return n.prefix + "_images" }

// State is the bucket of the supervisor's decision state (one document), so
// a new leader resumes in-flight operations.
func (n Names) State() string { return n.prefix + "_state" }
