package restarter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
)

// Rule 0 of the self-fence (fence.go): a lease the bus never acknowledged
// is no evidence that the host is cut off. At a cluster's start JetStream
// may take seconds to create its buckets and elect their leaders; agents
// that counted their fence clock from their own start destroyed healthy
// guests then (make e2e, TestHostCrash: "fenced itself before any fault",
// the moment the servers logged "stream and buckets ready"). Here the hosts
// bucket does not exist for many fence windows: the agent keeps its guest,
// refuses restores as not ready, and arms once the bucket answers; armed,
// it still fences itself when the bus goes away.
func TestAnAgentWhoseLeaseWasNeverAcknowledgedDoesNotFenceItself(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hosts := e.sup.Names().Hosts()
	if err := e.sup.JetStream().DeleteKeyValue(ctx, hosts); err != nil {
		t.Fatal(err)
	}
	logs := &eventstest.LogBuffer{}
	a := e.agent("n1", agentOptions{fence: fastFence, logs: logs, unarmed: true})
	if err := a.hv.Create(ctx, e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	// 30 failed renewals, 100 ms apart: over four windows of 700 ms
	// (self_timeout 1 s − action_timeout 300 ms) without an acknowledgement.
	eventstest.Eventually(t, 20*time.Second, func() bool { return len(logs.Lines("failed_renewals=30")) > 0 },
		"the agent stopped renewing")
	if got := logs.Lines("SELF-FENCE"); len(got) != 0 {
		t.Fatalf("an agent whose lease was never acknowledged fenced itself:\n%s", strings.Join(got, ""))
	}
	if _, ok := a.domains()["vm1"]; !ok {
		t.Fatalf("vm1 is gone: %v", a.domains())
	}
	if a.r.FenceArmed() {
		t.Fatal("armed without an acknowledged renewal")
	}
	_, err := send[restarter.ColdStartReply](e, "n1", restarter.VerbColdStart,
		restarter.ColdStartRequest{VM: "vm2", ConfigPath: e.writeCfg("vm2", 64), Epoch: e.next()})
	if codeOf(err) != command.CodeNotReady || !strings.Contains(err.Error(), "not armed") {
		t.Fatalf("cold start on an unarmed host: %v, want not_ready (not armed)", err)
	}

	if err := e.sup.EnsureResources(ctx); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 10*time.Second, a.r.FenceArmed, "the fence did not arm once the bucket answered")
	e.srv.Stop()
	eventstest.Eventually(t, 10*time.Second, func() bool { _, gone := a.hv.destroyedAt("vm1"); return gone },
		"an armed agent cut off from the bus kept its guest")
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(logs.Lines("SELF-FENCE done")) > 0 }, "the fence never ended")
	got := logs.Lines("vm failed")
	if len(got) != 1 || !strings.Contains(got[0], "no lease renewal acknowledged for") {
		t.Fatalf("want vm1's reason to give the fence's numbers; logged:\n%s", strings.Join(got, ""))
	}
}
