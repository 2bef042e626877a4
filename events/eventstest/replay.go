package eventstest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/events"
)

// Replay stores data in the event stream on subject (under
// <prefix>.events.) through nc and has a push consumer deliver it to
// deliverTo, as anyone who may create consumers can have the server do
// (events.FromConsumer, nats-server#8274); the server sets the delivery's
// reply to the consumer's acknowledgement subject, which no client may set
// itself, and keeps the stored subject. The server delivers only while
// some connection subscribes to exactly deliverTo (then every matching
// subscription gets it); with literal, Replay makes nc that subscriber.
// The consumer is deleted when the test ends. name must be a consumer name
// that is unique in the test.
func Replay(t testing.TB, nc *nats.Conn, prefix, name, subject string, data []byte, deliverTo string, literal bool) {
	t.Helper()
	if literal {
		sub, err := nc.SubscribeSync(deliverTo)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if !strings.HasPrefix(subject, prefix+".events.") {
		t.Fatalf("replay: %s is not an event subject", subject)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stored (acknowledged) before the consumer starts from it.
	if ack, err := nc.RequestWithContext(ctx, subject, data); err != nil || !strings.Contains(string(ack.Data), `"seq"`) {
		t.Fatalf("replay: store %s: %v", subject, err)
	}
	stream := events.NamesFor(prefix).Stream()
	req, _ := json.Marshal(map[string]any{"stream_name": stream, "action": "create", "config": map[string]any{
		"name": name, "deliver_subject": deliverTo, "filter_subject": subject, "ack_policy": "none", "deliver_policy": "last"}})
	m, err := nc.RequestWithContext(ctx, fmt.Sprintf("$JS.API.CONSUMER.CREATE.%s.%s.%s", stream, name, subject), req)
	if err != nil {
		t.Fatalf("replay: create consumer: %v", err)
	}
	var rep struct {
		Error *struct{ Description string } `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Error != nil {
		t.Fatalf("replay: create consumer: %s", m.Data)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = nc.RequestWithContext(ctx, fmt.Sprintf("$JS.API.CONSUMER.DELETE.%s.%s", stream, name), nil)
	})
}
