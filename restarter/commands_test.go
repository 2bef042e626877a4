package restarter_test

import (
	"context"
	"testing"

	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/xen"
)

// vm.destroy is idempotent: its goal is "no copy here", so destroying a
// missing domain, or the same one twice, succeeds.
func TestDestroyIsIdempotent(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.agent("n1", agentOptions{driver: d})
			if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
				t.Fatal(err)
			}
			first, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: e.next()})
			if err != nil || !first.Existed {
				t.Fatalf("first destroy: %+v, %v", first, err)
			}
			if _, ok := a.domains()["vm1"]; ok {
				t.Fatal("vm1 still listed after destroy")
			}
			again, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: e.next()})
			if err != nil || again.Existed {
				t.Fatalf("second destroy: %+v, %v", again, err)
			}
			never, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "never", Epoch: e.next()})
			if err != nil || never.Existed {
				t.Fatalf("destroy of a domain never there: %+v, %v", never, err)
			}
		})
	}
}

// vm.unpause of a domain that is not here is not_found (the supervisor
// rolls the group back).
func TestUnpauseOfAMissingDomainIsNotFound(t *testing.T) {
	e := newEnv(t)
	e.agent("n1", agentOptions{})
	_, err := send[restarter.UnpauseReply](e, "n1", restarter.VerbUnpause, restarter.UnpauseRequest{VM: "vm1", Epoch: e.next()})
	if codeOf(err) != command.CodeNotFound {
		t.Fatalf("unpause of a missing domain: %v, want not_found", err)
	}
}

// "A VM with no checkpoint is cold-started from its config": paused by
// default, idempotent on retry, and like a restore never over another
// domain of the name.
func TestColdStartCreatesThePausedVMOnceAndNeverOverAnother(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.agent("n1", agentOptions{driver: d})
			req := restarter.ColdStartRequest{VM: "vm1", ConfigPath: e.writeCfg("vm1", 64), Epoch: e.next()}
			rep, err := send[restarter.ColdStartReply](e, "n1", restarter.VerbColdStart, req)
			if err != nil || rep.State != string(xen.StatePaused) {
				t.Fatalf("cold start: %+v, %v", rep, err)
			}
			// Create has no paused form: the domain may run for the moment
			// between create and pause, then stands still.
			p1, err := a.progress("vm1")
			if err != nil {
				t.Fatal(err)
			}
			a.waitWatchRounds(3)
			if p2, err := a.progress("vm1"); err != nil || p2 != p1 {
				t.Fatalf("cold-started vm1 runs while paused: progress %d then %d, %v", p1, p2, err)
			}
			req.Epoch = e.next()
			again, err := send[restarter.ColdStartReply](e, "n1", restarter.VerbColdStart, req)
			if err != nil || !again.AlreadyStarted || again.DomID != rep.DomID {
				t.Fatalf("retried cold start: %+v, %v", again, err)
			}
			if err := a.hv.Create(context.Background(), e.writeCfg("vm2", 64)); err != nil {
				t.Fatal(err)
			}
			_, err = send[restarter.ColdStartReply](e, "n1", restarter.VerbColdStart,
				restarter.ColdStartRequest{VM: "vm2", ConfigPath: e.writeCfg("vm2", 64), Epoch: e.next()})
			if codeOf(err) != command.CodePermanent {
				t.Fatalf("cold start over a running vm2: %v, want permanent", err)
			}
			_, err = send[restarter.ColdStartReply](e, "n1", restarter.VerbColdStart,
				restarter.ColdStartRequest{VM: "vm3", ConfigPath: e.writeCfg("other", 64), Epoch: e.next()})
			if codeOf(err) != command.CodeBadRequest {
				t.Fatalf("cold start of vm3 from a config naming another domain: %v, want bad_request", err)
			}
		})
	}
}

// vm.list shows what runs here, never Domain-0, with the fence state; an
// operator's list (no epoch) needs no leadership.
func TestListShowsTheGuestDomainsAndTheFenceState(t *testing.T) {
	e := newEnv(t)
	a := e.agent("n1", agentOptions{driver: xlDriver})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	rep, err := send[restarter.ListReply](e, "n1", restarter.VerbList, restarter.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Host != "n1" || rep.Incarnation != "inc-n1" || len(rep.Domains) != 1 || rep.Domains[0].Name != "vm1" ||
		rep.Domains[0].State != string(xen.StateRunning) || rep.Domains[0].MemoryMiB != 64 || rep.Fence.Fenced {
		t.Fatalf("list: %+v", rep)
	}
}
