package events_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/events/eventstest"
)

// startCluster starts three embedded servers on loopback, each with routes to
// all three, the shape of configs/cluster/*.yaml.
func startCluster(t *testing.T) []*embedded.Server {
	t.Helper()
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*embedded.Server
	for i, p := range ports {
		cfg := embedded.DefaultConfig()
		cfg.Name = fmt.Sprintf("n%d", i+1)
		cfg.Port = -1
		cfg.DataDir = t.TempDir()
		cfg.Cluster = embedded.ClusterConfig{Name: "xenft", Host: "127.0.0.1", Port: p, Routes: routes}
		s, err := embedded.Start(cfg, eventstest.Logger(t, hclog.Error), 10*time.Second)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.Name, err)
		}
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	for _, s := range servers {
		if err := s.WaitJetStream(30 * time.Second); err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
	}
	return servers
}

// freePorts reserves n loopback ports by listening and closing; routes must
// name every node's port before any node starts.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

func TestClusterR3BucketLosesNothingAckedWhenAServerStops(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster formation takes seconds; skipped with -short")
	}
	servers := startCluster(t)
	cfg := events.DefaultBusConfig()
	cfg.Replicas = 3
	cfg.RequestTimeout = 10 * time.Second
	cfg.URLs = nil
	for _, s := range servers {
		cfg.URLs = append(cfg.URLs, s.ClientURL())
	}
	b, err := events.Connect(cfg, eventstest.Logger(t, hclog.Error))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The meta leader may still be settling: creating R3 resources is retried.
	eventstest.Eventually(t, 30*time.Second, func() bool { return b.EnsureResources(ctx) == nil }, "R3 resources never created")
	kv, err := b.KV(ctx, b.Names().VMs())
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]uint64{}
	for i := 0; i < 50; i++ {
		key := fmt.Sprintf("vm-%02d", i)
		rev, err := kv.Put(ctx, key, []byte(key))
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		acked[key] = rev
	}

	// Stop the server that leads the bucket's stream: the hardest case.
	st, err := b.JetStream().Stream(ctx, "KV_"+b.Names().VMs())
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("bucket stream replicas=%d cluster=%v, want R3", info.Config.Replicas, info.Cluster)
	}
	leader := info.Cluster.Leader
	stopped := false
	for _, s := range servers {
		if s.Name() == leader {
			s.Shutdown()
			stopped = true
		}
	}
	if !stopped {
		t.Fatalf("stream leader %q is none of the servers", leader)
	}

	// Writes continue once the two survivors elect a new leader...
	var lastErr error
	deadline := time.Now().Add(45 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		_, lastErr = kv.Put(pctx, "after-stop", []byte("x"))
		pcancel()
		if lastErr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted within 45s after stopping %s; last error: %v", leader, lastErr)
		}
	}
	// ...and nothing that was acknowledged before is lost.
	for key, rev := range acked {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s after stopping %s: %v", key, leader, err)
		}
		if string(e.Value()) != key || e.Revision() != rev {
			t.Fatalf("%s = %q rev %d, want %q rev %d", key, e.Value(), e.Revision(), key, rev)
		}
	}
	// A compare-and-set write works too: the supervisor depends on it.
	e, _ := kv.Get(ctx, "vm-00")
	if _, err := kv.Update(ctx, "vm-00", []byte("moved"), e.Revision()); err != nil {
		t.Fatalf("CAS update after failover: %v", err)
	}
	if _, err := kv.Update(ctx, "vm-00", []byte("stale"), e.Revision()); err == nil {
		t.Fatal("CAS with a stale revision succeeded")
	} else if !isRevisionMismatch(err) {
		t.Fatalf("stale CAS error = %v, want a revision mismatch", err)
	}
}

func isRevisionMismatch(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}
