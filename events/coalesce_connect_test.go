package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// The whole client over a coalescing connection: messages, request/reply
// and JetStream acks all go through, in order.
func TestConnectWithCoalescedReads(t *testing.T) {
	s := eventstest.Server(t)
	log := hclog.NewNullLogger()
	bc := events.DefaultBusConfig()
	bc.URLs = []string{s.ClientURL()}
	rx, err := events.Connect(bc, log, events.CoalesceReads(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := events.Connect(bc, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rx.EnsureResources(ctx); err != nil {
		t.Fatalf("JetStream through a coalescing connection: %v", err)
	}

	sub, err := rx.Conn().SubscribeSync("t.>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rx.Conn().Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := rx.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := range n {
		if err := tx.Conn().Publish(fmt.Sprintf("t.%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order", i, m.Data)
		}
	}
	rep, err := tx.Conn().Request("echo", []byte("ping"), 5*time.Second)
	if err != nil || string(rep.Data) != "ping" {
		t.Fatalf("request through a coalescing responder: %v, %v", rep, err)
	}
}

// An embedder's NATS options apply after xenft's own.
func TestConnectAppliesTheEmbeddersNATSOptions(t *testing.T) {
	s := eventstest.Server(t)
	bc := events.DefaultBusConfig()
	bc.URLs, bc.ClientName = []string{s.ClientURL()}, "xenft-default"
	b, err := events.Connect(bc, hclog.NewNullLogger(), events.NATSOptions(nats.Name("embedder")))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Conn().Opts.Name; got != "embedder" {
		t.Fatalf("client name %q, want the embedder's", got)
	}
}
