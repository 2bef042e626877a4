package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/agent"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

// docs/architecture.md "An agent never obeys an older term again": the
// newest leader term an agent obeyed is on its own disk, so an agent that
// restarts still refuses an older leader's command even if nothing on the
// bus remembers the newer term, and it tells the sender which term it
// obeyed (and its host lease says so too).
func TestAnAgentRefusesAnOlderTermAfterItRestarts(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	run := func() (stop func()) {
		ag, err := agent.New(testConfig(t, stateDir), &xen.Sim{Host: "n1"}, bus, st, eventstest.Logger(t, hclog.Warn))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ag.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	list := func(term uint64) error {
		var err error
		eventstest.Eventually(t, 10*time.Second, func() bool {
			err = bus.Command(context.Background(), "n1", protocol.VerbList, protocol.ListRequest{Epoch: events.Epoch{Term: term, Seq: 1}}, &protocol.ListReply{}, 2*time.Second)
			var ce *command.Error
			return err == nil || errors.As(err, &ce) && ce.Code != command.CodeRetryable // answered by the agent
		}, "the agent does not answer vm.list: %v", err)
		return err
	}

	stop := run()
	if err := list(7); err != nil {
		t.Fatalf("vm.list under term 7: %v", err)
	}
	stop()
	if b, err := os.ReadFile(filepath.Join(stateDir, "obeyed-term")); err != nil || strings.TrimSpace(string(b)) != "7" {
		t.Fatalf("obeyed-term holds %q (%v), want 7", b, err)
	}

	stop = run()
	defer stop()
	err = list(5)
	var ce *command.Error
	if !errors.As(err, &ce) || ce.Code != command.CodeStaleEpoch || ce.ObeyedTerm != 7 {
		t.Fatalf("term 5 after a restart that obeyed term 7: %v, want stale_epoch with obeyed_term 7", err)
	}
	hosts, err := bus.KV(context.Background(), bus.Names().Hosts())
	if err != nil {
		t.Fatal(err)
	}
	var lease protocol.HostLease
	eventstest.Eventually(t, 10*time.Second, func() bool {
		e, err := hosts.Get(context.Background(), "n1")
		return err == nil && jsonInto(e.Value(), &lease) && lease.ObeyedTerm == 7
	}, "the host lease does not report obeyed term 7: %+v", lease)
}

// A state file that does not hold a term stops the agent with a line that
// says which file and what to do, rather than starting from term 0 (which
// would obey any old leader).
func TestAnAgentWithAnUnreadableTermFileDoesNotStart(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	stateDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(stateDir, "obeyed-term"), []byte("7\x00garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := agent.New(testConfig(t, stateDir), &xen.Sim{Host: "n1"}, bus, nil, eventstest.Logger(t, hclog.Warn))
	if err == nil || !strings.Contains(err.Error(), "obeyed-term: not a leader term") {
		t.Fatalf("agent.New with a garbled term file: %v", err)
	}
}
