package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Who creates the stream, buckets and object store: only a supervisor and
// the servers (`xenft server`, `xenft up`) call EnsureResources; every other
// role calls AwaitResources, and per-role credentials let no other identity
// create or change a stream (docs/security.md).

// EnsureResources creates the event stream, the key-value buckets and the
// image object store, or updates their limits to match the configuration. It
// is idempotent; supervisors and servers call it at start.
func (b *Bus) EnsureResources(ctx context.Context) error {
	r := b.cfg.Replicas
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        b.names.Stream(),
		Description: "xenft events (CloudEvents 1.0 JSON)",
		Subjects:    []string{b.subjects.AllEvents()},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      b.cfg.Stream.MaxAge,
		MaxBytes:    b.cfg.Stream.MaxBytes,
		MaxMsgSize:  MaxEventSize,
		Duplicates:  b.cfg.Stream.DuplicateWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", b.names.Stream(), err)
	}
	buckets := []jetstream.KeyValueConfig{
		{Bucket: b.names.Hosts(), Description: "xenft hosts", History: 1},
		{Bucket: b.names.VMs(), Description: "xenft VMs", History: 1},
		{Bucket: b.names.Groups(), Description: "xenft groups", History: 1},
		{Bucket: b.names.Checkpoints(), Description: "xenft checkpoint catalog", History: 1},
		{Bucket: b.names.Leader(), Description: "xenft supervisor leader lease", History: 1, TTL: b.cfg.LeaderTTL},
		{Bucket: b.names.State(), Description: "xenft supervisor decision state", History: 1, MaxValueSize: 64 << 20},
	}
	for _, kv := range buckets {
		kv.Storage = jetstream.FileStorage
		kv.Replicas = r
		if _, err := b.js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return fmt.Errorf("key-value bucket %s: %w", kv.Bucket, err)
		}
	}
	if _, err := b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      b.names.Images(),
		Description: "xenft checkpoint images",
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	}); err != nil {
		return fmt.Errorf("object store %s: %w", b.names.Images(), err)
	}
	return nil
}

// ErrResourcesMissing is matched (errors.Is) by AwaitResources when the
// stream or a bucket did not appear in time.
var ErrResourcesMissing = errors.New("missing on the bus")

// awaitPoll bounds the pause between two looks of AwaitResources.
const awaitPoll = 2 * time.Second

// AwaitResources waits until the event stream and the named key-value
// buckets (Names; the image object store by Names.Images) exist, for roles
// that may not create them. It returns nil once all exist; when ctx ends
// first, an error matching ErrResourcesMissing that names what is still
// missing; at once, an error matching ErrPermissionDenied if the server
// refuses to let this connection look.
func (b *Bus) AwaitResources(ctx context.Context, buckets ...string) error {
	want := append([]string{b.names.Stream()}, buckets...)
	pause := 100 * time.Millisecond
	logged := false
	for {
		missing, lastErr, err := b.missingResources(ctx, want)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			if logged {
				b.log.Info("stream and buckets ready")
			}
			return nil
		}
		if !logged {
			b.log.Info("waiting for the stream and buckets a supervisor or xenft server creates", "missing", strings.Join(missing, ", "))
			logged = true
		}
		t := wall.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			why := ""
			if lastErr != nil {
				why = " (last error: " + lastErr.Error() + ")"
			}
			return fmt.Errorf("%s: %w%s: a supervisor or xenft server creates them; is one running on this bus?",
				strings.Join(missing, ", "), ErrResourcesMissing, why)
		case <-t.Chan():
		}
		pause = min(2*pause, awaitPoll)
	}
}

// missingResources describes which of want (the stream, then bucket
// names) do not exist. lastErr is the last failure other than "not
// found", which counts as missing too (a server still electing a leader);
// err is a refusal by the server, which waiting will not change.
func (b *Bus) missingResources(ctx context.Context, want []string) (missing []string, lastErr, err error) {
	for i, name := range want {
		stream, what := name, "stream "+name
		switch {
		case i == 0:
		case name == b.names.Images():
			stream, what = "OBJ_"+name, "object store "+name
		default:
			stream, what = "KV_"+name, "key-value bucket "+name
		}
		subject := "$JS.API.STREAM.INFO." + stream
		cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		wctx, refused := b.denied.watch(cctx, subject)
		_, serr := b.js.Stream(wctx, stream)
		denied := refused()
		cancel()
		switch {
		case denied != nil:
			return nil, nil, fmt.Errorf("%s: %w", what, b.deniedError(denied))
		case serr == nil:
			continue
		case !errors.Is(serr, jetstream.ErrStreamNotFound):
			lastErr = serr
		}
		missing = append(missing, what)
	}
	return missing, lastErr, nil
}
