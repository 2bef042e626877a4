package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenft/xenft/events/auth"
)

// xenft auth init writes a set and prints, per role, the keys to set; it
// refuses a directory that holds one (exit 1, one line) and a bad name
// (exit 2, naming the flag); xenft auth add issues one more identity.
func TestAuthInitAndAddAsAnOperatorRunsThem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	r := xenft(t, nil, "auth", "init", dir, "--agents", "n1,n2.lab", "--detectors", "det-a", "--supervisors", "sup-a",
		"--sites", "ipmi", "--monitors", "mon", "--operators", "admin", "--dns", "nats1.example.org", "--ip", "10.0.0.11")
	if r.code != 0 {
		t.Fatalf("auth init: exit %d, %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"server.auth.identities: " + filepath.Join(dir, auth.IdentitiesFile),
		"server.tls.cert: " + filepath.Join(dir, auth.ServerCertFile),
		"agent/n2.lab", "bus.auth.nkey_seed_file: " + filepath.Join(dir, "agent-n2.lab.nk"), "agent.host: n2.lab",
		"detector.id: det-a", "supervisor.id: sup-a", "bus.identity: site/ipmi", "bus.identity: operator/admin",
		"bus.tls.ca: " + filepath.Join(dir, auth.CAFile),
		"nats --server nats://SERVER:4222 --tlsca " + filepath.Join(dir, auth.CAFile) + " --nkey " + filepath.Join(dir, "monitor-mon.nk") + " sub 'xenft.events.>'",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("auth init does not say %q:\n%s", want, r.stdout)
		}
	}
	f, err := auth.Load(filepath.Join(dir, auth.IdentitiesFile))
	if err != nil || len(f.Identities) != 7 {
		t.Fatalf("identities: %+v, %v", f, err)
	}

	again := xenft(t, nil, "auth", "init", dir, "--agents", "n3")
	if again.code != 1 || !strings.Contains(again.stderr, "already exists") || strings.Count(strings.TrimSpace(again.stderr), "\n") != 0 {
		t.Fatalf("auth init on a set: exit %d, %q", again.code, again.stderr)
	}
	bad := xenft(t, nil, "auth", "init", filepath.Join(t.TempDir(), "x"), "--agents", "n1,bad host")
	if bad.code != 2 || !strings.Contains(bad.stderr, `--agents: "bad host"`) {
		t.Fatalf("auth init with a bad name: exit %d, %q", bad.code, bad.stderr)
	}

	add := xenft(t, nil, "auth", "add", "agent", "n3", "--dir", dir)
	if add.code != 0 || !strings.Contains(add.stdout, "agent.host: n3") || !strings.Contains(add.stdout, "Restart the servers") {
		t.Fatalf("auth add: exit %d, %s %s", add.code, add.stdout, add.stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, auth.SeedFile("agent", "n3"))); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("n3's seed: %v, %v", fi, err)
	}
	dup := xenft(t, nil, "auth", "add", "agent", "n3", "--dir", dir)
	if dup.code != 1 || !strings.Contains(dup.stderr, "agent/n3: already exists") {
		t.Fatalf("auth add twice: exit %d, %q", dup.code, dup.stderr)
	}

	// A server refuses a set issued for another prefix, naming the key.
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	body := "bus:\n  prefix: other\nserver:\n  port: -1\n  data_dir: " + t.TempDir() + "\n  auth:\n    identities: " + filepath.Join(dir, auth.IdentitiesFile) +
		"\n  tls:\n    cert: " + filepath.Join(dir, auth.ServerCertFile) + "\n    key: " + filepath.Join(dir, auth.ServerKeyFile) + "\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := xenft(t, nil, "server", "--config", cfg)
	if srv.code != 1 || !strings.Contains(srv.stderr, `server.auth.identities: `+filepath.Join(dir, auth.IdentitiesFile)+` was issued for prefix "xenft", but bus.prefix is "other"`) {
		t.Fatalf("server with a set of another prefix: exit %d, %q", srv.code, srv.stderr)
	}
}
