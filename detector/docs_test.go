package detector_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
)

// The examples in docs/detectors.md are tested here, so they stay true.

// example returns the fenced code block that follows <!-- example: name -->.
func example(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "detectors.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "<!-- example: "+name+" -->")
	if i < 0 {
		t.Fatalf("docs/detectors.md has no example %q", name)
	}
	s = s[i:]
	start := strings.Index(s, "```")
	s = s[start:]
	s = s[strings.IndexByte(s, '\n')+1:]
	return s[:strings.Index(s, "```")]
}

func TestDocNatsPubExampleIsAValidEvent(t *testing.T) {
	cmd := example(t, "nats-pub")
	header := regexp.MustCompile(`-H 'Nats-Msg-Id:([^']+)'`).FindStringSubmatch(cmd)
	body := regexp.MustCompile(`'(\{.*\})'`).FindStringSubmatch(cmd)
	subject := regexp.MustCompile(`\n\s*(xenft\.events\.\S+)`).FindStringSubmatch(cmd)
	if header == nil || body == nil || subject == nil {
		t.Fatalf("cannot read the example:\n%s", cmd)
	}
	ev, err := events.Decode([]byte(body[1]))
	if err != nil {
		t.Fatalf("the documented event is invalid: %v", err)
	}
	if ev.Type != events.TypeNodeFault || ev.ID != header[1] {
		t.Errorf("type %s id %q, header id %q", ev.Type, ev.ID, header[1])
	}
	site := events.Publisher{Role: events.RoleSite, Name: strings.TrimPrefix(ev.Source, "site/")}
	if want := ev.NATSSubjectFrom(events.Subjects{}, site); subject[1] != want {
		t.Errorf("published on %s, the event belongs on %s", subject[1], want)
	}
	// Its acknowledgement comes to the only inboxes it may read.
	if !strings.Contains(cmd, "--inbox-prefix "+events.InboxPrefix(site)+" ") || !strings.Contains(cmd, "--nkey /etc/xenft/auth/"+auth.SeedFile(site.Role, site.Name)) {
		t.Errorf("the example does not connect as %s with its inbox prefix %s:\n%s", site, events.InboxPrefix(site), cmd)
	}
}

func TestDocPluginConfigLoadsThroughViper(t *testing.T) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(example(t, "plugin-config"))); err != nil {
		t.Fatal(err)
	}
	cfg := detector.DefaultConfig()
	if err := v.UnmarshalKey("detector", &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate("detector"); err != nil {
		t.Fatal(err)
	}
	want := detector.PluginConfig{Name: "ipmi-sel", Command: "/usr/local/libexec/xenft/ipmi-sel-check",
		Args: []string{"--hosts", "/etc/xenft/hosts"}, Interval: 30 * time.Second, Timeout: 10 * time.Second}
	if len(cfg.Plugins) != 1 || cfg.Plugins[0].Name != want.Name || cfg.Plugins[0].Command != want.Command ||
		strings.Join(cfg.Plugins[0].Args, " ") != strings.Join(want.Args, " ") ||
		cfg.Plugins[0].Interval != want.Interval || cfg.Plugins[0].Timeout != want.Timeout {
		t.Errorf("plugins %+v", cfg.Plugins)
	}
	if cfg.PhiFail != 8 {
		t.Errorf("defaults lost: phi_fail %g", cfg.PhiFail)
	}
}

// fakeNats stands in for nats-py: it records what the example publishes,
// and with which inbox prefix it connected.
const fakeNats = `
import json, os
_inbox = None
class _Ack:
    duplicate = False
    seq = 1
class _JS:
    async def publish(self, subject, payload, headers=None):
        with open(os.environ["XENFT_DOC_OUT"], "w") as f:
            json.dump({"subject": subject, "payload": payload.decode(), "headers": headers, "inbox_prefix": _inbox}, f)
        return _Ack()
class _NC:
    def jetstream(self):
        return _JS()
    async def close(self):
        pass
async def connect(url, **credentials):
    global _inbox
    _inbox = credentials.get("inbox_prefix")
    return _NC()
`

func TestDocPythonExamplePublishesAValidEvent(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "nats"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nats", "__init__.py"), []byte(fakeNats), 0o644); err != nil {
		t.Fatal(err)
	}
	// The example's credentials, as xenft auth init writes them (its TLS
	// context reads the CA).
	authDir := filepath.Join(dir, "auth")
	if _, err := auth.Init(authDir, auth.Spec{Identities: []events.Publisher{{Role: events.RoleSite, Name: "site-check"}}}); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(example(t, "python"), "/etc/xenft/auth", authDir)
	if n := strings.Count(strings.TrimSpace(script), "\n") + 1; n > 20 {
		t.Errorf("the Python example has %d lines; the issue asks for about 15", n)
	}
	out := filepath.Join(dir, "published.json")
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir, "XENFT_DOC_OUT="+out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var pub struct {
		Subject     string
		Payload     string
		Headers     map[string]string
		InboxPrefix string `json:"inbox_prefix"`
	}
	if err := json.Unmarshal(b, &pub); err != nil {
		t.Fatal(err)
	}
	ev, err := events.Decode([]byte(pub.Payload))
	if err != nil {
		t.Fatalf("the Python example publishes an invalid event: %v\n%s", err, pub.Payload)
	}
	site := events.Publisher{Role: events.RoleSite, Name: "site-check"}
	if pub.Subject != ev.NATSSubjectFrom(events.Subjects{}, site) || pub.Headers["Nats-Msg-Id"] != ev.ID {
		t.Errorf("published %+v for event %s", pub, ev.ID)
	}
	if pub.InboxPrefix != events.InboxPrefix(site) {
		t.Errorf("connected with inbox prefix %q; site/site-check reads only %s.>", pub.InboxPrefix, events.InboxPrefix(site))
	}
}
