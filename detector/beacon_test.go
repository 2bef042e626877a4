package detector_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// beats collects the heartbeats of one host as a raw subscriber sees them.
type beats struct {
	mu  sync.Mutex
	got []detector.Heartbeat
}

func (b *beats) subscribe(t *testing.T, bus *events.Bus, host string) {
	t.Helper()
	sub, err := bus.Conn().Subscribe(bus.Subjects().Heartbeat(host), func(m *nats.Msg) {
		var hb detector.Heartbeat
		if err := json.Unmarshal(m.Data, &hb); err != nil {
			t.Errorf("beat is not JSON: %v", err)
			return
		}
		b.mu.Lock()
		b.got = append(b.got, hb)
		b.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := bus.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
}

func (b *beats) snapshot() []detector.Heartbeat {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]detector.Heartbeat(nil), b.got...)
}

func (b *beats) last() detector.Heartbeat {
	s := b.snapshot()
	if len(s) == 0 {
		return detector.Heartbeat{}
	}
	return s[len(s)-1]
}

// The beacon: host, incarnation, seq, send time, domains and free
// memory, every interval; a failing or hanging inventory never stops the
// beats, which keep the last good list marked with the error, and the failure
// is logged once, not per beat.
func TestBeaconBeatsWithInventory(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	var got beats
	got.subscribe(t, bus, "n1.example.org")

	inv := &inventory{domains: []detector.DomainSummary{{Name: "vm1", State: "running", MemoryMiB: 1024}}, free: 4096}
	var logs logBuffer
	b, err := detector.NewBeacon(agentBus(t, s, "agent-n1"), "n1.example.org", inv, fastBeacon(), logs.logger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, "beacon", b)

	eventstest.Eventually(t, 5*time.Second, func() bool {
		hb := got.last()
		return hb.Inventory != nil && len(hb.Inventory.Domains) == 1
	}, "no beat with the inventory")
	hb := got.last()
	if hb.V != detector.HeartbeatVersion || hb.Host != "n1.example.org" || hb.Incarnation != b.Incarnation() ||
		hb.IntervalMs != 100 || hb.Sent.IsZero() || hb.Inventory.FreeMemoryMiB != 4096 || hb.Inventory.Domains[0] != inv.domains[0] {
		t.Errorf("beat %+v", hb)
	}

	// The toolstack fails, then hangs: beats go on with the old list.
	inv.set(func(i *inventory) { i.err = errToolstack })
	eventstest.Eventually(t, 5*time.Second, func() bool {
		inv := got.last().Inventory
		return inv != nil && inv.Error != ""
	}, "no beat marked with the inventory error")
	inv.set(func(i *inventory) { i.err, i.hang = nil, true })
	n := len(got.snapshot())
	eventstest.Eventually(t, 5*time.Second, func() bool { return len(got.snapshot()) >= n+5 }, "beats stopped while the inventory hangs")
	if hb := got.last(); hb.Inventory == nil || len(hb.Inventory.Domains) != 1 || hb.Inventory.Error == "" {
		t.Errorf("beat during a hanging inventory: %+v", hb.Inventory)
	}
	inv.set(func(i *inventory) { i.hang = false })
	eventstest.Eventually(t, 5*time.Second, func() bool {
		inv := got.last().Inventory
		return inv != nil && inv.Error == ""
	}, "inventory did not come back")

	stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)

	if c := logs.count("host inventory failed"); c != 1 {
		t.Errorf("inventory failure logged %d times, want once per change of state", c)
	}
	if c := logs.count("host inventory works again"); c != 1 {
		t.Errorf("inventory recovery logged %d times, want 1", c)
	}
	// Sequence numbers count up from 1 without gaps.
	all := got.snapshot()
	for i, hb := range all {
		if hb.Seq != uint64(i+1) {
			t.Fatalf("beat %d has seq %d", i, hb.Seq)
		}
	}
	if st := b.Stats(); st.Sent < uint64(len(all)) || st.InventoryFailures == 0 {
		t.Errorf("stats %+v after %d beats", st, len(all))
	}
}

// Every start is a new incarnation.
func TestBeaconIncarnationIsNewEachStart(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	seen := map[string]bool{}
	for range 3 {
		b, err := detector.NewBeacon(bus, "n1", nil, detector.DefaultBeaconConfig(), hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		if seen[b.Incarnation()] || len(b.Incarnation()) != 16 {
			t.Errorf("incarnation %q repeated or malformed", b.Incarnation())
		}
		seen[b.Incarnation()] = true
	}
	if _, err := detector.NewBeacon(bus, "bad host", nil, detector.DefaultBeaconConfig(), hclog.NewNullLogger()); err == nil {
		t.Error("a host name with a space was accepted")
	}
}

// A beacon whose server goes away keeps trying, logs once that it cannot
// publish and once that it can again, and its beats resume on the new server.
func TestBeaconSurvivesServerRestart(t *testing.T) {
	srv := eventstest.NewRestartable(t)
	var logs logBuffer
	bus := agentBus(t, srv.Server(), "agent")
	b, err := detector.NewBeacon(bus, "n1", nil, fastBeacon(), logs.logger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, "beacon", b)
	eventstest.Eventually(t, 5*time.Second, func() bool { return b.Stats().Sent >= 3 }, "no beats")

	srv.Stop()
	eventstest.Eventually(t, 5*time.Second, func() bool { return b.Stats().Failed >= 5 }, "beats did not fail without a server")

	srv.Start() // the client reconnects to the URL it knows
	sent := b.Stats().Sent
	eventstest.Eventually(t, 15*time.Second, func() bool { return b.Stats().Sent >= sent+3 }, "beats did not resume after reconnect")
	stop()
	eventstest.NoGoroutines(t, 5*time.Second, ourGoroutines...)
	if c := logs.count("heartbeats cannot be published"); c != 1 {
		t.Errorf("failure logged %d times, want 1", c)
	}
	if c := logs.count("heartbeats published again"); c != 1 {
		t.Errorf("recovery logged %d times, want 1", c)
	}
}
