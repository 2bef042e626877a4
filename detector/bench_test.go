package detector

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Benchmarks of the detector's hot paths; bench/detect measures the whole.

func BenchmarkPhi(b *testing.B) {
	e := Estimate{Mean: 1.9, Std: 0.1}
	var sink float64
	for i := 0; b.Loop(); i++ {
		sink += e.Phi(2 + float64(i%100)/100)
	}
	_ = sink
}

func BenchmarkWindowAdd(b *testing.B) {
	w := NewWindow(DefaultConfig().WindowSize, time.Second)
	for i := 0; b.Loop(); i++ {
		w.Add(1 + float64(i%7)/100)
	}
}

// One beat of a known host: the per-beat update (window, estimate,
// deadlines).
func BenchmarkTrackerBeat(b *testing.B) {
	tr, err := NewTracker(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	const hosts = 10000
	names := make([]string, hosts)
	for i := range names {
		names[i] = fmt.Sprintf("host-%05d", i)
		tr.Beat(Heartbeat{Host: names[i], Incarnation: "a", Seq: 1}, t0)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h := i % hosts
		seq := uint64(i/hosts + 2)
		tr.Beat(Heartbeat{Host: names[h], Incarnation: "a", Seq: seq}, t0.Add(time.Duration(seq)*time.Second))
	}
}

// One tick over 10,000 healthy hosts: what the monitor pays 20 times a second.
func BenchmarkTrackerTick10k(b *testing.B) {
	tr, err := NewTracker(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for i := range 10000 {
		tr.Beat(Heartbeat{Host: fmt.Sprintf("host-%05d", i), Incarnation: "a", Seq: 1}, t0)
	}
	now := t0.Add(500 * time.Millisecond)
	for b.Loop() {
		if ts, _ := tr.Tick(now); len(ts) != 0 {
			b.Fatal("a healthy host was suspected")
		}
	}
}

func BenchmarkDecodeHeartbeat(b *testing.B) {
	data, err := EncodeHeartbeat(sampleBeat(42, 4))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := DecodeHeartbeat(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var h beatHead
			if err := json.Unmarshal(data, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeHeartbeat(b *testing.B) {
	hb := sampleBeat(42, 4)
	for b.Loop() {
		if _, err := EncodeHeartbeat(hb); err != nil {
			b.Fatal(err)
		}
	}
}
