package restarter_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
)

// fastFence self-fences 700 ms after the last renewal and has destroyed
// everything by 1 s.
var fastFence = restarter.FenceConfig{RenewInterval: 100 * time.Millisecond, SelfTimeout: time.Second,
	ActionTimeout: 300 * time.Millisecond, Action: restarter.FenceDestroy}

func (a *agent) waitRenewed() {
	a.t.Helper()
	eventstest.Eventually(a.t, 5*time.Second, func() bool { return !a.r.FenceStatus().LastRenewal.IsZero() }, "%s never renewed its lease", a.host)
}

// DESIGN.md "Safety first": an agent that cannot renew its lease on the bus
// for fence.self_timeout destroys its own domains — strictly within
// self_timeout of its last successful renewal, which is what the
// supervisor's deadline (last beat + self_timeout + margin) relies on.
func TestSelfFenceDestroysEveryDomainWithinSelfTimeoutOfTheLastRenewal(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			f := fastFence
			if d.name == "xl" { // each xl call is a process; the fake xl serialises them
				f.SelfTimeout, f.ActionTimeout = 2*time.Second, time.Second
			}
			e := newEnv(t)
			cp := e.makeCheckpoint(d, "vm4", "g", 1, 20)
			a := e.agent("n1", agentOptions{driver: d, fence: f})
			for _, vm := range []string{"vm1", "vm2", "vm3"} {
				if err := a.hv.Create(context.Background(), e.writeCfg(vm, 64)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := send[restarter.RestoreReply](e, "n1", restarter.VerbRestore, cp.request(e.next())); err != nil {
				t.Fatal(err)
			}
			a.waitRenewed()

			e.srv.Stop() // the host loses the bus
			vms := []string{"vm1", "vm2", "vm3", "vm4"}
			// The domain leaves xl's list before the destroy call returns and
			// is recorded, so wait for both (CI saw the list empty while the
			// last destroy was still returning).
			eventstest.Eventually(t, 10*time.Second, func() bool {
				for _, vm := range vms {
					if _, ok := a.hv.destroyedAt(vm); !ok {
						return false
					}
				}
				return len(a.domains()) == 0
			}, "domains survive the self-fence: %v", a.domains())
			last := a.r.LastRenewal()
			for _, vm := range vms {
				at, _ := a.hv.destroyedAt(vm)
				if after := at.Sub(last); after >= f.SelfTimeout || after < f.SelfTimeout-f.ActionTimeout {
					t.Errorf("%s destroyed %s after the last renewal, want within [%s, %s)", vm, after,
						f.SelfTimeout-f.ActionTimeout, f.SelfTimeout)
				}
			}
			if st := a.r.FenceStatus(); !st.Fenced || st.Generation != 1 {
				t.Fatalf("fence status %+v", st)
			}
		})
	}
}

// After a self-fence the host resurrects nothing: it destroys whatever
// appears and refuses restores, cold starts and unpauses until its lease is
// renewed AND the supervisor reconciled it with a vm.list carrying a
// leader's epoch. What the fence killed is then reported as vm.failed.
func TestAfterASelfFenceNothingIsRestoredUntilTheSupervisorReconciles(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm2", "g", 1, 20)
	// A window of 2.7 s, not fastFence's 0.7 s: at a load average of 15 the
	// agent fenced a second time after the bus came back (renewals took
	// over 0.7 s), and the restore after reconciliation met generation 2.
	fence := fastFence
	fence.SelfTimeout = 3 * time.Second
	a := e.agent("n1", agentOptions{fence: fence})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitWatchRounds(2)
	a.waitRenewed()

	e.srv.Stop()
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.FenceStatus().Fenced && len(a.domains()) == 0 }, "no self-fence")
	// Something started on the fenced host behind the agent's back is
	// destroyed too.
	if err := a.hv.Create(context.Background(), e.writeCfg("stray", 64)); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { _, ok := a.domains()["stray"]; return !ok }, "a domain survives on a fenced host")

	e.srv.Start() // the bus comes back
	eventstest.Eventually(t, 15*time.Second, func() bool { return a.r.FenceStatus().RenewedSinceFence }, "lease not renewed after the outage")
	eventstest.Eventually(t, 10*time.Second, func() bool {
		return e.sup.Command(context.Background(), "n1", restarter.VerbList, restarter.ListRequest{}, nil, 500*time.Millisecond) == nil
	}, "agent does not answer after the outage")

	_, err := send[restarter.RestoreReply](e, "n1", restarter.VerbRestore, cp.request(e.next()))
	// Refused until reconciled, but only for now, and as not_ready: the
	// supervisor retries without counting an attempt of the VM's or the
	// host out (every host may be fenced at once).
	if codeOf(err) != command.CodeNotReady || !strings.Contains(err.Error(), "self-fenced") {
		t.Fatalf("restore on a fenced, unreconciled host: %v, want a not_ready refusal", err)
	}
	_, err = send[restarter.ColdStartReply](e, "n1", restarter.VerbColdStart, restarter.ColdStartRequest{VM: "vm3", ConfigPath: e.writeCfg("vm3", 64), Epoch: e.next()})
	if codeOf(err) != command.CodeNotReady {
		t.Fatalf("cold start on a fenced host: %v, want not_ready", err)
	}
	_, err = send[restarter.UnpauseReply](e, "n1", restarter.VerbUnpause, restarter.UnpauseRequest{VM: "vm1", Epoch: e.next()})
	if codeOf(err) != command.CodeNotReady {
		t.Fatalf("unpause on a fenced host: %v, want not_ready", err)
	}
	if lease := e.lease("n1"); !lease.AwaitingReconcile || lease.FenceGeneration != 1 || lease.SelfTimeoutMs != 3000 {
		t.Fatalf("lease while awaiting reconciliation: %+v", lease)
	}
	// An operator's look (no epoch) is not a reconciliation; nor is
	// vm.peek, the look an operator's credential may send, even carrying
	// a leader's epoch.
	look, err := send[restarter.ListReply](e, "n1", restarter.VerbList, restarter.ListRequest{})
	if err != nil || !look.Fence.Fenced {
		t.Fatalf("list without epoch: %+v, %v", look.Fence, err)
	}
	look, err = send[restarter.ListReply](e, "n1", restarter.VerbPeek, restarter.ListRequest{Epoch: e.next()})
	if err != nil || !look.Fence.Fenced || len(look.Domains) != 0 {
		t.Fatalf("vm.peek carrying an epoch: %+v, %v; want the fenced host's empty listing, still fenced", look, err)
	}
	rec, err := send[restarter.ListReply](e, "n1", restarter.VerbList, restarter.ListRequest{Epoch: e.next()})
	if err != nil || rec.Fence.Fenced || len(rec.Domains) != 0 {
		t.Fatalf("reconciling list: %+v, %v", rec, err)
	}
	if _, err := send[restarter.RestoreReply](e, "n1", restarter.VerbRestore, cp.request(e.next())); err != nil {
		t.Fatalf("restore after reconciliation: %v", err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return !e.lease("n1").AwaitingReconcile }, "lease still awaiting reconciliation")

	got := e.vmFailed("vm1")
	if len(got) != 1 || !strings.Contains(got[0].Reason, "self-fenced") {
		t.Fatalf("vm.failed for vm1 after the fence: %+v, want one saying self-fenced", got)
	}
}

// A restore in flight when the fence comes is cancelled, and leaves no
// domain behind: nothing appears on a host after it fenced.
func TestSelfFenceCancelsARestoreInFlight(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm1", "g", 1, 20)
	a := e.agent("n1", agentOptions{fence: fastFence})
	a.waitRenewed()
	a.hv.mu.Lock()
	a.hv.holdRestores, a.hv.entered, a.hv.restoreCtx = true, make(chan struct{}, 1), make(chan error, 1)
	a.hv.mu.Unlock()
	done := make(chan error, 1)
	req := cp.request(e.next())
	go func() {
		done <- e.sup.Command(context.Background(), "n1", restarter.VerbRestore, req, nil, 3*time.Second)
	}()
	<-a.hv.entered
	e.srv.Stop()
	select {
	case err := <-a.hv.restoreCtx:
		if err != context.Canceled {
			t.Fatalf("held restore ended with %v, want cancelled by the fence", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fence did not cancel the restore in flight")
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.FenceStatus().Fenced }, "no self-fence")
	if doms := a.domains(); len(doms) != 0 {
		t.Fatalf("domains on a fenced host: %v", doms)
	}
	<-done // the requester hears nothing: its bus is down too
}

// A destroy does not wait behind an older restore of the same VM: it
// cancels it, and the VM ends with no copy here.
func TestDestroyCancelsAnOlderRestoreOfTheSameVM(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm1", "g", 1, 20)
	a := e.agent("n1", agentOptions{})
	a.hv.mu.Lock()
	a.hv.holdRestores, a.hv.entered, a.hv.restoreCtx = true, make(chan struct{}, 1), make(chan error, 1)
	a.hv.mu.Unlock()
	done := make(chan error, 1)
	req := cp.request(e.next())
	go func() {
		done <- e.sup.Command(context.Background(), "n1", restarter.VerbRestore, req, nil, 10*time.Second)
	}()
	<-a.hv.entered
	if _, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: e.next()}); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := <-a.hv.restoreCtx; err != context.Canceled {
		t.Fatalf("restore ended with %v, want cancelled by the destroy", err)
	}
	if err := <-done; codeOf(err) != command.CodeRetryable {
		t.Fatalf("cancelled restore answered %v, want retryable", err)
	}
	if doms := a.domains(); len(doms) != 0 {
		t.Fatalf("domains after destroy: %v", doms)
	}
}

// With fence.action pause the domains are paused, not destroyed, and the
// agent never unpauses one the fence paused.
func TestPauseFenceNeverUnpausesWhatItPaused(t *testing.T) {
	e := newEnv(t)
	f := fastFence
	f.Action = restarter.FencePause
	a := e.agent("n1", agentOptions{fence: f})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitRenewed()
	e.srv.Stop()
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.domains()["vm1"].State == "paused" }, "vm1 not paused by the fence")
	e.srv.Start()
	eventstest.Eventually(t, 15*time.Second, func() bool { return a.r.FenceStatus().RenewedSinceFence }, "lease not renewed after the outage")
	eventstest.Eventually(t, 10*time.Second, func() bool {
		_, err := send[restarter.ListReply](e, "n1", restarter.VerbList, restarter.ListRequest{Epoch: e.next()})
		return err == nil
	}, "no reconciliation")
	_, err := send[restarter.UnpauseReply](e, "n1", restarter.VerbUnpause, restarter.UnpauseRequest{VM: "vm1", Epoch: e.next()})
	if codeOf(err) != command.CodePermanent {
		t.Fatalf("unpause of a domain the fence paused: %v, want permanent", err)
	}
	if _, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: e.next()}); err != nil {
		t.Fatalf("destroy of a fence-paused domain: %v", err)
	}
}

// lease reads host's lease record from the xenft_hosts bucket.
func (e *env) lease(host string) restarter.HostLease {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := e.sup.KV(ctx, e.sup.Names().Hosts())
	if err != nil {
		e.t.Fatal(err)
	}
	ent, err := kv.Get(ctx, host)
	if err != nil {
		e.t.Fatalf("lease of %s: %v", host, err)
	}
	var l restarter.HostLease
	if err := json.Unmarshal(ent.Value(), &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

// A self-fence destroys a domain xl lists without a name (one being built
// by a restore, or torn down) by its domain id, since it has no name to
// destroy it by, and reports no vm.failed for it: it is no VM.
func TestSelfFenceDestroysAnUnnamedDomainByItsID(t *testing.T) {
	e := newEnv(t)
	logs := &eventstest.LogBuffer{}
	a := e.agent("n1", agentOptions{fence: fastFence, logs: logs})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.hv.plantUnnamed(42)
	a.waitRenewed()
	e.srv.Stop()
	eventstest.Eventually(t, 10*time.Second, func() bool {
		_, unnamed := a.hv.destroyedAt("42")
		_, vm1 := a.hv.destroyedAt("vm1")
		return unnamed && vm1
	}, "the fence left domains: %v", a.domains())
	// The report is queued just after the destroy returns: wait for the
	// fence to end (the test once read the log between the two).
	eventstest.Eventually(t, 10*time.Second, func() bool { return len(logs.Lines("SELF-FENCE done")) > 0 }, "the fence never ended")
	if got := logs.Lines("vm failed"); len(got) != 1 || !strings.Contains(got[0], "vm=vm1") {
		t.Fatalf("want one vm failed, the fence's of vm1; logged:\n%s", strings.Join(got, ""))
	}
	if got := logs.Lines("dropping"); len(got) != 0 {
		t.Fatalf("dropped reports:\n%s", strings.Join(got, ""))
	}
}
