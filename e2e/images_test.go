//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// corruptImage flips one byte in the middle of an image in the object
// store and keeps the checksum xenft recorded for it, as bit rot in the
// store would: the object store's own digest is recomputed by the
// rewrite, so only xenft's end-to-end check (catalog and store records
// against what is read) can notice.
func (c *cluster) corruptImage(key string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obj, err := c.bus.Images(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	// Right after the commit, the replica that answers first may not have
	// the image yet ("object not found", seen here): ask again, as the
	// store's Open does.
	var info *jetstream.ObjectInfo
	var data []byte
	c.eventually(10*time.Second, func() bool {
		if info, err = obj.GetInfo(ctx, key); err == nil {
			data, err = obj.GetBytes(ctx, key)
		}
		return err == nil
	}, func() string { return fmt.Sprintf("read image %s: %v", key, err) })
	data[len(data)/2] ^= 0xff
	// One Put with the recorded checksum, not a Put and an UpdateMeta: the
	// latter reads the info first, from any replica, and one still holding
	// the old object's info made it write that back, pointing at the
	// chunks the Put had purged (the image then could not be read at all).
	meta := jetstream.ObjectMeta{Name: key, Opts: info.Opts, Metadata: maps.Clone(info.Metadata)}
	if _, err := obj.Put(ctx, meta, bytes.NewReader(data)); err != nil {
		c.t.Fatalf("rewrite image %s: %v", key, err)
	}
	c.logf("image %s corrupted: byte %d flipped, recorded checksum kept", key, len(data)/2)
}

// imagesUnder lists the images the store holds under prefix.
func (c *cluster) imagesUnder(prefix string) []string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	infos, err := c.images.List(ctx, prefix)
	if err != nil {
		c.t.Fatalf("list images under %s: %v", prefix, err)
	}
	var keys []string
	for _, i := range infos {
		keys = append(keys, i.Key)
	}
	return keys
}
