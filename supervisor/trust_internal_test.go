package supervisor

import (
	"strings"
	"testing"

	"github.com/xenft/xenft/events"
)

// Every event the core takes, from every role, with and without
// trusted_sources: the role table decides first, the list second, and an
// anonymous publisher only passes while no list is set.
func TestTrustPolicyAdmits(t *testing.T) {
	open, _ := newTrustPolicy(nil)
	listed, err := newTrustPolicy([]string{"detector/det-a", "site/*"})
	if err != nil {
		t.Fatal(err)
	}
	det := events.Publisher{Role: events.RoleDetector, Name: "det-a"}
	det2 := events.Publisher{Role: events.RoleDetector, Name: "det-b"}
	site := events.Publisher{Role: events.RoleSite, Name: "ipmi"}
	agentN1 := events.Publisher{Role: events.RoleAgent, Name: "n1"}
	sup := events.Publisher{Role: events.RoleSupervisor, Name: "s1"}
	op := events.Publisher{Role: events.RoleOperator, Name: "admin"}
	anon := events.Publisher{}
	for _, c := range []struct {
		policy trustPolicy
		typ    events.Type
		pub    events.Publisher
		host   string
		want   string // "" admitted, else part of the reason
	}{
		{open, events.TypeNodeFailed, det, "n1", ""},
		{open, events.TypeNodeFailed, det2, "n1", ""},
		{open, events.TypeNodeFailed, anon, "n1", ""},
		{open, events.TypeNodeFailed, site, "n1", "role site may not tell node.failed"},
		{open, events.TypeNodeFailed, agentN1, "n2", "role agent may not tell node.failed"},
		{open, events.TypeNodeSuspect, sup, "n1", "role supervisor may not tell node.suspect"},
		{open, events.TypeNodeRecovered, det, "n1", ""},
		{open, events.TypeNodeFault, site, "n1", ""},
		{open, events.TypeNodeFault, op, "n1", ""},
		{open, events.TypeNodeFault, agentN1, "n1", "role agent may not tell node.fault"},
		{open, events.TypeVMFailed, agentN1, "n1", ""},
		{open, events.TypeVMFailed, agentN1, "n2", "agent n1 may not tell a VM on host n2 failed"},
		{open, events.TypeVMFailed, det, "n1", "role detector may not tell vm.failed"},
		{open, events.TypeCheckpointCommitted, sup, "", ""},
		{open, events.TypeCheckpointCommitted, agentN1, "", "role agent may not tell checkpoint.committed"},
		{open, events.TypeCheckpointDeleted, op, "", "role operator may not tell checkpoint.deleted"},
		{listed, events.TypeNodeFailed, det, "n1", ""},
		{listed, events.TypeNodeFailed, det2, "n1", "detector/det-b is not in supervisor.trusted_sources"},
		{listed, events.TypeNodeFault, site, "n1", ""}, // site/*
		{listed, events.TypeNodeFault, op, "n1", "operator/admin is not in supervisor.trusted_sources"},
		{listed, events.TypeNodeFailed, anon, "n1", "anonymous publisher"},
		{listed, events.TypeCheckpointCommitted, anon, "", "anonymous publisher"},
		{listed, events.TypeVMFailed, agentN1, "n1", ""}, // the list is about failing hosts
		{listed, events.TypeCheckpointCommitted, sup, "", ""},
	} {
		got := c.policy.admit(c.typ, c.pub, c.host)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("listing=%v %s from %s about %q: %q, want %q", c.policy.listing(), c.typ.Short(), c.pub, c.host, got, c.want)
		}
	}
}

func TestTrustedSourcesNamesTheBadEntry(t *testing.T) {
	for in, want := range map[string]string{
		"ipmi":         `"ipmi" is not role/name`,
		"wizard/x":     `role "wizard" is not one of`,
		"detector/a b": "no '/' or spaces",
	} {
		c := DefaultConfig()
		c.TrustedSources = []string{"site/ok", in}
		err := c.Validate("supervisor")
		if err == nil || !strings.Contains(err.Error(), "supervisor.trusted_sources: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("trusted_sources %q: %v, want an error naming it (%s)", in, err, want)
		}
	}
}
