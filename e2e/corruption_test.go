//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// One server's JetStream files are damaged while it is down, as a failing
// disk or a bad controller would leave them: bytes flipped in the middle of
// every message block (the buckets holding the leases, the decision state,
// the catalog, the events stream, the image store, and the Raft logs that
// replicate them) and one block of the events stream cut short. The server
// comes back on them.
//
// What xenft needs from the bus after that: the damaged replica must not
// answer reads with what it lost or garbled. JetStream checks each record's
// checksum as it loads a block, drops what fails, and catches up from the
// two healthy replicas. The test holds xenft to it: read through the damaged
// server alone, the catalog and the registrations say what the healthy
// servers say; every group's latest checkpoint is still the one committed
// before and still verifies; nothing failed, fenced or restarted; and a new
// checkpoint commits.
func TestACorruptedMinorityReplicaIsRepairedFromTheOthers(t *testing.T) {
	c := newCluster(t, options{fencing: defaultFencing})
	cuts := c.checkpointAll()
	from := c.story.mark()
	victim := c.streamLeader("KV_" + c.bus.Names().Checkpoints())
	c.kill(victim)
	damaged := c.corruptStore(victim)
	if damaged == 0 {
		t.Fatalf("nothing to damage in %s's store", victim)
	}
	c.startServer(c.server(victim))
	c.waitReplicated()
	c.logf("%s is back on its damaged store and every stream has three current replicas", victim)
	for _, st := range []string{"OBJ_" + c.bus.Names().Images(), "KV_" + c.bus.Names().Checkpoints(), c.bus.Names().Stream()} {
		c.logf("stream %s is led by %s", st, c.streamLeader(st))
	}

	stable := []string{c.bus.Names().Checkpoints(), c.bus.Names().VMs(), c.bus.Names().Groups()}
	var diff string
	c.eventually(60*time.Second, func() bool {
		diff = c.replicaDiff(victim, stable)
		return diff == ""
	}, func() string { return fmt.Sprintf("%s answers differently from the healthy servers: %s", victim, diff) })
	for g, ck := range cuts {
		if got := c.latestVerified(g); got.Seq != ck.Seq {
			t.Errorf("the latest verified checkpoint of %s is %d after the damage, was %d", g, got.Seq, ck.Seq)
		}
	}
	c.story.never(from, on(events.TypeNodeFailed, ""), on(events.TypeNodeFenced, ""), on(events.TypeVMRestarting, ""),
		on(events.TypeVMUnrecoverable, ""))
	running := c.runsExactlyOnce(vmNames(), stableFor, recoveryTimeout)
	c.untouched(running, vmNames()...)
	rec := c.checkpoint("mpi")
	if got := c.latestVerified("mpi"); got.Seq != rec.Seq {
		t.Fatalf("checkpoint mpi/%d committed after the damage, but the latest verified is %d", rec.Seq, got.Seq)
	}
}

// server is the natsNode named name.
func (c *cluster) server(name string) natsNode {
	c.t.Helper()
	for _, s := range c.servers {
		if s.name == name {
			return s
		}
	}
	c.t.Fatalf("no server %s", name)
	return natsNode{}
}

// corruptStore damages the JetStream files of a stopped server: in every
// message block of 64 bytes or more, four bytes spread through its middle
// are inverted; the largest block of the events stream is also cut to half
// its length. It returns how many files it damaged and logs each.
func (c *cluster) corruptStore(server string) int {
	c.t.Helper()
	root := filepath.Join(c.dir, server+"-data", "jetstream")
	var blocks []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".blk") {
			blocks = append(blocks, path)
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("walk %s: %v", root, err)
	}
	sort.Strings(blocks)
	damaged := 0
	var cut string
	var cutSize int64
	for _, p := range blocks {
		b, err := os.ReadFile(p)
		if err != nil {
			c.t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if strings.Contains(rel, "/streams/"+c.bus.Names().Stream()+"/") && int64(len(b)) > cutSize {
			cut, cutSize = p, int64(len(b))
		}
		if len(b) < 64 {
			continue
		}
		for i := 1; i <= 4; i++ {
			b[len(b)*i/5] ^= 0xff
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			c.t.Fatal(err)
		}
		damaged++
		c.logf("damaged %s (%d bytes): 4 bytes inverted", rel, len(b))
	}
	if cut != "" {
		if err := os.Truncate(cut, cutSize/2); err != nil {
			c.t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, cut)
		c.logf("cut %s from %d to %d bytes", rel, cutSize, cutSize/2)
	}
	return damaged
}

// replicaDiff reads every key of the buckets through a connection to
// server alone and through the test's own connection to all three, and
// describes the first difference ("" when they agree). Buckets allow direct
// gets, which any replica answers: a connection to one server is answered
// by that server's replica.
func (c *cluster) replicaDiff(server string, buckets []string) string {
	c.t.Helper()
	cfg := c.bus.Config()
	cfg.URLs, cfg.ClientName = []string{c.server(server).url()}, "e2e-replica-"+server
	one, err := events.Connect(cfg, eventstest.Logger(c.t, hclog.Warn))
	if err != nil {
		return fmt.Sprintf("connect to %s: %v", server, err)
	}
	defer one.Close()
	for _, bucket := range buckets {
		want, err := bucketContents(c.bus, bucket)
		if err != nil {
			return err.Error()
		}
		got, err := bucketContents(one, bucket)
		if err != nil {
			return err.Error()
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if !bytes.Equal(want[k], got[k]) {
				return fmt.Sprintf("%s/%s: %q, the others %q", bucket, k, got[k], want[k])
			}
		}
		if len(got) != len(want) {
			return fmt.Sprintf("%s: %d keys, the others %d", bucket, len(got), len(want))
		}
	}
	return ""
}

// bucketContents reads every key and value of a bucket.
func bucketContents(b *events.Bus, bucket string) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := b.KV(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys of %s: %w", bucket, err)
	}
	out := map[string][]byte{}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", bucket, k, err)
		}
		out[k] = e.Value()
	}
	return out, nil
}
