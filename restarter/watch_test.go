package restarter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/xen"
)

// "A VM that dies on a healthy host (the agent reports vm.failed: the
// domain vanished or crashed without a command from us)": a domain
// destroyed behind the agent's back is reported exactly once, under its
// deterministic id.
func TestDomainDestroyedBehindTheAgentsBackIsReportedOnce(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.agent("n1", agentOptions{driver: d})
			if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
				t.Fatal(err)
			}
			a.waitWatchRounds(2) // seen alive
			if err := a.hv.Destroy(context.Background(), "vm1"); err != nil {
				t.Fatal(err)
			}
			eventstest.Eventually(t, 10*time.Second, func() bool { return len(e.vmFailed("vm1")) > 0 }, "no vm.failed for vm1")
			a.waitWatchRounds(5)
			got := e.vmFailed("vm1")
			if len(got) != 1 {
				t.Fatalf("%d vm.failed for vm1, want exactly 1: %+v", len(got), got)
			}
			if got[0].Host != "n1" || !strings.Contains(got[0].Reason, "vanished") {
				t.Fatalf("vm.failed %+v", got[0])
			}
			if dom0 := e.vmFailed("Domain-0"); len(dom0) != 0 { // the fake xl lists it, as xl does
				t.Fatalf("Domain-0 reported: %+v", dom0)
			}
		})
	}
}

// A crashed domain (it stays listed) is reported once too.
func TestCrashedDomainIsReportedOnce(t *testing.T) {
	e := newEnv(t)
	a := e.agent("n1", agentOptions{})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(2)
	if err := a.hv.Hypervisor.(*xen.Sim).Crash(context.Background(), "vm1"); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(e.vmFailed("vm1")) > 0 }, "no vm.failed for vm1")
	a.waitWatchRounds(5)
	got := e.vmFailed("vm1")
	if len(got) != 1 || !strings.Contains(got[0].Reason, "crashed") {
		t.Fatalf("vm.failed for a crashed vm1: %+v, want one saying crashed", got)
	}
}

// A domain destroyed by a vm.destroy command, or replaced by our own
// restore, is not reported: only deaths without a command from us are.
func TestDomainDestroyedByCommandIsNotReported(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm2", "g", 1, 20)
	a := e.agent("n1", agentOptions{})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(2)
	if _, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: e.next()}); err != nil {
		t.Fatal(err)
	}
	// vm2: restored, seen, destroyed and restored again by commands.
	if _, err := send[restarter.RestoreReply](e, "n1", restarter.VerbRestore, cp.request(e.next())); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(2)
	if _, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm2", Epoch: e.next()}); err != nil {
		t.Fatal(err)
	}
	if _, err := send[restarter.RestoreReply](e, "n1", restarter.VerbRestore, cp.request(e.next())); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(5)
	if got := e.vmFailed("vm1"); len(got) != 0 {
		t.Fatalf("vm.failed for vm1 destroyed by command: %+v", got)
	}
	if got := e.vmFailed("vm2"); len(got) != 0 {
		t.Fatalf("vm.failed for vm2 destroyed and restored by command: %+v", got)
	}
}

// The id names one death of one domain, so a repeated publish is stored once.
func TestFailureIDIsDeterministic(t *testing.T) {
	if got := restarter.FailureID("n1", "abc", "vm1", 7); got != "vm.failed/n1/abc/vm1/7" {
		t.Fatalf("FailureID = %q", got)
	}
	long := strings.Repeat("h", 128)
	if id := restarter.FailureID(long, "abc", strings.Repeat("v", 128), 7); len(id) > 256 || id != restarter.FailureID(long, "abc", strings.Repeat("v", 128), 7) {
		t.Fatalf("long FailureID %q", id)
	}
}

// Real xl lists a domain it is still building (xl restore, xl create) or
// already tearing down (xl destroy) as "(null)", which the xl driver lists
// without a name (docs/evidence/xl-list-unnamed-domains.log). Such a domain
// is no VM: seen alive and then gone (it got its name, or finished dying),
// it is not reported. The named VM it was or becomes is watched as usual.
func TestUnnamedDomainIsNotReported(t *testing.T) {
	e := newEnv(t)
	logs := &eventstest.LogBuffer{}
	a := e.agent("n1", agentOptions{logs: logs})
	a.hv.plantUnnamed(42)
	a.waitWatchRounds(3) // listed alive, unnamed
	a.hv.removeUnnamed(42)
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(3)
	if err := a.hv.Destroy(context.Background(), "vm1"); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(e.vmFailed("vm1")) > 0 }, "no vm.failed for vm1")
	a.waitWatchRounds(3)
	if got := logs.Lines("vm failed"); len(got) != 1 || !strings.Contains(got[0], "vm=vm1") {
		t.Fatalf("want one vm failed, for vm1; logged:\n%s", strings.Join(got, ""))
	}
	if got := logs.Lines("dropping"); len(got) != 0 {
		t.Fatalf("dropped reports:\n%s", strings.Join(got, ""))
	}
}

// A capture holds its domain (Hold) while `xl save -p` suspends it; the hold
// leaves the domain alive. A crash right after the hold ends — before the
// watcher has listed the domain again — is still a crash and is reported
// (it once fell between the rounds: the change was "maybe ours" and the
// domain was forgotten).
func TestCrashRightAfterACaptureHoldIsReported(t *testing.T) {
	e := newEnv(t)
	a := e.agent("n1", agentOptions{})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(2) // seen alive
	release := a.r.Hold("vm1")
	a.waitWatchRounds(2) // rounds during the hold
	release()
	if err := a.hv.Destroy(context.Background(), "vm1"); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(e.vmFailed("vm1")) > 0 }, "no vm.failed for vm1 crashed after a capture")
	a.waitWatchRounds(3)
	if got := e.vmFailed("vm1"); len(got) != 1 || !strings.Contains(got[0].Reason, "vanished") {
		t.Fatalf("vm.failed for vm1: %+v, want exactly one, vanished", got)
	}
}

// A domain that dies during a capture's hold (a save killed with its guest)
// is reported once the hold ends, not forgotten.
func TestDomainThatDiesDuringACaptureHoldIsReportedAfterIt(t *testing.T) {
	e := newEnv(t)
	a := e.agent("n1", agentOptions{})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(2)
	release := a.r.Hold("vm1")
	if err := a.hv.Destroy(context.Background(), "vm1"); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(3) // gone while held: not judged yet
	if got := e.vmFailed("vm1"); len(got) != 0 {
		t.Fatalf("vm.failed during the hold: %+v", got)
	}
	release()
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(e.vmFailed("vm1")) > 0 }, "no vm.failed for vm1 gone during a capture")
	a.waitWatchRounds(3)
	if got := e.vmFailed("vm1"); len(got) != 1 {
		t.Fatalf("%d vm.failed for vm1, want exactly 1: %+v", len(got), got)
	}
}
