package auth_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
)

var update = flag.Bool("update", false, "rewrite testdata/permissions.txt")

// sample identities, one of each role, as the golden table shows them.
var sample = []events.Publisher{
	{Role: events.RoleSupervisor, Name: "sup-a"},
	{Role: events.RoleDetector, Name: "det-a"},
	{Role: events.RoleAgent, Name: "n1"},
	{Role: events.RoleSite, Name: "ipmi"},
	{Role: events.RoleMonitor, Name: "mon"},
	{Role: events.RoleOperator, Name: "admin"},
	{Role: events.RoleServer, Name: "s1"},
}

// The permission table of every role (docs/security.md) is
// testdata/permissions.txt: a change of any role's permissions shows in
// review as a change of that file (go test ./events/auth -update).
func TestThePermissionTableIsTheGoldenOne(t *testing.T) {
	var b strings.Builder
	for _, id := range sample {
		p, err := auth.Permissions("xenft", id)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "## %s\n", id)
		section := func(what string, subjects []string) {
			for _, s := range subjects {
				fmt.Fprintf(&b, "%-14s %s\n", what, s)
			}
		}
		section("publish", p.Publish.Allow)
		section("publish deny", p.Publish.Deny)
		section("subscribe", p.Subscribe.Allow)
		section("subscribe deny", p.Subscribe.Deny)
		if p.Response != nil {
			fmt.Fprintf(&b, "%-14s %d message to each request's reply subject, within %s\n", "respond", p.Response.MaxMsgs, p.Response.Expires)
		}
		b.WriteString("\n")
	}
	golden := filepath.Join("testdata", "permissions.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("the permissions differ from %s (go test ./events/auth -update, and review the diff):\n%s", golden, b.String())
	}
}

// Rules that hold for every role, whatever the table says.
func TestEveryRoleIsBoundToItsOwnIdentity(t *testing.T) {
	for _, id := range sample {
		p, err := auth.Permissions("xenft", id)
		if err != nil {
			t.Fatal(err)
		}
		// Its own inboxes only.
		if !slices.Equal(filter(p.Subscribe.Allow, "_INBOX"), []string{events.InboxPrefix(id) + ".>"}) {
			t.Errorf("%s subscribes to inboxes %v, want only its own", id, filter(p.Subscribe.Allow, "_INBOX"))
		}
		// Never the anonymous publisher's events.
		if !slices.Contains(p.Publish.Deny, "xenft.events.*.*.*.anonymous.>") {
			t.Errorf("%s is not denied the anonymous publisher's subjects: %v", id, p.Publish.Deny)
		}
		for _, s := range filter(p.Publish.Allow, "xenft.events.") {
			tok := strings.Split(s, ".")
			if len(tok) != 7 || tok[5] != id.Role || tok[6] != id.Name || strings.Contains(tok[2]+tok[3], "*") {
				t.Errorf("%s may publish events on %s: not one type under its own role and name", id, s)
			}
		}
		// Only supervisors command agents (an operator may peek), create
		// no stream but servers and supervisors.
		for _, s := range filter(p.Publish.Allow, "xenft.cmd.") {
			if id.Role != events.RoleSupervisor && s != "xenft.cmd.*.vm.peek" {
				t.Errorf("%s may send commands: %s", id, s)
			}
		}
		for _, s := range p.Publish.Allow {
			if (strings.Contains(s, "STREAM.CREATE") || strings.Contains(s, "STREAM.UPDATE")) && id.Role != events.RoleSupervisor && id.Role != events.RoleServer {
				t.Errorf("%s may create or change streams: %s", id, s)
			}
			if strings.Contains(s, "STREAM.DELETE") || strings.HasSuffix(s, "$JS.API.>") || s == ">" {
				t.Errorf("%s may %s", id, s)
			}
		}
	}
}

func filter(subjects []string, prefix string) []string {
	var out []string
	for _, s := range subjects {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// Dotted names (an FQDN host) are one escaped token in subjects, and the
// key itself in a bucket.
func TestAnFQDNHostIsBoundToItsEscapedSubjectsAndItsKey(t *testing.T) {
	p, err := auth.Permissions("xenft", events.Publisher{Role: events.RoleAgent, Name: "n1.lab"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"xenft.hb.n1%2Elab", "$KV.xenft_hosts.n1.lab", "xenft.events.vm.failed.*.agent.n1%2Elab", "xenft.supervisor.hostlease.n1%2Elab"} {
		if !slices.Contains(p.Publish.Allow, want) {
			t.Errorf("agent/n1.lab may not publish %s: %v", want, p.Publish.Allow)
		}
	}
	if !slices.Contains(p.Subscribe.Allow, "xenft.cmd.n1%2Elab.>") || !slices.Contains(p.Subscribe.Allow, "_INBOX.agent.n1%2Elab.>") {
		t.Errorf("agent/n1.lab subscribes to %v", p.Subscribe.Allow)
	}
}

func TestPermissionsRefuseWhatIsNoIdentity(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		id     events.Publisher
		want   string
	}{
		{"xenft", events.Publisher{Role: "admin", Name: "x"}, `role "admin"`},
		{"xenft", events.Publisher{Role: events.RoleAgent, Name: "n 1"}, `agent/n 1: the name`},
		{"xenft", events.Publisher{Role: events.RoleAgent, Name: ""}, "the name must be"},
		{"xenft", events.Publisher{Role: events.RoleAgent, Name: "*"}, "the name must be"},
		{"xenft", events.Publisher{Role: events.RoleAnonymous, Name: "x"}, `role "anonymous"`},
		{"xe.nft", events.Publisher{Role: events.RoleAgent, Name: "n1"}, `prefix "xe.nft"`},
	} {
		p, err := auth.Permissions(tc.prefix, tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) || p != nil {
			t.Errorf("Permissions(%q, %+v) = %v, %v; want an error saying %q", tc.prefix, tc.id, p, err, tc.want)
		}
	}
}

var _ = server.Permissions{}
