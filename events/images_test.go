package events_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
)

// Reads of the image store go to the stream's leader: nats.go turns direct
// gets on for every object store it creates or updates, and then a
// follower behind a Put answers "not found".
func TestImageStoreReadsFromTheLeaderNotAnyReplica(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx := context.Background()
	stream := func() jetstream.StreamConfig {
		st, err := b.JetStream().Stream(ctx, "OBJ_"+b.Names().Images())
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config
	}
	if stream().AllowDirect {
		t.Fatal("after EnsureResources the image store's stream still allows direct gets")
	}
	// What nats.go does on its own, as a role of an older version would.
	if _, err := b.JetStream().CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: b.Names().Images(), Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if !stream().AllowDirect {
		t.Fatal("nats.go no longer turns direct gets on: this test no longer tests anything")
	}
	if _, err := b.Images(ctx); err != nil {
		t.Fatal(err)
	}
	if stream().AllowDirect {
		t.Fatal("Images opened the store with direct gets on")
	}
}

// The mechanism, seen on the wire: a Stat of an image through the store
// Images opened asks the stream's leader (STREAM.MSG.GET), never any
// replica (DIRECT.GET). (A lagging follower cannot be made to lag on cue
// in a test; the first test shows why the setting holds.)
func TestImageInfoIsReadWithoutDirectGets(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj, err := b.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewNATS(obj)
	put, err := st.Put(ctx, "g/1/vm.img", bytes.NewReader(bytes.Repeat([]byte("xenft"), 1000)))
	if err != nil {
		t.Fatal(err)
	}
	spy := eventstest.Bus(t, s).Conn()
	var direct, leader atomic.Int64
	for subj, n := range map[string]*atomic.Int64{"$JS.API.DIRECT.GET.>": &direct, "$JS.API.STREAM.MSG.GET.>": &leader} {
		sub, err := spy.Subscribe(subj, func(*nats.Msg) { n.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := st.Stat(ctx, "g/1/vm.img")
	if err != nil || got.SHA256 != put.SHA256 {
		t.Fatalf("stat: %+v, %v", got, err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return leader.Load() > 0 }, "no leader read (STREAM.MSG.GET) seen for the Stat")
	if n := direct.Load(); n != 0 {
		t.Fatalf("the Stat made %d direct gets, which any replica may answer", n)
	}
}
