package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NATS stores images in a JetStream object store (xenft_images), replicated
// like the rest of the bus, for sites without a shared file system. Images
// are split into 1 MiB chunks.
//
// Open reads the chunks with direct gets (one request per chunk) rather
// than the object store's Get, which creates a push consumer: a credential
// that may create consumers on a stream can have the server deliver the
// stream's messages to any subject someone subscribes to
// (nats-server#8274, events.FromConsumer), and an agent writes the chunks
// itself, so it would choose the bytes delivered. Reading this way an
// agent needs no consumer (docs/security.md).
type NATS struct {
	obj    jetstream.ObjectStore
	chunks ChunkGetter
}

// ChunkGetter reads the chunks of the object store's stream (OBJ_<bucket>):
// NextChunk is the first message on subject at or after seq, or
// jetstream.ErrMsgNotFound. LeaderChunks is the one to use.
type ChunkGetter interface {
	NextChunk(ctx context.Context, seq uint64, subject string) (*jetstream.RawStreamMsg, error)
}

var _ ImageStore = (*NATS)(nil)

// ChunkSize is the object store chunk size: large enough that a 256 MiB image
// is a few hundred messages, small enough to stay far below max_payload.
const ChunkSize = 1 << 20

const (
	metaSHA256 = "xenft-sha256"
	metaSize   = "xenft-size"
)

// NewNATS wraps an object store and its stream (see events.Bus.Images,
// and EnsureResources, which creates xenft_images with the configured
// replicas).
func NewNATS(obj jetstream.ObjectStore, chunks ChunkGetter) *NATS {
	return &NATS{obj: obj, chunks: chunks}
}

// Put streams r into the object store. JetStream writes the chunks first and
// the object's info last; if the stream fails the chunks are purged and no
// info is written, so a partial image is never visible.
func (n *NATS) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	hr := newHashingReader(ctxReader{ctx, r})
	// The sha256 is known only at the end, but object metadata is set at
	// the start; so Put first, then record our digest with UpdateMeta.
	oi, err := n.obj.Put(ctx, jetstream.ObjectMeta{Name: key, Opts: &jetstream.ObjectMetaOptions{ChunkSize: ChunkSize}}, hr)
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	info := Info{Key: key, Size: hr.n, SHA256: hr.sum(), Modified: oi.ModTime.UTC()}
	meta := oi.ObjectMeta
	meta.Metadata = map[string]string{metaSHA256: info.SHA256, metaSize: strconv.FormatInt(info.Size, 10)}
	if err := n.updateMeta(ctx, key, meta); err != nil {
		_ = n.obj.Delete(ctx, key)
		return Info{}, fmt.Errorf("put %s: record checksum: %w", key, err)
	}
	if err := n.confirmChunks(ctx, key, oi.NUID); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	return info, nil
}

// confirmChunks checks that the object's latest info names the chunks Put
// wrote. UpdateMeta is a read-modify-write, and its read may be answered by
// a replica that still holds the info of an earlier object under the same
// key (an upload retried under its key, or a test rewriting an image): it
// then writes that info back, pointing at chunks Put has just purged, and
// every later read of the object stalls waiting for them (e2e, a rewritten
// image unreadable for 90 s). The info read here may also come from a
// replica behind, so it is read again until it names nuid or staleReadWait
// has passed; the latter is a failed Put.
func (n *NATS) confirmChunks(ctx context.Context, key, nuid string) error {
	wait := 10 * time.Millisecond
	deadline := time.Now().Add(staleReadWait)
	for {
		oi, err := n.obj.GetInfo(ctx, key)
		if err == nil && oi.NUID == nuid {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("its info names chunks %s, not the %s just written: an earlier object's info was written back", oi.NUID, nuid)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// staleReadWait bounds how long Put waits for the replicas of a clustered
// object store to see the object it has just stored.
const staleReadWait = 10 * time.Second

// updateMeta records meta on an object Put has just stored. UpdateMeta
// reads the object's info first, and the object store reads it with a
// direct get, which any replica may answer: in a JetStream cluster a
// follower that has not yet applied the info Put wrote answers that the
// object does not exist, and UpdateMeta fails with ErrUpdateMetaDeleted
// although Put succeeded (seen on a loaded 3-node cluster in e2e/: the
// first checkpoints aborted). The object is there, so that answer is only
// a replica behind: ask again until one has caught up. Image keys name
// their checkpoint and are not reused, so the info a late replica returns
// can only be this object's.
func (n *NATS) updateMeta(ctx context.Context, key string, meta jetstream.ObjectMeta) error {
	wait := 10 * time.Millisecond
	deadline := time.Now().Add(staleReadWait)
	for {
		err := n.obj.UpdateMeta(ctx, key, meta)
		if !errors.Is(err, jetstream.ErrUpdateMetaDeleted) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (n *NATS) info(oi *jetstream.ObjectInfo) (Info, error) {
	sum := oi.Metadata[metaSHA256]
	size, err := strconv.ParseInt(oi.Metadata[metaSize], 10, 64)
	if len(sum) != 64 || err != nil {
		// Put died between the chunks and the checksum: incomplete.
		return Info{}, fmt.Errorf("%w: %s (no recorded checksum)", ErrNotFound, oi.Name)
	}
	return Info{Key: oi.Name, Size: size, SHA256: sum, Modified: oi.ModTime.UTC()}, nil
}

// Stat reads the object's info.
func (n *NATS) Stat(ctx context.Context, key string) (Info, error) {
	_, info, err := n.stat(ctx, key)
	return info, err
}

// stat reads the object store's info of key and ours in it.
func (n *NATS) stat(ctx context.Context, key string) (*jetstream.ObjectInfo, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, err
	}
	oi, err := n.obj.GetInfo(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	info, err := n.info(oi)
	return oi, info, err
}

// laggingReplicaWait bounds how long Open asks again for an image that
// looks missing or incomplete. Images are opened only when a committed
// checkpoint names them (a restore, a verify), so that answer is most
// likely a replica behind (see updateMeta), and a restore that took it for
// missing would fall back to an older checkpoint (seen once in e2e, right
// after a commit on a loaded 3-node cluster). An image that is really gone
// costs this much more before the fallback.
const laggingReplicaWait = 3 * time.Second

// openTimeout bounds the requests of Open for the object's info when ctx
// allows longer (each chunk's is bounded by chunkTimeout): a restore's
// context allows ten minutes, and in the soak lane, right after a server
// restart, an Open waited on an unanswered request for four minutes while
// the supervisor's resends queued behind it and the group's VMs were lost.
// A request unanswered this long is retried by the supervisor, perhaps on
// another host. Reading the chunks is not bounded by it.
const openTimeout = 30 * time.Second

// Open streams the object's chunks (chunkReader); the reader checks our
// recorded size and SHA-256.
func (n *NATS) Open(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	sctx, scancel := context.WithTimeout(ctx, openTimeout)
	defer scancel()
	oi, info, err := n.stat(sctx, key)
	wait := 20 * time.Millisecond
	for deadline := time.Now().Add(laggingReplicaWait); errors.Is(err, ErrNotFound) && time.Now().Before(deadline); {
		select {
		case <-sctx.Done():
			return nil, Info{}, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
		oi, info, err = n.stat(sctx, key)
	}
	if err != nil {
		return nil, Info{}, err
	}
	if oi.NUID == "" || oi.Size != uint64(info.Size) {
		return nil, Info{}, fmt.Errorf("%w: %s: the object store says %d bytes, the recorded size is %d", ErrCorrupt, key, oi.Size, info.Size)
	}
	r := &chunkReader{ctx: ctx, get: n.chunks, subject: "$O." + oi.Bucket + ".C." + oi.NUID, key: key, left: oi.Size}
	return newVerifyingReader(r, info), info, nil
}

// Delete removes the object.
func (n *NATS) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := n.obj.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// List returns complete images under prefix.
func (n *NATS) List(ctx context.Context, prefix string) ([]Info, error) {
	ois, err := n.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	var out []Info
	for _, oi := range ois {
		if oi.Deleted || !strings.HasPrefix(oi.Name, prefix) {
			continue
		}
		if info, err := n.info(oi); err == nil {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
