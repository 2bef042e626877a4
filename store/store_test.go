package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
)

// backends runs each test against both stores: the same contract.
func backends(t *testing.T) map[string]func(t *testing.T) store.ImageStore {
	return map[string]func(t *testing.T) store.ImageStore{
		"dir": func(t *testing.T) store.ImageStore {
			d, err := store.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"nats": func(t *testing.T) store.ImageStore {
			b := eventstest.Bus(t, eventstest.Server(t))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			obj, err := b.Images(ctx)
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := b.ImagesStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return store.NewNATS(obj, store.LeaderChunks(b.Conn(), chunks.CachedInfo().Config.Name))
		},
	}
}

func randomImage(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func readAll(t *testing.T, s store.ImageStore, key string) ([]byte, error) {
	t.Helper()
	rc, _, err := s.Open(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestPutOpenListDelete(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			ctx := context.Background()
			img := randomImage(3*store.ChunkSize+12345, 1) // spans chunks
			key := store.ImageKey("mpi", 7, "mpi-0")
			info, err := s.Put(ctx, key, bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(len(img)) || info.SHA256 != sum(img) || info.Key != "mpi/7/mpi-0.img" {
				t.Fatalf("info = %+v", info)
			}
			got, err := readAll(t, s, key)
			if err != nil || !bytes.Equal(got, img) {
				t.Fatalf("read back %d bytes, err %v", len(got), err)
			}
			if st, err := s.Stat(ctx, key); err != nil || st.SHA256 != info.SHA256 || st.Size != info.Size {
				t.Fatalf("stat = %+v, %v", st, err)
			}
			if _, err := s.Put(ctx, store.ImageKey("mpi", 8, "mpi-0"), strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(ctx, store.ImageKey("web", 1, "web"), strings.NewReader("y")); err != nil {
				t.Fatal(err)
			}
			list, err := s.List(ctx, store.CheckpointPrefix("mpi", 7))
			if err != nil || len(list) != 1 || list[0].Key != key {
				t.Fatalf("list mpi/7/ = %+v, %v", list, err)
			}
			all, _ := s.List(ctx, "")
			if len(all) != 3 {
				t.Fatalf("list all = %+v", all)
			}
			if err := store.Verify(ctx, s, key, store.Info{Size: info.Size, SHA256: info.SHA256}); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if err := store.Verify(ctx, s, key, store.Info{SHA256: sum([]byte("other"))}); !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("verify against a different catalog checksum: %v", err)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("second delete: %v", err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("stat after delete: %v", err)
			}
			if _, _, err := s.Open(ctx, key); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("open after delete: %v", err)
			}
		})
	}
}

// failingReader returns n bytes and then err, like a save that dies midway.
type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestFailedPutLeavesNoImage(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			ctx := context.Background()
			key := store.ImageKey("g", 1, "vm")
			boom := errors.New("xl save died")
			_, err := s.Put(ctx, key, &failingReader{r: bytes.NewReader(randomImage(4<<20, 2)), n: 2 << 20, err: boom})
			if !errors.Is(err, boom) {
				t.Fatalf("put err = %v, want the reader's error", err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("stat after failed put: %v", err)
			}
			if l, _ := s.List(ctx, ""); len(l) != 0 {
				t.Fatalf("list after failed put: %+v", l)
			}
		})
	}
}

// Every method of both stores checks its key itself (defence in depth: a
// request that slipped past its own validation still cannot reach outside
// the store), and a refused Put leaves nothing behind, inside the directory
// store's root or beside it.
func TestInvalidKeysAreRefused(t *testing.T) {
	keys := []string{"", "../etc/passwd", "../../x", "/abs", "a//b", "a/../b", "a/.hidden", "a b", `a\..\b`, "a\x00b", "a/b.img.meta"}
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			ctx := context.Background()
			for _, key := range keys {
				if _, err := s.Put(ctx, key, strings.NewReader("x")); !errors.Is(err, store.ErrInvalidKey) {
					t.Errorf("put %q: %v", key, err)
				}
				if _, _, err := s.Open(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
					t.Errorf("open %q: %v", key, err)
				}
				if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
					t.Errorf("stat %q: %v", key, err)
				}
				if err := s.Delete(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
					t.Errorf("delete %q: %v", key, err)
				}
			}
			if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
				t.Fatalf("list after refused puts: %+v, %v", l, err)
			}
		})
	}
	t.Run("dir leaves no file", func(t *testing.T) {
		parent := t.TempDir()
		root := filepath.Join(parent, "store")
		s, err := store.NewDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range keys {
			_, _ = s.Put(context.Background(), key, strings.NewReader("x"))
		}
		var files []string
		_ = filepath.WalkDir(parent, func(p string, e os.DirEntry, err error) error {
			if err == nil && p != parent && p != root {
				files = append(files, p)
			}
			return nil
		})
		if len(files) != 0 {
			t.Fatalf("refused puts left %v", files)
		}
	})
}

// An image whose name merely contains ".tmp-" (a VM named so) is an image
// like any other: List shows it, so retention can delete it.
func TestDirListsAnImageWhoseNameLooksTemporary(t *testing.T) {
	s, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := store.ImageKey("g", 1, "vm.tmp-3")
	if _, err := s.Put(ctx, key, strings.NewReader("image")); err != nil {
		t.Fatal(err)
	}
	if l, err := s.List(ctx, "g/"); err != nil || len(l) != 1 || l[0].Key != key {
		t.Fatalf("list: %+v, %v; want %s", l, err, key)
	}
}

func TestDirDetectsCorruptionAndTruncation(t *testing.T) {
	root := t.TempDir()
	s, _ := store.NewDir(root)
	ctx := context.Background()
	img := randomImage(1<<20, 3)
	for _, k := range []string{"g/1/flip.img", "g/1/short.img", "g/1/long.img"} {
		if _, err := s.Put(ctx, k, bytes.NewReader(img)); err != nil {
			t.Fatal(err)
		}
	}
	flip := filepath.Join(root, "g/1/flip.img")
	b, _ := os.ReadFile(flip)
	b[len(b)/2] ^= 0x01
	_ = os.WriteFile(flip, b, 0o640)
	_ = os.Truncate(filepath.Join(root, "g/1/short.img"), 1000)
	f, _ := os.OpenFile(filepath.Join(root, "g/1/long.img"), os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.Write([]byte("trailing"))
	_ = f.Close()
	for _, k := range []string{"g/1/flip.img", "g/1/short.img", "g/1/long.img"} {
		if _, err := readAll(t, s, k); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: read err = %v, want ErrCorrupt", k, err)
		}
		if err := store.Verify(ctx, s, k, store.Info{}); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: verify err = %v, want ErrCorrupt", k, err)
		}
	}
}

func TestDirImageWithoutSidecarIsInvisible(t *testing.T) {
	// The state a crash between renaming the image and writing its sidecar
	// leaves behind.
	root := t.TempDir()
	s, _ := store.NewDir(root)
	_ = os.MkdirAll(filepath.Join(root, "g/1"), 0o750)
	_ = os.WriteFile(filepath.Join(root, "g/1/vm.img"), []byte("half"), 0o640)
	_ = os.WriteFile(filepath.Join(root, "g/1/vm.img.tmp-abc"), []byte("temp"), 0o640)
	if _, err := s.Stat(context.Background(), "g/1/vm.img"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stat: %v", err)
	}
	if l, _ := s.List(context.Background(), ""); len(l) != 0 {
		t.Fatalf("list: %+v", l)
	}
	// A new Put of the key replaces it cleanly.
	if _, err := s.Put(context.Background(), "g/1/vm.img", strings.NewReader("whole")); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, s, "g/1/vm.img"); err != nil || string(got) != "whole" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestDirFullDiskLeavesNothing(t *testing.T) {
	// A real full file system: a 2 MiB tmpfs (needs root, as CI has).
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); TestDirInjectedENOSPC covers the path", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	s, err := store.NewDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(context.Background(), "g/1/vm.img", bytes.NewReader(randomImage(4<<20, 4)))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put on a full disk: %v, want ENOSPC", err)
	}
	assertEmpty(t, s, mnt)
}

func assertEmpty(t *testing.T, s store.ImageStore, root string) {
	t.Helper()
	if l, _ := s.List(context.Background(), ""); len(l) != 0 {
		t.Fatalf("list after failure: %+v", l)
	}
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("file left behind: %s", p)
		}
		return nil
	})
}

// In a JetStream cluster the object's info is read from any replica, and
// one that is behind says the object Put just stored does not exist: Put
// waits for the replicas instead of failing the checkpoint.
func TestNATSPutOutlivesAReplicaBehind(t *testing.T) {
	ctx, obj, chunks := imageObjects(t)
	s := store.NewNATS(store.StaleReplicas(obj, 3), chunks)
	img := randomImage(store.ChunkSize+1, 5)
	key := store.ImageKey("mpi", 1, "mpi-0")
	info, err := s.Put(ctx, key, bytes.NewReader(img))
	if err != nil {
		t.Fatalf("put with replicas behind: %v", err)
	}
	if info.SHA256 != sum(img) {
		t.Fatalf("put recorded %s, want %s", info.SHA256, sum(img))
	}
	got, err := readAll(t, s, key)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read back: %v (%d bytes of %d)", err, len(got), len(img))
	}
}

// A restore right after a commit may read the image's info from a replica
// that has not seen it yet: Open asks again instead of reporting it
// missing (which would roll the group back further than it need go).
func TestNATSOpenOutlivesAReplicaBehind(t *testing.T) {
	ctx, obj, chunks := imageObjects(t)
	img := randomImage(store.ChunkSize+1, 6)
	key := store.ImageKey("mpi", 2, "mpi-1")
	if _, err := store.NewNATS(obj, chunks).Put(ctx, key, bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, store.NewNATS(store.StaleInfo(obj, 3), chunks), key)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("open with the info's replicas behind: %v (%d bytes of %d)", err, len(got), len(img))
	}
}

// imageObjects is the image object store of a fresh embedded server, its
// stream, and a context bounding the test's calls on them.
func imageObjects(t *testing.T) (context.Context, jetstream.ObjectStore, store.ChunkGetter) {
	t.Helper()
	b := eventstest.Bus(t, eventstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	obj, err := b.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := b.ImagesStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, obj, store.LeaderChunks(b.Conn(), chunks.CachedInfo().Config.Name)
}
