package detector_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events/eventstest"
)

// sharedInventory is a HostInventory over a listing shared with others, as
// the agent's: listed is signalled after every listing, its own rounds'
// included.
type sharedInventory struct {
	inventory
	listed chan struct{}
	calls  []time.Time // when Domains was called
}

func (s *sharedInventory) Listed() <-chan struct{} { return s.listed }

func (s *sharedInventory) Domains(ctx context.Context) ([]detector.DomainSummary, error) {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	s.mu.Unlock()
	doms, err := s.inventory.Domains(ctx)
	s.signal()
	return doms, err
}

func (s *sharedInventory) signal() {
	select {
	case s.listed <- struct{}{}:
	default:
	}
}

func (s *sharedInventory) rounds() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls...)
}

// A listing made for someone else (the VM watcher) reaches the beats at
// once, not at the beacon's next round; the signal of the beacon's own
// listing does not start another round.
func TestBeaconTakesSharedListingsAtOnce(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	var got beats
	got.subscribe(t, bus, "n1")

	inv := &sharedInventory{listed: make(chan struct{}, 1)}
	inv.domains, inv.free = []detector.DomainSummary{{Name: "vm1", State: "running", MemoryMiB: 64}}, 4096
	// A long interval: a round before it comes from a signal. A signal is
	// taken at most every half interval, hence the wait below.
	const interval = 6 * time.Second
	cfg := detector.BeaconConfig{Interval: 100 * time.Millisecond, InventoryInterval: interval, InventoryTimeout: time.Second}
	b, err := detector.NewBeacon(agentBus(t, s, "agent-n1"), "n1", inv, cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, "beacon", b)
	defer stop()

	eventstest.Eventually(t, 5*time.Second, func() bool {
		hb := got.last()
		return hb.Inventory != nil && len(hb.Inventory.Domains) == 1
	}, "no beat with the first inventory")
	first := inv.rounds()[0]
	n := len(got.snapshot())
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(got.snapshot()) >= n+10 }, "beats stopped")
	if r := inv.rounds(); len(r) != 1 {
		t.Fatalf("%d inventory rounds within %s of the first, want 1: its own listing's signal must not start another", len(r), time.Since(first))
	}

	eventstest.Eventually(t, interval, func() bool { return time.Since(first) > interval/2 }, "clock")
	inv.set(func(i *inventory) {
		i.domains = append(i.domains, detector.DomainSummary{Name: "vm2", State: "running", MemoryMiB: 64})
	})
	inv.signal()
	eventstest.Eventually(t, 10*time.Second, func() bool {
		hb := got.last()
		return hb.Inventory != nil && len(hb.Inventory.Domains) == 2
	}, "the shared listing never reached the beats")
	if r := inv.rounds(); len(r) != 2 || r[1].Sub(first) >= interval {
		t.Errorf("inventory rounds at %v after the first, want one more, before the %s interval", sinceFirst(r, first), interval)
	}
}

func sinceFirst(r []time.Time, first time.Time) []time.Duration {
	var out []time.Duration
	for _, t := range r {
		out = append(out, t.Sub(first))
	}
	return out
}
