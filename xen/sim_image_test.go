package xen

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// saveTestImage writes a 4 MiB image at progress 12345 and returns its path.
func saveTestImage(t *testing.T) (string, ImageHeader) {
	t.Helper()
	h := ImageHeader{Name: "vm", UUID: "u-1", MemoryBytes: 4 << 20, Progress: 12345, Seed: seedOf("u-1"),
		Config: []byte("name = \"vm\"\nmemory = 4\n")}
	p := filepath.Join(t.TempDir(), "vm.img")
	if err := saveImageFile(context.Background(), p, &h, true); err != nil {
		t.Fatal(err)
	}
	return p, h
}

func TestImageRoundTrip(t *testing.T) {
	p, want := saveTestImage(t)
	got, err := VerifyImage(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != want.Name || got.UUID != want.UUID || got.Progress != want.Progress ||
		got.Seed != want.Seed || got.MemoryBytes != want.MemoryBytes || !bytes.Equal(got.Config, want.Config) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Page 0 carries the counter where a test (or a person with hexdump)
	// can read it, as a guest's variable would be.
	data, _ := os.ReadFile(p)
	page0 := data[PageSize : 2*PageSize]
	if !bytes.Equal(page0[:8], []byte("XNFTFCTR")) || page0[8] != 12345&0xff || page0[9] != 12345>>8 {
		t.Errorf("page 0 does not hold the counter: % x", page0[:16])
	}
	// No temp files are left next to the image.
	if files, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "*")); len(files) != 1 {
		t.Errorf("files next to the image: %v", files)
	}
}

// Every kind of damage is found, and named.
func TestImageDamageDetected(t *testing.T) {
	p, _ := saveTestImage(t)
	orig, _ := os.ReadFile(p)
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"not an image", func(b []byte) []byte { return []byte("garbage\n") }, "header"},
		{"wrong magic", func(b []byte) []byte { b[0] = 'X'; return b }, "wrong magic"},
		{"header bit flip", func(b []byte) []byte { b[60] ^= 1; return b }, "header checksum"},
		{"page bit flip", func(b []byte) []byte { b[PageSize+5*PageSize+100] ^= 0x80; return b }, "page 5 does not hold"},
		{"counter page edited", func(b []byte) []byte { b[PageSize+8]++; return b }, "page 0 does not hold"},
		{"truncated in the pages", func(b []byte) []byte { return b[:len(b)/2] }, "truncated at page"},
		{"truncated trailer", func(b []byte) []byte { return b[:len(b)-3] }, "truncated trailer"},
		{"extra data", func(b []byte) []byte { return append(b, 0) }, "data after the trailer"},
		{"bad trailer", func(b []byte) []byte { b[len(b)-16] = 0; return b }, "bad trailer"},
		{"pages checksum", func(b []byte) []byte { b[len(b)-8] ^= 1; return b }, "pages checksum"},
		{"empty", func(b []byte) []byte { return nil }, "header"},
	} {
		bad := tc.damage(append([]byte(nil), orig...))
		dp := filepath.Join(t.TempDir(), "bad.img")
		os.WriteFile(dp, bad, 0o600)
		_, err := VerifyImage(context.Background(), dp)
		if !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrBadImage mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := VerifyImage(context.Background(), filepath.Join(t.TempDir(), "missing.img")); !errors.Is(err, ErrBadImage) {
		t.Errorf("missing image: %v", err)
	}
}

// A restore from a damaged image fails and creates no domain.
func TestSimRestoreRejectsDamage(t *testing.T) {
	p, _ := saveTestImage(t)
	os.Truncate(p, 3<<20)
	s := &Sim{}
	if err := s.Restore(context.Background(), p, RestoreOptions{}); !errors.Is(err, ErrBadImage) {
		t.Fatalf("restore of a truncated image: %v", err)
	}
	if doms, _ := s.List(context.Background()); len(doms) != 0 {
		t.Fatalf("domains after a failed restore: %+v", doms)
	}
}

// A save into a directory that does not exist fails and resumes the domain.
func TestSimSaveFailureResumes(t *testing.T) {
	ctx := context.Background()
	s, clk := newTestSim(t)
	s.Create(ctx, writeCfg(t, t.TempDir(), "a", 4))
	err := s.Save(ctx, "a", "/nonexistent-dir/a.img", SaveOptions{})
	if err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
	clk.Advance(time.Second)
	doms, _ := s.List(ctx)
	if len(doms) != 1 || doms[0].State != StateRunning || doms[0].Progress != 1000 {
		t.Fatalf("after a failed plain save: %+v", doms)
	}
}
