package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/xenft/xenft/store"
)

// onlyReader hides every method but Read, so Put takes the user-space path.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// The kernel path (file to file, the agent's upload) and the user-space path
// must store the same bytes under the same size and checksum.
func TestDirPutFromAFileMatchesPutFromAStream(t *testing.T) {
	// Not a multiple of the copy chunk, so the last range is partial.
	img := randomImage(3*(8<<20)+12345, 7)
	src := filepath.Join(t.TempDir(), "spooled.img")
	if err := os.WriteFile(src, img, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fromFile, err := d.Put(ctx, "g/1/file.img", f)
	if err != nil {
		t.Fatal(err)
	}
	fromStream, err := d.Put(ctx, "g/1/stream.img", onlyReader{bytes.NewReader(img)})
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.Size != int64(len(img)) || fromFile.SHA256 != sum(img) {
		t.Fatalf("file path recorded size %d sha %s, want %d %s", fromFile.Size, fromFile.SHA256, len(img), sum(img))
	}
	if fromStream.Size != fromFile.Size || fromStream.SHA256 != fromFile.SHA256 {
		t.Fatalf("stream path recorded %+v, file path %+v", fromStream, fromFile)
	}
	got, err := readAll(t, d, "g/1/file.img")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("image read back differs from the one put")
	}
}

// A copy stopped by its context leaves no image, on the kernel path too.
func TestDirPutFromAFileStopsWithItsContext(t *testing.T) {
	src := filepath.Join(t.TempDir(), "spooled.img")
	if err := os.WriteFile(src, randomImage(4<<20, 8), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	d, err := store.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Put(ctx, "g/1/vm.img", f); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v, want context.Canceled", err)
	}
	assertEmpty(t, d, root)
}

// BenchmarkDirPut compares the two copy paths on one 64 MiB image; the
// figure for the whole store against cp is bench/checkpoint's dir_vs_cp.
func BenchmarkDirPut(b *testing.B) {
	img := randomImage(64<<20, 9)
	src := filepath.Join(b.TempDir(), "spooled.img")
	if err := os.WriteFile(src, img, 0o600); err != nil {
		b.Fatal(err)
	}
	d, err := store.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"file", "stream"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(int64(len(img)))
			for i := 0; b.Loop(); i++ {
				f, err := os.Open(src)
				if err != nil {
					b.Fatal(err)
				}
				var r io.Reader = f
				if mode == "stream" {
					r = onlyReader{f}
				}
				if _, err := d.Put(context.Background(), "bench/"+mode+"/vm.img", r); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
