package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
)

// startServers starts n embedded servers under dir (one, or a 3-node cluster
// routed the way configs/cluster/*.yaml is) and returns them with a stop
// function that shuts down every one started, also on failure; calling it
// again does nothing.
func startServers(n int, dir string, log hclog.Logger) ([]*embedded.Server, func(), error) {
	var servers []*embedded.Server
	stop := sync.OnceFunc(func() {
		for _, s := range servers {
			s.Shutdown()
		}
	})
	if n == 1 {
		cfg := embedded.DefaultConfig()
		cfg.Name, cfg.Port, cfg.DataDir = "lease", -1, filepath.Join(dir, "n1")
		s, err := embedded.Start(cfg, log, 10*time.Second)
		if err != nil {
			return nil, stop, err
		}
		servers = append(servers, s)
		return servers, stop, nil
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, stop, err
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i, p := range ports {
		cfg := embedded.DefaultConfig()
		cfg.Name, cfg.Port = fmt.Sprintf("n%d", i+1), -1
		cfg.DataDir = filepath.Join(dir, cfg.Name)
		cfg.Cluster = embedded.ClusterConfig{Name: "xenft", Host: "127.0.0.1", Port: p, Routes: routes}
		s, err := embedded.Start(cfg, log, 10*time.Second)
		if err != nil {
			return nil, stop, fmt.Errorf("start %s: %w", cfg.Name, err)
		}
		servers = append(servers, s)
	}
	for _, s := range servers {
		if err := s.WaitJetStream(30 * time.Second); err != nil {
			return nil, stop, fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	return servers, stop, nil
}

// freePorts reserves n loopback ports by listening and closing: routes must
// name every node's port before any node starts.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ensureResources creates xenft's stream, buckets and object store with
// replicas = len(servers), as every role does at start, and waits until the
// hosts bucket takes a put. A new cluster's meta leader may still be
// settling, so both are retried, each attempt bounded, for up to a minute.
func ensureResources(ctx context.Context, servers []*embedded.Server, log hclog.Logger) error {
	cfg := events.DefaultBusConfig()
	cfg.URLs, cfg.ClientName, cfg.Replicas = nil, "bench-lease-setup", len(servers)
	for _, s := range servers {
		cfg.URLs = append(cfg.URLs, s.ClientURL())
	}
	b, err := events.Connect(cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		last = tryResources(ctx, b)
		if last == nil {
			return nil
		}
		pause(ctx, 250*time.Millisecond)
	}
	return fmt.Errorf("stream and buckets not ready within a minute: %w", last)
}

func tryResources(ctx context.Context, b *events.Bus) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.EnsureResources(ctx); err != nil {
		return err
	}
	kv, err := b.KV(ctx, b.Names().Hosts())
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, "bench-setup", []byte("{}"))
	return err
}
