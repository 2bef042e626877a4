package detector

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// The prober's bookkeeping on a real connection: a reply counts only while
// its probe is in flight and names the host asked; probes beyond the bound
// are skipped, and the bound frees up as probes time out.
func TestProberMatchesRepliesToProbesInFlight(t *testing.T) {
	s := eventstest.Server(t)
	b, err := events.Connect(eventstest.BusConfig(s), eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	var c counters
	cfg := DefaultConfig()
	cfg.ProbeMaxOutstanding = 2
	p := newProber(b.Conn(), b.Subjects().Probe, cfg, &c)
	now := t0

	p.send(now, []Probe{{Host: "n1"}, {Host: "n2"}, {Host: "n3"}})
	if got := c.probesSent.Load(); got != 2 || c.probesSkipped.Load() != 1 {
		t.Fatalf("sent %d, skipped %d: want 2 sent, 1 skipped (bound 2)", got, c.probesSkipped.Load())
	}
	reply := func(nonce string, r ProbeReply) *nats.Msg {
		data, _ := EncodeProbeReply(r)
		return &nats.Msg{Subject: p.inbox + nonce, Data: data}
	}
	// Probe 2 asked n2: n3 cannot answer for it.
	if _, _, ok, err := p.reply(reply("2", ProbeReply{Host: "n3", Incarnation: "a"}), now); ok || err == nil {
		t.Errorf("another host's answer accepted (ok %v, err %v)", ok, err)
	}
	// Probe 1 answered in time, once.
	if r, probedAt, ok, _ := p.reply(reply("1", ProbeReply{Host: "n1", Incarnation: "a", Seq: 4}), now.Add(10*time.Millisecond)); !ok || r.Seq != 4 || !probedAt.Equal(now) {
		t.Errorf("in-time answer refused: %+v, %v, probed at %s", r, ok, probedAt)
	}
	if _, _, ok, _ := p.reply(reply("1", ProbeReply{Host: "n1", Incarnation: "a", Seq: 4}), now.Add(20*time.Millisecond)); ok {
		t.Error("a duplicated answer accepted")
	}
	for _, nonce := range []string{"99", "x", ""} {
		if _, _, ok, _ := p.reply(reply(nonce, ProbeReply{Host: "n1", Incarnation: "a"}), now); ok {
			t.Errorf("answer to no probe (nonce %q) accepted", nonce)
		}
	}
	// The server's "no responders" is no answer, and not garbage.
	p.send(now, []Probe{{Host: "n4"}})
	nr := &nats.Msg{Subject: p.inbox + "3", Header: nats.Header{statusHeader: []string{noResponders}}}
	if _, _, ok, err := p.reply(nr, now); ok || err != nil || c.probeNoResponders.Load() != 1 {
		t.Errorf("no responders: ok %v, err %v, counted %d", ok, err, c.probeNoResponders.Load())
	}
	// Late: after probe_timeout the answer no longer counts; the probe is a
	// timeout, and its place in the bound is free again.
	p.send(now, []Probe{{Host: "n5"}})
	late := now.Add(cfg.ProbeTimeout + time.Millisecond)
	if _, _, ok, _ := p.reply(reply("4", ProbeReply{Host: "n5", Incarnation: "a"}), late); ok {
		t.Error("a late answer accepted")
	}
	p.send(late, []Probe{{Host: "n6"}, {Host: "n7"}})
	if len(p.pending) != 2 || c.probeTimeouts.Load() != 1 {
		t.Errorf("%d in flight, %d timeouts, want n6 and n7 in flight, n5 timed out", len(p.pending), c.probeTimeouts.Load())
	}
	p.send(late.Add(time.Second), nil)
	if len(p.pending) != 0 || c.probeTimeouts.Load() != 3 || len(p.queue) != 0 {
		t.Errorf("%d in flight, %d timeouts, queue %d: want all timed out", len(p.pending), c.probeTimeouts.Load(), len(p.queue))
	}
	if c.probeGarbage.Load() != 1 || c.probeLate.Load() != 5 {
		t.Errorf("garbage %d, late %d: want 1 and 5", c.probeGarbage.Load(), c.probeLate.Load())
	}
}
