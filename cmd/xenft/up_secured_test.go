package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenft/xenft/events/auth"
)

// xenft up is secured by default: its operator configuration reaches the
// bus, a client without credentials is refused with a one-line error
// naming what to set; --insecure is the open bus of before.
func TestUpIsSecuredByDefault(t *testing.T) {
	up := startUp(t)
	if !up.Secured || up.OperatorConfig == "" || !strings.Contains(up.NATSCLI, "--nkey "+filepath.Join(up.AuthDir, "monitor-mon.nk")) ||
		!strings.Contains(up.NATSCLI, "--tlsca "+filepath.Join(up.AuthDir, auth.CAFile)) || !strings.HasSuffix(up.NATSCLI, "sub 'xenft.events.>'") {
		t.Fatalf("xenft up started %+v", up)
	}
	tail := xenft(t, nil, "events", "tail", "--config", up.OperatorConfig, "--count", "1", "--since", "1m", "--json")
	if tail.code != 0 || !strings.Contains(tail.stdout, `"specversion":"1.0"`) {
		t.Fatalf("events tail as operator/admin: exit %d, %q, %q", tail.code, tail.stdout, tail.stderr)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "set bus.tls.ca"},
		{[]string{"XENFT_BUS_TLS_CA=" + filepath.Join(up.AuthDir, auth.CAFile)}, "the server requires a credential: bus.auth.nkey_seed_file and bus.identity"},
	} {
		r := xenft(t, tc.env, "events", "tail", "--nats", up.NATSURL, "--count", "1")
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("events tail without credentials (%v): exit %d, %q; want exit 1 and one line saying %q", tc.env, r.code, r.stderr, tc.want)
		}
	}

	open := startUp(t, "--insecure")
	if open.Secured {
		t.Fatalf("xenft up --insecure started %+v", open)
	}
	if r := xenft(t, nil, "events", "tail", "--nats", open.NATSURL, "--count", "1", "--since", "1m"); r.code != 0 {
		t.Fatalf("events tail on xenft up --insecure: exit %d, %q", r.code, r.stderr)
	}
}
