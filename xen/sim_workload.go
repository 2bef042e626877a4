package xen

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// The simulated workload. A domain's guest "computes": a progress counter
// advances with the time the domain spends running and stands still while it
// is paused, suspended or crashed. Its memory is a pure function of
// (seed, progress): page i holds a pattern derived from the seed, i and how
// often the workload has rewritten page i by then. That makes an image
// checkable without keeping a copy (Restore recomputes every page), and it
// makes consecutive checkpoints differ the way real ones do: a few hot pages
// change between any two checkpoints, warm pages now and then, and most
// pages (code, page cache) never after boot.

// PageSize is the page size of simulated memory, as on x86.
const PageSize = 4096

const (
	counterMagic = 0x5254434654464e58 // "XNFTFCTR" little-endian: marks page 0
	golden       = 0x9e3779b97f4a7c15
)

// mix64 is splitmix64's finaliser: cheap, and every input bit reaches every
// output bit, which is all a page pattern needs.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// pageVersion is how many times the workload has rewritten page i when its
// counter reads p. Page 0 holds the counter itself, so it changes with every
// unit. Other pages fall in three classes chosen by a hash of (seed, i):
// 5% hot (rewritten every 500-2000 units, i.e. every 0.5-2 s of running at
// the default rate), 25% warm (every 20k-120k units) and 70% cold (never
// rewritten after boot). Between checkpoints taken 10 s apart about 8% of
// the pages differ.
func pageVersion(seed, i, p uint64) uint64 {
	if i == 0 {
		return p
	}
	h := mix64(seed ^ (i * golden))
	var period uint64
	switch class := h % 100; {
	case class < 5:
		period = 500 + (h>>8)%1500
	case class < 30:
		period = 20000 + (h>>8)%100000
	default:
		return 0
	}
	phase := (h >> 32) % period
	// (p + phase) / period without overflow for any p.
	return p/period + (p%period+phase)/period
}

// fillPage writes page i's contents at progress p into buf (PageSize bytes):
// one 64-bit seed per page, spread over the page's words. Cheap enough that
// writing an image is bound by the disk, not by generating it.
func fillPage(buf []byte, seed, i, p uint64) {
	s := mix64(seed ^ mix64(i+1) ^ mix64(pageVersion(seed, i, p)^golden))
	for j := 0; j+8 <= PageSize; j += 8 {
		binary.LittleEndian.PutUint64(buf[j:], s^(uint64(j)*golden))
	}
	if i == 0 { // the guest's counter, readable in the image like a real guest's variable
		binary.LittleEndian.PutUint64(buf[0:], counterMagic)
		binary.LittleEndian.PutUint64(buf[8:], p)
		binary.LittleEndian.PutUint64(buf[16:], seed)
	}
}

// fillPages fills buf (a whole number of pages) with pages first, first+1, ...
func fillPages(buf []byte, seed, first, p uint64) {
	for off := 0; off+PageSize <= len(buf); off += PageSize {
		fillPage(buf[off:off+PageSize], seed, first+uint64(off/PageSize), p)
	}
}

// unitsFor converts running time into progress units at rate units per
// second, exactly and without overflow for any realistic duration.
func unitsFor(d time.Duration, rate uint64) uint64 {
	if d <= 0 {
		return 0
	}
	sec := uint64(d / time.Second)
	frac := uint64(d % time.Second)
	hi, lo := bits.Mul64(frac, rate)
	fracUnits, _ := bits.Div64(hi, lo, uint64(time.Second))
	return sec*rate + fracUnits
}
