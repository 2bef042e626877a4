package events

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecode is the per-event cost every consumer pays on receipt:
// JSON parse, schema validation and the typed payload check.
func BenchmarkDecode(b *testing.B) {
	ev, _ := New("bench", t0, NodeFailed{Host: "n1", Incarnation: "i1", Phi: 8.2, LastBeat: t0, LastSeq: 9, Detector: "d1", Reason: FailedByPhi})
	raw, _ := json.Marshal(ev)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCommitted decodes a larger event (a 16-member checkpoint).
func BenchmarkDecodeCommitted(b *testing.B) {
	var imgs []CheckpointImage
	for i := 0; i < 16; i++ {
		imgs = append(imgs, CheckpointImage{VM: "vm", Host: "n1", ImageKey: "g/1/vm.img", Size: 1 << 28, SHA256: "ab" + string(make([]byte, 0)) + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd", PausedMs: 300})
	}
	ev, _ := New("bench", t0, CheckpointCommitted{Group: "g", Seq: 1, Images: imgs, DurationMs: 1000})
	raw, _ := json.Marshal(ev)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
