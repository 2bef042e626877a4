package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor/core"
)

// An agent that obeys a newer leader answers this one's command stale_epoch:
// the answer is not fed to the core, and the supervisor counts and logs it
// (once per interval) rather than dropping it without a word.
func TestStaleEpochReplyIsCountedAndLogged(t *testing.T) {
	s := eventstest.Server(t)
	var logs eventstest.LogBuffer
	bus := eventstest.BusLogged(t, s, logs.Logger(t, hclog.Info))
	bus.Ignored().SetLogInterval(time.Hour)
	agent := eventstest.Bus(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var guard events.EpochGuard
	_ = guard.Admit(events.Epoch{Term: 7})
	go func() {
		served <- agent.ServeCommands(ctx, "n1", map[string]command.Handler{
			protocol.VerbDestroy: func(_ context.Context, req json.RawMessage) (any, error) {
				var r protocol.DestroyRequest
				if err := json.Unmarshal(req, &r); err != nil {
					return nil, err
				}
				return nil, guard.Admit(r.Epoch)
			},
		}, 4)
	}()
	defer func() {
		cancel()
		if err := <-served; !errors.Is(err, events.ErrStopped) {
			t.Errorf("ServeCommands: %v", err)
		}
	}()
	st, _ := store.NewDir(t.TempDir())
	cfg := DefaultConfig()
	cfg.ID = "s1"
	sup, err := New(ctx, bus, st, cfg, logs.Logger(t, hclog.Info))
	if err != nil {
		t.Fatal(err)
	}
	sh := newShell(sup, 3, sup.stateKV, func() {})
	destroy := core.DestroyVM{Host: "n1", VM: "a", Epoch: core.Epoch{Term: 3, Seq: 1}, Reason: "rollback"}
	eventstest.Eventually(t, 10*time.Second, func() bool {
		sh.disp.execute(ctx, destroy)
		return sup.Ignored()[events.IgnoredStaleEpoch] > 0
	}, "no stale_epoch counted: %v", sup.Ignored())
	// Before the agent listened, a try was answered "no responders" and
	// fed back as retryable; from now on every answer is stale.
	for len(sh.inputs) > 0 {
		<-sh.inputs
	}
	before := sup.Ignored()[events.IgnoredStaleEpoch]
	sh.disp.execute(ctx, destroy)
	if n := sup.Ignored()[events.IgnoredStaleEpoch]; n != before+1 {
		t.Fatalf("stale_epoch = %d after another stale reply, want %d", n, before+1)
	}
	if len(sh.inputs) != 0 {
		t.Fatalf("a stale reply was fed to the core: %d inputs queued", len(sh.inputs))
	}
	lines := logs.Lines("ignored input", "reason=stale_epoch", `input="command reply"`, "n1", "older than term 7")
	if len(lines) != 1 || len(logs.Lines("reason=stale_epoch")) != 1 {
		t.Fatalf("want one line for the stale replies, got %q", logs.Lines("reason=stale_epoch"))
	}
}
