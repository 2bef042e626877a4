package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/xenft/xenft/events"
)

// The files of a credential set, in its directory.
const (
	IdentitiesFile = "identities.json" // public: every server loads it
	CAFile         = "ca.pem"          // public: every client and server verifies with it
	CAKeyFile      = "ca-key.pem"      // secret: only `xenft auth add` needs it
	ServerCertFile = "server.pem"      // public: every server presents it
	ServerKeyFile  = "server-key.pem"  // secret: every server
)

// SeedFile is the name of identity role/name's nkey seed file (secret: its
// owner's alone).
func SeedFile(role, name string) string { return role + "-" + name + ".nk" }

// ClientCertFiles are the names of role/name's client certificate and key.
func ClientCertFiles(role, name string) (cert, key string) {
	return role + "-" + name + ".pem", role + "-" + name + "-key.pem"
}

// DefaultValidity is how long the certificates Init issues are valid.
const DefaultValidity = 5 * 365 * 24 * time.Hour

// Spec is what Init issues.
type Spec struct {
	// Prefix is bus.prefix; default events.DefaultPrefix.
	Prefix string
	// Identities to issue, each a role (IssuedRoles) and a name.
	Identities []events.Publisher
	// DNSNames and IPs the servers are reached at, added to the server
	// certificate's 127.0.0.1, ::1 and localhost.
	DNSNames []string
	IPs      []net.IP
	// ClientCerts also issues every identity a client certificate, for
	// servers that require them (server.tls.ca).
	ClientCerts bool
	// Now is when the certificates start (default: the machine's clock);
	// Validity how long they last (default DefaultValidity).
	Now      time.Time
	Validity time.Duration
}

// Written is one file Init or Add wrote, and what it is for.
type Written struct {
	Path string
	What string
}

// ErrExists is matched (errors.Is) when Init finds a credential set in its
// directory or Add an identity already issued.
var ErrExists = errors.New("already exists")

// Init writes a new credential set into dir (created 0700 if missing): a CA,
// the server certificate, one nkey seed per identity (0600), the identities
// file and, with spec.ClientCerts, client certificates. It refuses a
// directory that already holds a set, and on failure removes what it wrote.
func Init(dir string, spec Spec) (written []Written, err error) {
	if spec.Prefix == "" {
		spec.Prefix = events.DefaultPrefix
	}
	if !events.ValidPrefix(spec.Prefix) {
		return nil, fmt.Errorf("%w: prefix %q: must be 1-32 letters, digits, '_' or '-'", ErrInvalid, spec.Prefix)
	}
	if len(spec.Identities) == 0 {
		return nil, fmt.Errorf("%w: no identities to issue (name at least a supervisor)", ErrInvalid)
	}
	seen := map[events.Publisher]bool{}
	for _, id := range spec.Identities {
		if err := checkIdentity(id.Role, id.Name); err != nil {
			return nil, err
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: %s named twice", ErrInvalid, id)
		}
		seen[id] = true
	}
	for _, d := range spec.DNSNames {
		if d == "" || len(d) > 253 {
			return nil, fmt.Errorf("%w: DNS name %q", ErrInvalid, d)
		}
	}
	if spec.Now.IsZero() {
		spec.Now = time.Now()
	}
	if spec.Validity <= 0 {
		spec.Validity = DefaultValidity
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []string{IdentitiesFile, CAFile, CAKeyFile, ServerCertFile, ServerKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%s: a credential set %w there (%s): add identities with xenft auth add, or choose another directory", dir, ErrExists, f)
		}
	}
	w := &writer{dir: dir}
	defer func() {
		if err != nil {
			w.undo()
		}
	}()

	ca, err := newCA(spec.Prefix, spec.Now, spec.Validity)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	dns := append([]string{"localhost"}, spec.DNSNames...)
	ips := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, spec.IPs...)
	srv, err := newServerCert(ca, dedup(dns), dedupIPs(ips), spec.Now, spec.Validity)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	if err := w.write(CAFile, ca.certPEM, 0o644, "CA certificate (bus.tls.ca of every client, server.tls.ca and server.cluster.tls.ca of every server)"); err != nil {
		return nil, err
	}
	if err := w.write(CAKeyFile, ca.keyPEM, 0o600, "CA key (signs client certificates: xenft auth add needs it when the set has them; keep it off the hosts)"); err != nil {
		return nil, err
	}
	if err := w.write(ServerCertFile, srv.certPEM, 0o644, "server certificate (server.tls.cert, server.cluster.tls.cert)"); err != nil {
		return nil, err
	}
	if err := w.write(ServerKeyFile, srv.keyPEM, 0o600, "server key (server.tls.key, server.cluster.tls.key)"); err != nil {
		return nil, err
	}
	f := File{Version: FileVersion, Prefix: spec.Prefix, ClientCerts: spec.ClientCerts}
	for _, p := range spec.Identities {
		id, err := w.issue(p.Role, p.Name, ca, spec.ClientCerts, spec.Now, spec.Validity)
		if err != nil {
			return nil, err
		}
		f.Identities = append(f.Identities, id)
	}
	b, err := f.marshal()
	if err != nil {
		return nil, err
	}
	if err := w.write(IdentitiesFile, b, 0o644, "identities and their public keys (server.auth.identities of every server)"); err != nil {
		return nil, err
	}
	return w.done, nil
}

// Add issues one more identity in the set in dir (a new host, a site's
// script): its seed, its client certificate if the set has them, and its
// entry in the identities file, which it rewrites atomically. Servers read
// the file at start: restart them (one at a time) to let it in.
func Add(dir, role, name string) (written []Written, err error) {
	if err := checkIdentity(role, name); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, IdentitiesFile)
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	if _, ok := f.Find(role, name); ok {
		return nil, fmt.Errorf("%s/%s: %w in %s", role, name, ErrExists, path)
	}
	var ca *keyPair
	if f.ClientCerts {
		certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
		if err != nil {
			return nil, err
		}
		keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
		if err != nil {
			return nil, fmt.Errorf("the set issues client certificates, which takes the CA key: %w", err)
		}
		if ca, err = loadCA(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAKeyFile), err)
		}
	}
	w := &writer{dir: dir}
	defer func() {
		if err != nil {
			w.undo()
		}
	}()
	id, err := w.issue(role, name, ca, f.ClientCerts, time.Now(), DefaultValidity)
	if err != nil {
		return nil, err
	}
	f.Identities = append(f.Identities, id)
	b, err := f.marshal()
	if err != nil {
		return nil, err
	}
	if err := replaceFile(path, b, 0o644); err != nil {
		return nil, err
	}
	w.done = append(w.done, Written{Path: path, What: "identities file, now with " + id.String()})
	return w.done, nil
}

// writer writes new files into dir and remembers them, to report them or
// to remove them all if a later step fails.
type writer struct {
	dir  string
	done []Written
}

// write creates name exclusively with mode: it never overwrites.
func (w *writer) write(name string, data []byte, mode fs.FileMode, what string) error {
	path := filepath.Join(w.dir, name)
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	if err != nil {
		return err
	}
	_, err = fh.Write(data)
	if serr := fh.Sync(); err == nil {
		err = serr
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("%s: %w", path, err)
	}
	w.done = append(w.done, Written{Path: path, What: what})
	return nil
}

func (w *writer) undo() {
	for _, f := range w.done {
		_ = os.Remove(f.Path)
	}
	w.done = nil
}

// issue makes role/name's nkey (and client certificate with ca), writing
// its secret files.
func (w *writer) issue(role, name string, ca *keyPair, clientCert bool, now time.Time, validity time.Duration) (Identity, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Identity{}, err
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return Identity{}, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Role: role, Name: name, NKey: pub}
	// The seed alone on its line: nats.go, the nats CLI and nats-py all
	// read such a file.
	if err := w.write(SeedFile(role, name), append(seed, '\n'), 0o600, "nkey seed of "+id.String()+" (bus.auth.nkey_seed_file)"); err != nil {
		return Identity{}, err
	}
	if clientCert {
		c, err := newClientCert(ca, id, now, validity)
		if err != nil {
			return Identity{}, err
		}
		cf, kf := ClientCertFiles(role, name)
		if err := w.write(cf, c.certPEM, 0o644, "client certificate of "+id.String()+" (bus.tls.cert)"); err != nil {
			return Identity{}, err
		}
		if err := w.write(kf, c.keyPEM, 0o600, "client key of "+id.String()+" (bus.tls.key)"); err != nil {
			return Identity{}, err
		}
	}
	return id, nil
}

// replaceFile writes path through a temporary file and a rename, so a
// server reading it sees the old file or the new one, never a part.
func replaceFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dedupIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		if !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}
