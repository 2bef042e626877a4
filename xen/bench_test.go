package xen

import (
	"context"
	"io"
	"path/filepath"
	"testing"
)

// Sim image throughput for a 256 MiB domain, in MB/s (b.SetBytes). Save
// includes the fsync, so on a real disk it measures the disk; the Generate
// and Verify benchmarks take the disk out and show the CPU cost alone, which
// must stay well above disk bandwidth.

const benchMiB = 256

func benchSim(b *testing.B) (*Sim, string) {
	b.Helper()
	s := &Sim{TotalMemoryMiB: 4096}
	dir := b.TempDir()
	if err := s.Create(context.Background(), writeCfg(b, dir, "bench", benchMiB)); err != nil {
		b.Fatal(err)
	}
	return s, dir
}

func BenchmarkSimSave256MiB(b *testing.B) {
	s, dir := benchSim(b)
	img := filepath.Join(dir, "bench.img")
	b.SetBytes(benchMiB << 20)
	for b.Loop() {
		if err := s.Save(context.Background(), "bench", img, SaveOptions{Mode: SaveKeepRunning}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSimRestore256MiB(b *testing.B) {
	s, dir := benchSim(b)
	ctx := context.Background()
	img := filepath.Join(dir, "bench.img")
	if err := s.Save(ctx, "bench", img, SaveOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchMiB << 20)
	for b.Loop() {
		if err := s.Restore(ctx, img, RestoreOptions{Paused: true}); err != nil {
			b.Fatal(err)
		}
		if err := s.Destroy(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImageGenerate256MiB: page generation and checksum, no I/O.
func BenchmarkImageGenerate256MiB(b *testing.B) {
	h := ImageHeader{Name: "bench", MemoryBytes: benchMiB << 20, Progress: 123456, Seed: 42}
	b.SetBytes(benchMiB << 20)
	for b.Loop() {
		if err := writeImage(context.Background(), io.Discard, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseListJSON(b *testing.B) {
	out := []byte(loadSample(b, "lab/06-xl-list-l.txt").Stdout)
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if _, err := parseListJSON(out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseListTable(b *testing.B) {
	out := loadSample(b, "lab/05-xl-list.txt").Stdout
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		if _, err := parseListTable(out); err != nil {
			b.Fatal(err)
		}
	}
}
