package events

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecode checks that no input makes Decode panic, that every failure is
// one of the four classified errors, and that whatever Decode accepts encodes
// and decodes again to the same envelope.
func FuzzDecode(f *testing.F) {
	for _, p := range samplePayloads() {
		ev, err := New("fuzz", t0, p)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"type":"xenft.node.fault","data":null}`))
	f.Add([]byte(`[{"a":1e400}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if _, err := ev.Payload(); err != nil {
			t.Fatalf("accepted event has undecodable payload: %v", err)
		}
		again, err := Encode(ev)
		if err != nil {
			t.Fatalf("accepted event does not re-encode: %v", err)
		}
		ev2, err := Decode(again)
		if err != nil || ev2.ID != ev.ID || ev2.Type != ev.Type || ev2.Subject != ev.Subject {
			t.Fatalf("re-decode changed the event: %v", err)
		}
	})
}
