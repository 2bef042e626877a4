package supervisor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/supervisor/core"
)

// A fatal fault forged by identities that may not fail a host (an agent
// reporting another host, a site plug-in not listed in trusted_sources, an
// anonymous client whose envelope claims a trusted detector as its source)
// fences nothing and restarts nothing; each is counted, logged and told to
// monitors as supervisor.input_rejected, naming the publisher the subject
// proves and the source the envelope claims. The same fault from a listed
// site is then acted on: the rejections were about who said it.
func TestForgedFatalFaultFromAnUntrustedIdentityFencesNothingAndIsReported(t *testing.T) {
	c := newFaultClusterTrusting(t, []string{"detector/det-test", "site/ipmi"})
	fault := &events.NodeFault{Host: "n2", Severity: events.SeverityFatal, Reason: "IPMI SEL: uncorrectable ECC error", Detector: "ipmi"}
	forgers := []struct {
		pub    events.Publisher
		source string
		reason string
	}{
		{events.Publisher{Role: events.RoleAgent, Name: "n3"}, "xenft/agent/n3", "role agent may not tell node.fault"},
		{events.Publisher{Role: events.RoleSite, Name: "rogue"}, "site/rogue", "site/rogue is not in supervisor.trusted_sources"},
		{events.Publisher{}, "xenft/detector/det-test", "anonymous publisher"},
	}
	for _, f := range forgers {
		c.publishAs(t, f.pub, f.source, fault)
	}
	for _, f := range forgers {
		i := c.waitEvent(t, 20*time.Second, func(e events.Event) bool {
			d, err := events.DataAs[events.SupervisorInputRejected](e)
			return err == nil && d.Publisher == f.pub.String()
		})
		d, _ := events.DataAs[events.SupervisorInputRejected](c.event(i))
		if d.Host != "n2" || d.RejectedType != "node.fault" || d.ClaimedSource != f.source || !strings.Contains(d.Reason, f.reason) {
			t.Errorf("input_rejected %+v; want n2's node.fault from %s claiming %s, because %q", d, f.pub, f.source, f.reason)
		}
	}
	if n := c.ignored()[events.IgnoredUntrustedSource]; n < uint64(len(forgers)) {
		t.Errorf("untrusted_source counted %d times, want at least %d", n, len(forgers))
	}
	// Nothing acted: n2 is healthy, with no fault, and nothing moved.
	if h := c.host(t); h.State != core.HostHealthy || h.Fault != "" {
		t.Fatalf("n2 after forged faults: %s with fault %q, want healthy", h.State, h.Fault)
	}
	if j := c.find(func(e events.Event) bool {
		return e.Type == events.TypeNodeFenced || e.Type == events.TypeVMRestarting || e.Type == events.TypeSupervisorFenceFailed
	}); j >= 0 {
		t.Fatalf("a forged fault was acted on: %s %s", c.event(j).Type, c.event(j).Data)
	}
	if !c.runs("n2", "mpi-1") {
		t.Fatal("mpi-1 no longer runs on n2")
	}

	// The trusted site's report is acted on.
	c.publishAs(t, events.Publisher{Role: events.RoleSite, Name: "ipmi"}, "site/ipmi", fault)
	c.waitEvent(t, 30*time.Second, func(e events.Event) bool { return e.Type == events.TypeGroupRolledBack })
	fenced := c.find(func(e events.Event) bool { return e.Type == events.TypeNodeFenced && e.EntityID() == "n2" })
	if fenced < 0 {
		t.Fatalf("the trusted site's fatal fault did not fence n2:\n%s", c.dump())
	}
	c.checkOneCopy(t, "mpi-0", "mpi-1")
}

// A flood of forgeries costs the stream one notice per publisher and type
// per interval, while the counter counts every one.
func TestForgeryFloodIsCountedInFullAndToldOnce(t *testing.T) {
	c := newFaultClusterTrusting(t, []string{"detector/det-test"})
	rogue := events.Publisher{Role: events.RoleSite, Name: "rogue"}
	const n = 20
	for i := range n {
		c.publishAs(t, rogue, "site/rogue", &events.NodeFault{Host: "n2", Severity: events.SeverityFatal, Reason: fmt.Sprintf("forgery %d", i), Detector: "rogue"})
	}
	var counted uint64
	eventstest.Eventually(t, 20*time.Second, func() bool { counted = c.ignored()[events.IgnoredUntrustedSource]; return counted >= n },
		"untrusted_source counted %d of %d", &counted, n)
	notices := 0
	c.mu.Lock()
	for _, e := range c.events {
		if e.Type == events.TypeSupervisorInputRejected {
			notices++
		}
	}
	c.mu.Unlock()
	if notices != 1 {
		t.Errorf("%d input_rejected notices for %d forgeries within the interval, want 1", notices, n)
	}
}
