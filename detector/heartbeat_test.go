package detector

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func sampleBeat(seq uint64, domains int) Heartbeat {
	hb := Heartbeat{
		V: HeartbeatVersion, Host: "n17.rack3.example.org", Incarnation: "3f9a0c1d2e4b5a69", Seq: seq,
		Sent: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC), IntervalMs: 1000,
	}
	if domains >= 0 {
		inv := &Inventory{At: hb.Sent.Add(-2 * time.Second), FreeMemoryMiB: 65536, Domains: []DomainSummary{}}
		for i := range domains {
			inv.Domains = append(inv.Domains, DomainSummary{Name: fmt.Sprintf("vm-%d", i), State: "running", MemoryMiB: 4096})
		}
		hb.Inventory = inv
	}
	return hb
}

// The fast path reads every beat the beacon writes, and agrees with
// encoding/json.
func TestScanHeadReadsEncodedBeats(t *testing.T) {
	for _, domains := range []int{-1, 0, 1, 40} {
		b, err := EncodeHeartbeat(sampleBeat(42, domains))
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := scanHead(b)
		if !ok {
			t.Fatalf("fast path refused %s", b)
		}
		var slow beatHead
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatal(err)
		}
		if !sameHead(fast, slow) {
			t.Errorf("fast %+v, slow %+v", fast, slow)
		}
		got, err := DecodeHeartbeat(b)
		if err != nil || got.Seq != 42 || got.Host != "n17.rack3.example.org" || got.Inventory != nil {
			t.Errorf("DecodeHeartbeat = %+v, %v", got, err)
		}
	}
}

func sameHead(a, b beatHead) bool {
	return a.V == b.V && a.Host == b.Host && a.Incarnation == b.Incarnation && a.Seq == b.Seq &&
		a.Sent.Equal(b.Sent) && a.IntervalMs == b.IntervalMs
}

func TestDecodeHeartbeatRefusesGarbage(t *testing.T) {
	for _, in := range []string{
		``, `null`, `[]`, `{}`, `not json`,
		`{"v":1,"host":"n1","incarnation":"a","seq":0}`,
		`{"v":2,"host":"n1","incarnation":"a","seq":1}`,
		`{"v":1,"host":"","incarnation":"a","seq":1}`,
		`{"v":1,"host":"bad host","incarnation":"a","seq":1}`,
		`{"v":1,"host":"n1","incarnation":"","seq":1}`,
		`{"v":1,"host":"n1","incarnation":"a","seq":-1}`,
		`{"v":1,"host":"n1","incarnation":"a","seq":1.5}`,
		`{"v":1,"host":"n1","incarnation":"a","seq":1,"interval_ms":-5}`,
		`{"v":1,"host":"n1","incarnation":"a","seq":1,"sent":"yesterday"}`,
		`{"v":1,"host":"n1","incarnation":"a","seq":1}}`,
	} {
		if _, err := DecodeHeartbeat([]byte(in)); !errors.Is(err, ErrBadHeartbeat) {
			t.Errorf("%q: error %v, want ErrBadHeartbeat", in, err)
		}
	}
	// Other shapes take encoding/json and still work.
	for _, in := range []string{
		`{"seq":3,"incarnation":"a","host":"n1","v":1,"extra":{"x":[1,2]}}`,
		`{"v":1,"host":"n\u0031","incarnation":"a","seq":3}`,
		`{"V":1,"Host":"n1","incarnation":"a","seq":3}`,
	} {
		hb, err := DecodeHeartbeat([]byte(in))
		if err != nil || hb.Host != "n1" || hb.Seq != 3 {
			t.Errorf("%q: %+v, %v", in, hb, err)
		}
	}
}

// Whatever the fast path accepts is valid JSON that encoding/json decodes to
// the same head; and nothing panics.
func FuzzDecodeHeartbeat(f *testing.F) {
	for _, d := range []int{-1, 0, 3} {
		b, _ := EncodeHeartbeat(sampleBeat(7, d))
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"host":"n1","incarnation":"a","seq":1,"sent":"2026-01-01T00:00:00Z","interval_ms":1000,"inventory":null}`))
	f.Add([]byte(`{"v":01,"host":"n1"}`))
	f.Add([]byte(`{"sent":"2026-01-01T25:00:00Z"}`))
	f.Add([]byte(`{"v":1,"inventory":{"domains":[{"name":"a\"b","x":-0.5e+3,"y":[true,false,null]}]},"seq":2}`))
	f.Add([]byte(`{"v":1,"inventory":{},"host":"n1","Host":"n2"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeHeartbeat(b)
		fast, ok := scanHead(b)
		if !ok {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("fast path accepted invalid JSON: %q", b)
		}
		var slow beatHead
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, b)
		}
		if !sameHead(fast, slow) {
			t.Fatalf("fast %+v, slow %+v for %q", fast, slow, b)
		}
	})
}
