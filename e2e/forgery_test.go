//go:build e2e

package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// On the secured bus, only identities allowed to say a host failed can
// move its VMs. A client without a credential cannot connect; an agent's
// credential cannot publish a fault about another host (nor as a
// detector), a monitor's cannot publish at all: the servers refuse them. A
// site credential the supervisors do not trust may publish its node.fault,
// and it is reported (supervisor.input_rejected, naming the publisher its
// subject proves) and changes nothing. The trusted site's fatal fault then
// fences the host and rolls its group back.
func TestSecuredBusActsOnlyOnTrustedFaults(t *testing.T) {
	c := newCluster(t, options{})
	cuts := c.checkpointAll()
	urls := c.bus.Config().URLs
	log := eventstest.Logger(t, hclog.Warn)

	// No credential: no connection, and the error says why.
	anon := c.busConfig(urls, nil)
	anon.Auth.User, anon.Auth.Password = "", ""
	if b, err := events.Connect(anon, log); err == nil {
		b.Close()
		t.Fatal("a client without a credential connected to the secured bus")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("connecting without a credential: %v; want an authorization error", err)
	}

	fatal := &events.NodeFault{Host: "n2", Severity: events.SeverityFatal, Reason: "IPMI SEL: uncorrectable ECC error, DIMM A2", Detector: "ipmi"}
	from := c.story.mark()
	// Refused by the servers.
	for _, try := range []struct {
		cred, as events.Publisher
	}{
		{events.Publisher{Role: events.RoleAgent, Name: "n3"}, events.Publisher{Role: events.RoleAgent, Name: "n3"}},
		{events.Publisher{Role: events.RoleAgent, Name: "n3"}, events.Publisher{Role: events.RoleDetector, Name: "det-a"}},
		{monitor, monitor},
		{monitor, trustedSite},
	} {
		err := c.publishWith(try.cred, try.as, fatal)
		if !errors.Is(err, events.ErrPermissionDenied) {
			t.Errorf("%s publishing node.fault as %s: %v; want it refused by the servers", try.cred, try.as, err)
		}
	}
	// Taken by the servers, refused by the supervisor.
	if err := c.publishWith(untrustedSite, untrustedSite, fatal); err != nil {
		t.Fatalf("the untrusted site's own node.fault: %v", err)
	}
	c.story.waitFor(from, 30*time.Second, on(events.TypeSupervisorInputRejected, c.leader()).
		where("from site/rogue about n2", func(d eventData) bool { return d.Publisher == untrustedSite.String() && d.Host == "n2" }))
	c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	c.story.never(from, on(events.TypeNodeFenced, "n2"), on(events.TypeVMRestarting, ""), on(events.TypeSupervisorFenceFailed, ""))
	c.logf("forged and untrusted faults refused; n2 untouched")

	// The trusted site is acted on: n2's agent fences it, mpi rolls back.
	if err := c.publishWith(trustedSite, trustedSite, fatal); err != nil {
		t.Fatalf("the trusted site's node.fault: %v", err)
	}
	c.story.waitFor(from, recoveryTimeout,
		on(events.TypeNodeFenced, "n2").where("by its agent", func(d eventData) bool { return d.Method == events.FenceAgent }),
		on(events.TypeGroupRolledBack, "mpi").fromCheckpoint(cuts["mpi"].Seq))
	running := c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	if g := running["mpi-1"]; g.host == "n2" {
		t.Errorf("mpi-1 still runs on n2 after its fatal fault")
	}
}

// publishWith connects with cred's seed and publishes p as identity as.
func (c *cluster) publishWith(cred, as events.Publisher, p events.Payload) error {
	c.t.Helper()
	cfg := c.busConfig(c.bus.Config().URLs, &cred)
	b, err := events.Connect(cfg, eventstest.Logger(c.t, hclog.Warn), events.As(as.Role, as.Name))
	if err != nil {
		c.t.Fatalf("connect as %s: %v", cred, err)
	}
	defer b.Close()
	ev, err := events.New("site/"+as.Name, time.Now(), p)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.Publish(ctx, ev)
}
