package auth_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
)

func ids(pairs ...string) []events.Publisher {
	var out []events.Publisher
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, events.Publisher{Role: pairs[i], Name: pairs[i+1]})
	}
	return out
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// Init writes a CA, the server certificate (loopback names and the ones
// given), a seed per identity readable by its owner only, and the
// identities file with each public key; every seed is the key the file
// names.
func TestInitWritesACompleteCredentialSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	spec := auth.Spec{Identities: ids("supervisor", "sup-a", "agent", "n1", "agent", "n2.lab", "site", "ipmi", "monitor", "mon", "operator", "admin", "detector", "det-a"),
		DNSNames: []string{"nats.example.org"}, IPs: []net.IP{net.ParseIP("10.0.0.5")}, ClientCerts: true}
	written, err := auth.Init(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 5+3*len(spec.Identities) {
		t.Errorf("wrote %d files, want %d", len(written), 5+3*len(spec.Identities))
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("directory mode %o, want 700", m)
	}
	for _, w := range written {
		secret := strings.HasSuffix(w.Path, ".nk") || strings.HasSuffix(w.Path, "-key.pem")
		if m := mode(t, w.Path); secret && m != 0o600 || !secret && m != 0o644 {
			t.Errorf("%s: mode %o (secret %v)", w.Path, m, secret)
		}
		if w.What == "" {
			t.Errorf("%s: no description", w.Path)
		}
	}

	f, err := auth.Load(filepath.Join(dir, auth.IdentitiesFile))
	if err != nil {
		t.Fatal(err)
	}
	if f.Prefix != "xenft" || !f.ClientCerts || len(f.Identities) != len(spec.Identities) {
		t.Fatalf("identities file: %+v", f)
	}
	ca := readCert(t, filepath.Join(dir, auth.CAFile))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, id := range f.Identities {
		seed, err := os.ReadFile(filepath.Join(dir, auth.SeedFile(id.Role, id.Name)))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := nkeys.ParseDecoratedNKey(seed)
		if err != nil {
			t.Fatalf("%s: seed: %v", id, err)
		}
		if pub, _ := kp.PublicKey(); pub != id.NKey {
			t.Errorf("%s: seed's public key %s, file says %s", id, pub, id.NKey)
		}
		cf, _ := auth.ClientCertFiles(id.Role, id.Name)
		c := readCert(t, filepath.Join(dir, cf))
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || c.Subject.CommonName != id.String() {
			t.Errorf("%s: client certificate %q: %v", id, c.Subject.CommonName, err)
		}
	}
	srv := readCert(t, filepath.Join(dir, auth.ServerCertFile))
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "nats.example.org", "10.0.0.5"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example.org"}); err == nil {
		t.Error("the server certificate is valid for a name it was not issued for")
	}
	// Routes: each server is the other's client.
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the server certificate cannot authenticate a route: %v", err)
	}
	if !srv.NotAfter.After(time.Now().Add(4 * 365 * 24 * time.Hour)) {
		t.Errorf("the server certificate expires %s", srv.NotAfter)
	}
}

// A directory that holds a set is never written over: its seeds and CA
// stay what they were.
func TestInitRefusesADirectoryThatHoldsASet(t *testing.T) {
	dir := t.TempDir()
	if _, err := auth.Init(dir, auth.Spec{Identities: ids("supervisor", "s")}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, auth.CAFile))
	_, err := auth.Init(dir, auth.Spec{Identities: ids("supervisor", "s")})
	if !errors.Is(err, auth.ErrExists) || !strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("second init: %v, want one line naming %s matching ErrExists", err, dir)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, auth.CAFile)); string(after) != string(before) {
		t.Fatal("the CA was rewritten")
	}
}

// A bad name or role is refused naming it, before anything is written.
func TestInitRefusesBadIdentitiesNamingThem(t *testing.T) {
	for _, tc := range []struct {
		ids  []events.Publisher
		want string
	}{
		{ids("agent", "n 1"), `agent name "n 1"`},
		{ids("agent", ""), `agent name ""`},
		{ids("agent", "-n1"), `agent name "-n1"`},
		{ids("agent", "a/b"), `agent name "a/b"`},
		{ids("agent", "n*"), `agent name "n*"`},
		{ids("agent", strings.Repeat("n", 129)), "agent name"},
		{ids("server", "s1"), `role "server"`},
		{ids("anonymous", "x"), `role "anonymous"`},
		{ids("agent", "n1", "agent", "n1"), "agent/n1 named twice"},
		{nil, "no identities"},
	} {
		dir := filepath.Join(t.TempDir(), "auth")
		_, err := auth.Init(dir, auth.Spec{Identities: tc.ids})
		if !errors.Is(err, auth.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line saying %q", tc.ids, err, tc.want)
		}
		if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
			t.Errorf("%v: the directory was created", tc.ids)
		}
	}
	_, err := auth.Init(t.TempDir(), auth.Spec{Prefix: "a.b", Identities: ids("agent", "n1")})
	if err == nil || !strings.Contains(err.Error(), `prefix "a.b"`) {
		t.Errorf("bad prefix: %v", err)
	}
}

// Add issues one more identity (a new host) into the set: its seed, its
// client certificate when the set has them, and its line in the file; a
// second Add of it is refused and changes nothing.
func TestAddIssuesOneMoreIdentity(t *testing.T) {
	dir := t.TempDir()
	if _, err := auth.Init(dir, auth.Spec{Identities: ids("supervisor", "s", "agent", "n1"), ClientCerts: true}); err != nil {
		t.Fatal(err)
	}
	written, err := auth.Add(dir, "agent", "n2")
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 4 {
		t.Errorf("add wrote %v, want the seed, certificate, key and identities file", written)
	}
	f, err := auth.Load(filepath.Join(dir, auth.IdentitiesFile))
	if err != nil {
		t.Fatal(err)
	}
	n2, ok := f.Find("agent", "n2")
	if !ok || len(f.Identities) != 3 {
		t.Fatalf("identities after add: %+v", f.Identities)
	}
	seed, _ := os.ReadFile(filepath.Join(dir, auth.SeedFile("agent", "n2")))
	if kp, err := nkeys.ParseDecoratedNKey(seed); err != nil {
		t.Fatal(err)
	} else if pub, _ := kp.PublicKey(); pub != n2.NKey {
		t.Fatalf("n2's seed is not the key the file names")
	}
	if m := mode(t, filepath.Join(dir, auth.SeedFile("agent", "n2"))); m != 0o600 {
		t.Errorf("seed mode %o", m)
	}
	before, _ := os.ReadFile(filepath.Join(dir, auth.IdentitiesFile))
	if _, err := auth.Add(dir, "agent", "n2"); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("adding n2 again: %v, want ErrExists", err)
	}
	if _, err := auth.Add(dir, "agent", "bad name"); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("adding a bad name: %v, want ErrInvalid", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, auth.IdentitiesFile)); string(after) != string(before) {
		t.Fatal("a refused add changed the identities file")
	}
	if _, err := auth.Add(t.TempDir(), "agent", "n3"); err == nil {
		t.Fatal("add into a directory without a set succeeded")
	}
}

// Load refuses a file a server must not trust, naming the entry.
func TestLoadRefusesABadIdentitiesFile(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	kp2, _ := nkeys.CreateUser()
	pub2, _ := kp2.PublicKey()
	for _, tc := range []struct{ body, want string }{
		{`{"version":2,"prefix":"xenft","identities":[]}`, "version 2"},
		{`{"version":1,"prefix":"x.y","identities":[]}`, `prefix "x.y"`},
		{`{"version":1,"prefix":"xenft","identities":[{"role":"agent","name":"n1","nkey":"SUABC"}]}`, `identities[0] (agent/n1): nkey "SUABC"`},
		{`{"version":1,"prefix":"xenft","identities":[{"role":"boss","name":"n1","nkey":"` + pub + `"}]}`, `identities[0]: invalid identity: role "boss"`},
		{`{"version":1,"prefix":"xenft","identities":[{"role":"agent","name":"n1","nkey":"` + pub + `"},{"role":"agent","name":"n1","nkey":"` + pub2 + `"}]}`, "identities[1]: agent/n1 is also identities[0]"},
		{`{"version":1,"prefix":"xenft","identities":[{"role":"agent","name":"n1","nkey":"` + pub + `"},{"role":"agent","name":"n2","nkey":"` + pub + `"}]}`, "its nkey is also identities[0]'s"},
		{`{"version":1,"prefix":"xenft","identities":[],"extra":1}`, "unknown field"},
		{`not json`, "invalid"},
	} {
		p := filepath.Join(t.TempDir(), "identities.json")
		if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := auth.Load(p)
		if !errors.Is(err, auth.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming %s and saying %q", tc.body, err, p, tc.want)
		}
	}
}
