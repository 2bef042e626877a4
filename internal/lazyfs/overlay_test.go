package lazyfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestOverlay_MatchesModel applies random writes and truncations to an
// overlay over a real backing file and to a byte slice, compares reads
// after each step, and after write-backs compares the backing file.
func TestOverlay_MatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f, err := os.Create(filepath.Join(t.TempDir(), "backing"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	initial := randBytes(rng, 3*pageSize+123)
	if _, err := f.Write(initial); err != nil {
		t.Fatal(err)
	}
	model := append([]byte{}, initial...)
	ov := newOverlay(int64(len(model)))
	const span = 6 * pageSize
	for step := range 3000 {
		switch op := rng.IntN(10); {
		case op < 5:
			off := rng.Int64N(span)
			p := randBytes(rng, 1+rng.IntN(2*pageSize))
			if err := ov.write(p, off, f); err != nil {
				t.Fatal(err)
			}
			model = modelWrite(model, p, off)
		case op < 7:
			size := rng.Int64N(span)
			if err := ov.truncate(size); err != nil {
				t.Fatal(err)
			}
			model = modelTruncate(model, size)
		case op < 8:
			if err := ov.writeBack(f); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, model) {
				t.Fatalf("step %d: the written-back file differs from the model (%d vs %d bytes)", step, len(got), len(model))
			}
			ov = newOverlay(int64(len(model)))
		default:
			off := rng.Int64N(span + pageSize)
			buf := make([]byte, rng.IntN(3*pageSize))
			n, err := ov.read(buf, off, f)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			if off < int64(len(model)) {
				want = model[off:min(int64(len(model)), off+int64(len(buf)))]
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("step %d: read %d at %d: got %d bytes, want %d, or content differs", step, len(buf), off, n, len(want))
			}
		}
		if ov.size != int64(len(model)) {
			t.Fatalf("step %d: size %d, model %d", step, ov.size, len(model))
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

func modelWrite(model, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(model)) {
		model = append(model, make([]byte, end-int64(len(model)))...)
	}
	copy(model[off:], p)
	return model
}

func modelTruncate(model []byte, size int64) []byte {
	if size <= int64(len(model)) {
		return model[:size]
	}
	return append(model, make([]byte, size-int64(len(model)))...)
}
