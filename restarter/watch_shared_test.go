package restarter_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/xen/inventory"
)

var _ restarter.WatchLister = (*inventory.Lister)(nil)

// sharedListing is the agent's shared domain lister, with a neighbour that
// takes listings up to a second old as fast as it can (as the beacon would
// if it never slept): the cache is always there, and often stale.
type sharedListing struct {
	lister *inventory.Lister
}

func (s *sharedListing) start(t *testing.T, hv inventory.DomainLister) {
	t.Helper()
	l, err := inventory.NewLister(hv, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.lister = l
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, _ = l.List(ctx, time.Now().Add(-time.Second))
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond): // pacing, not synchronisation
			}
		}
	}()
	// Registered before the agent's cleanup, so it runs after the agent
	// has stopped.
	t.Cleanup(func() {
		cancel()
		<-done
		l.Close()
	})
}

// The watcher listing through the lister it shares with the beacon decides
// as it did with listings of its own: domains destroyed by our commands are
// never reported, even though the shared cache holds listings taken before
// those commands; one destroyed behind our back is reported once.
func TestWatcherThroughSharedListing(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t)
			shared := &sharedListing{}
			a := e.agent("n1", agentOptions{driver: d, shared: shared})
			ctx := context.Background()
			for _, vm := range []string{"vm1", "vm2"} {
				if err := a.hv.Create(ctx, e.writeCfg(vm, 64)); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				a.waitWatchRounds(2) // vm1 seen alive
				if _, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: e.next()}); err != nil {
					t.Fatalf("round %d: destroy: %v", i, err)
				}
				a.waitWatchRounds(3) // vm1 seen gone
				if err := a.hv.Create(ctx, e.writeCfg("vm1", 64)); err != nil {
					t.Fatal(err)
				}
			}
			a.waitWatchRounds(2)
			if err := a.hv.Destroy(ctx, "vm2"); err != nil {
				t.Fatal(err)
			}
			eventstest.Eventually(t, 10*time.Second, func() bool { return len(e.vmFailed("vm2")) > 0 }, "no vm.failed for vm2")
			a.waitWatchRounds(5)
			if got := e.vmFailed("vm2"); len(got) != 1 || !strings.Contains(got[0].Reason, "vanished") {
				t.Fatalf("vm.failed for vm2 destroyed behind our back: %+v, want one, vanished", got)
			}
			if got := e.vmFailed("vm1"); len(got) != 0 {
				t.Fatalf("vm.failed for vm1, destroyed by our commands only: %+v", got)
			}
			st := shared.lister.Stats()
			if st.Cached == 0 || st.Listings == 0 {
				t.Errorf("lister stats %+v: the watcher and its neighbour shared nothing", st)
			}
			t.Logf("lister: %+v", st)
		})
	}
}
