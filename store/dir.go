package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Dir stores images as files under a root directory: a local disk or a shared
// file system (NFS, Lustre, GPFS) mounted on every host, so any host can
// restore any image. Each image <key> has a sidecar <key>.meta holding its
// size and SHA-256; the sidecar is written last, so an image without one is
// incomplete and invisible.
type Dir struct {
	root string
	// create opens a new file; tests replace it to inject I/O errors such as
	// a full disk.
	create func(name string) (writeSyncCloser, error)
}

type writeSyncCloser interface {
	io.Writer
	Sync() error
	Close() error
}

var _ ImageStore = (*Dir)(nil)

const metaSuffix = ".meta"

// NewDir returns a store rooted at root, creating it if needed.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("dir store: root is empty")
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("dir store: %w", err)
	}
	return &Dir{root: root, create: func(name string) (writeSyncCloser, error) {
		return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	}}, nil
}

// path is key's file under the root. It checks key itself, so that no method
// can turn a key into a path without the check.
func (d *Dir) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put writes to a temporary name in the final directory, fsyncs it, renames
// it into place, then writes the sidecar the same way and fsyncs the
// directory. A crash or error at any point leaves either nothing, a temporary
// file (removed on error, ignored by List), or an image without a sidecar
// (incomplete: invisible to Open and List, and replaced by the next Put).
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	final, err := d.path(key)
	if err != nil {
		return Info{}, err
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	// A previous Put of this key that died may have left an image without a
	// sidecar; its sidecar must not survive to describe the new one.
	_ = os.Remove(final + metaSuffix)
	var size int64
	var sum string
	if err := d.writeAtomic(ctx, final, func(w io.Writer) (err error) {
		size, sum, err = copyAndHash(ctx, w, r)
		return err
	}); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	info := Info{Key: key, Size: size, SHA256: sum, Modified: time.Now().UTC()}
	meta, _ := json.Marshal(info)
	if err := d.writeAtomic(ctx, final+metaSuffix, func(w io.Writer) error {
		_, err := w.Write(meta)
		return err
	}); err != nil {
		_ = os.Remove(final)
		return Info{}, fmt.Errorf("put %s: metadata: %w", key, err)
	}
	if err := SyncDir(dir); err != nil {
		return Info{}, fmt.Errorf("put %s: sync directory: %w", key, err)
	}
	return info, nil
}

// copyAndHash copies r into w, returning the size and SHA-256 of what was
// written: in the kernel, hashed from the page cache, when both are files
// (the agent's upload of a spooled image), through a pipelined user-space
// copy otherwise.
func copyAndHash(ctx context.Context, w io.Writer, r io.Reader) (int64, string, error) {
	if dst, ok := w.(*os.File); ok {
		if src, ok := r.(*os.File); ok {
			if n, sum, ok, err := hashedFileCopy(ctx, dst, src); ok {
				return n, sum, err
			}
		}
	}
	return hashedCopy(ctx, earlyWriteback(w), r)
}

func (d *Dir) writeAtomic(ctx context.Context, final string, write func(io.Writer) error) (err error) {
	var suffix [6]byte // 12 hex digits: tempRE (key.go) keeps keys off these names
	_, _ = rand.Read(suffix[:])
	tmp := final + ".tmp-" + hex.EncodeToString(suffix[:])
	f, err := d.create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// SyncDir syncs a directory, so that a file created, renamed or removed in it
// stays so through a power loss.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Stat reads the sidecar.
func (d *Dir) Stat(_ context.Context, key string) (Info, error) {
	p, err := d.path(key)
	if err != nil {
		return Info{}, err
	}
	b, err := os.ReadFile(p + metaSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil || info.Key != key || len(info.SHA256) != 64 {
		return Info{}, fmt.Errorf("%w: %s has an unreadable sidecar", ErrCorrupt, key)
	}
	return info, nil
}

// Open returns a reader that verifies the image as it is read.
func (d *Dir) Open(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	info, err := d.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	p, err := d.path(key)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, fmt.Errorf("%w: %s (sidecar without image)", ErrCorrupt, key)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	return newVerifyingReader(f, info), info, nil
}

// Delete removes the sidecar first, so a half-deleted image is incomplete
// rather than a sidecar describing nothing.
func (d *Dir) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	for _, name := range []string{p + metaSuffix, p} {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	// Remove directories left empty (<group>/<seq>/), up to the root.
	for dir := filepath.Dir(p); dir != d.root && strings.HasPrefix(dir, d.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List walks the root for sidecars.
func (d *Dir) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		// A temporary never ends in metaSuffix (writeAtomic appends its
		// suffix last), and a sidecar whose key is not valid is refused
		// by Stat below.
		if e.IsDir() || !strings.HasSuffix(p, metaSuffix) {
			return nil
		}
		rel, err := filepath.Rel(d.root, strings.TrimSuffix(p, metaSuffix))
		if err != nil {
			return nil
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Stat(ctx, key)
		if err != nil {
			return nil // an unreadable sidecar is not an image
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
