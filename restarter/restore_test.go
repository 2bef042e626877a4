package restarter_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/xen"
)

// DESIGN.md "Reactive restart": the restarter fetches the image, verifies
// it, restores it paused; the VM continues from exactly the checkpoint —
// with the sim and with the production xl driver exec'ing the fake xl.
func TestRestoredVMContinuesFromExactlyTheCheckpointedProgress(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t)
			cp := e.makeCheckpoint(d, "vm1", "g", 3, 200)
			a := e.agent("n2", agentOptions{driver: d})

			rep, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(e.next()))
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if rep.State != string(xen.StatePaused) || rep.AlreadyRestored || rep.VM != "vm1" {
				t.Fatalf("reply %+v, want vm1 paused", rep)
			}
			dom, ok := a.domains()["vm1"]
			if !ok || dom.State != xen.StatePaused || dom.ID != rep.DomID {
				t.Fatalf("vm1 on n2: %+v (listed %t), reply domid %d", dom, ok, rep.DomID)
			}
			got, err := a.progress("vm1")
			if err != nil {
				t.Fatal(err)
			}
			if got != cp.progress {
				t.Fatalf("restored progress %d, checkpoint holds %d", got, cp.progress)
			}
			if files := a.spoolFiles(); len(files) != 0 {
				t.Fatalf("spool not emptied: %v", files)
			}
			if _, err := send[restarter.UnpauseReply](e, "n2", restarter.VerbUnpause, restarter.UnpauseRequest{VM: "vm1", Epoch: e.next()}); err != nil {
				t.Fatalf("unpause: %v", err)
			}
			eventstest.Eventually(t, 10*time.Second, func() bool {
				p, err := a.progress("vm1")
				return err == nil && p > cp.progress
			}, "vm1 does not run on from %d after unpause", cp.progress)
		})
	}
}

// The restore of an image is idempotent: a retry (new epoch, same
// checkpoint) after success finds the domain it restored and succeeds
// without a second copy.
func TestRestoreRetriedAfterSuccessReportsSuccessWithoutASecondCopy(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm1", "g", 1, 50)
	a := e.agent("n2", agentOptions{})
	first, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(e.next()))
	if err != nil {
		t.Fatal(err)
	}
	again, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(e.next()))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !again.AlreadyRestored || again.DomID != first.DomID {
		t.Fatalf("retry %+v after %+v, want already_restored with the same domid", again, first)
	}
	if n := len(a.domains()); n != 1 {
		t.Fatalf("%d domains after a retried restore, want 1", n)
	}
}

// "An image that fails verification falls back to the previous committed
// checkpoint": a corrupt image is refused as corrupt and nothing runs.
func TestCorruptImageIsRefusedAsCorruptAndNothingIsRestored(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm1", "g", 1, 50)
	a := e.agent("n2", agentOptions{})

	t.Run("store bytes changed", func(t *testing.T) {
		path := filepath.Join(e.storeDir, filepath.FromSlash(cp.info.Key))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{0}
		if _, err := f.ReadAt(b, cp.info.Size/2); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, cp.info.Size/2); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(e.next()))
		if codeOf(err) != command.CodeCorrupt {
			t.Fatalf("restore of a corrupted image: %v, want code corrupt", err)
		}
	})
	t.Run("catalog checksum differs", func(t *testing.T) {
		req := cp.request(e.next())
		req.SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
		_, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, req)
		if codeOf(err) != command.CodeCorrupt {
			t.Fatalf("restore with another checksum: %v, want code corrupt", err)
		}
	})
	t.Run("image missing", func(t *testing.T) {
		req := cp.request(e.next())
		req.ImageKey = "g/9/vm1.img"
		_, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, req)
		if codeOf(err) != command.CodeNotFound {
			t.Fatalf("restore of a missing image: %v, want code not_found", err)
		}
	})
	if doms := a.domains(); len(doms) != 0 {
		t.Fatalf("domains after refused restores: %v", doms)
	}
	if files := a.spoolFiles(); len(files) != 0 {
		t.Fatalf("spool not emptied: %v", files)
	}
}

// Never two live copies: a restore where a domain of that name exists is
// refused with a permanent error, and that domain is left alone.
func TestRestoreIsRefusedWhileADomainOfThatNameExists(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t)
			cp := e.makeCheckpoint(d, "vm1", "g", 1, 50)
			a := e.agent("n2", agentOptions{driver: d})
			if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
				t.Fatal(err)
			}
			before := a.domains()["vm1"]
			_, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(e.next()))
			if codeOf(err) != command.CodePermanent {
				t.Fatalf("restore over a running vm1: %v, want code permanent", err)
			}
			after, ok := a.domains()["vm1"]
			if !ok || after.ID != before.ID || !after.State.Alive() {
				t.Fatalf("vm1 was %+v, is %+v (listed %t)", before, after, ok)
			}
		})
	}
}

// Every operation carries an epoch; restarters refuse stale ones: an older
// term (the shared guard) and, per VM, an epoch older than the newest
// received.
func TestStaleEpochsAreRefused(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm1", "g", 1, 50)
	e.agent("n2", agentOptions{})
	if _, err := send[restarter.DestroyReply](e, "n2", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: events.Epoch{Term: 5, Seq: 10}}); err != nil {
		t.Fatal(err)
	}
	_, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(events.Epoch{Term: 4, Seq: 99}))
	if codeOf(err) != command.CodeStaleEpoch {
		t.Fatalf("restore of term 4 after term 5: %v, want stale_epoch", err)
	}
	_, err = send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(events.Epoch{Term: 5, Seq: 9}))
	if codeOf(err) != command.CodeStaleEpoch {
		t.Fatalf("restore of vm1 at 5.9 after its destroy at 5.10: %v, want stale_epoch", err)
	}
	if _, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(events.Epoch{Term: 5, Seq: 11})); err != nil {
		t.Fatalf("restore at 5.11: %v", err)
	}
}

// The agent has one epoch guard, shared by the checkpointer and the
// restarter: a checkpoint command of term 5 makes a restore of term 4 fail.
func TestEpochGuardIsSharedWithTheCheckpointer(t *testing.T) {
	e := newEnv(t)
	cp := e.makeCheckpoint(simDriver, "vm1", "g", 1, 50)
	a := e.agent("n2", agentOptions{checkpointer: true})
	// A capture of a domain that does not exist is admitted, then fails.
	err := e.sup.Command(context.Background(), "n2", checkpointer.VerbCapture,
		checkpointer.CaptureRequest{Group: "g", Seq: 2, VM: "absent", Epoch: events.Epoch{Term: 5, Seq: 1}}, nil, 10*time.Second)
	if codeOf(err) != command.CodeNotFound {
		t.Fatalf("capture of an absent domain: %v", err)
	}
	if a.guard.Term() != 5 {
		t.Fatalf("guard term %d after a checkpoint command of term 5", a.guard.Term())
	}
	_, err = send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, cp.request(events.Epoch{Term: 4, Seq: 1}))
	if codeOf(err) != command.CodeStaleEpoch {
		t.Fatalf("restore of term 4 after a checkpoint of term 5: %v, want stale_epoch", err)
	}
}

// Requests the agent cannot act on are refused as bad requests.
func TestMalformedRestoreIsABadRequest(t *testing.T) {
	e := newEnv(t)
	e.agent("n2", agentOptions{noRun: true})
	for name, req := range map[string]restarter.RestoreRequest{
		"no vm":       {Group: "g", Seq: 1, ImageKey: "g/1/a.img", Size: 1, SHA256: "0000000000000000000000000000000000000000000000000000000000000000", Epoch: e.next()},
		"no epoch":    {VM: "a", Group: "g", Seq: 1, ImageKey: "g/1/a.img", Size: 1, SHA256: "0000000000000000000000000000000000000000000000000000000000000000"},
		"bad key":     {VM: "a", Group: "g", Seq: 1, ImageKey: "../etc/passwd", Size: 1, SHA256: "0000000000000000000000000000000000000000000000000000000000000000", Epoch: e.next()},
		"bad sha256":  {VM: "a", Group: "g", Seq: 1, ImageKey: "g/1/a.img", Size: 1, SHA256: "xyz", Epoch: e.next()},
		"config name": {VM: "a", Group: "g", Seq: 1, ImageKey: "g/1/a.img", Size: 1, SHA256: "0000000000000000000000000000000000000000000000000000000000000000", ConfigPath: e.writeCfg("other", 64), Epoch: e.next()},
	} {
		_, err := send[restarter.RestoreReply](e, "n2", restarter.VerbRestore, req)
		if codeOf(err) != command.CodeBadRequest {
			t.Errorf("%s: %v, want bad_request", name, err)
		}
	}
}
