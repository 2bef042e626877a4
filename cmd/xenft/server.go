package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
	"github.com/xenft/xenft/events/embedded"
)

func newServerCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an embedded NATS server with JetStream (one node, or one of a cluster)",
		Long: `Runs a NATS server with JetStream in this process, for sites without a NATS of
their own. Alone it serves one machine; with server.cluster set (see
configs/cluster/) three servers replicate the event stream and buckets
(bus.replicas: 3). It creates the stream, buckets and object store, prints the
client URL, and runs until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setup(cmd, validateServer, validateBus); err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runServer(ctx, a.cfg, a.log, func(url string) {
				fmt.Fprintf(cmd.OutOrStdout(), "xenft server %s ready: %s\n", a.cfg.Server.Name, url)
			})
		},
	}
	f := cmd.Flags()
	f.String("name", "", "server name, unique in a cluster (server.name)")
	f.String("host", "", "client listen address (server.host)")
	f.Int("port", 0, "client port, -1 for any free port (server.port)")
	f.String("data", "", "JetStream data directory (server.data_dir)")
	f.Int("monitor-port", 0, "HTTP monitoring port, 0 for none (server.monitor_port)")
	f.String("sync", "", `when JetStream writes reach the disk: "always" (default) or an interval such as 2m (server.sync)`)
	f.String("cluster-name", "", "cluster name; empty for a single server (server.cluster.name)")
	f.Int("cluster-port", 0, "cluster route port (server.cluster.port)")
	f.StringSlice("routes", nil, "routes to the other servers, nats-route://host:port (server.cluster.routes)")
	a.flagKeys(cmd, map[string]string{
		"name": "server.name", "host": "server.host", "port": "server.port", "data": "server.data_dir",
		"monitor-port": "server.monitor_port", "sync": "server.sync", "cluster-name": "server.cluster.name",
		"cluster-port": "server.cluster.port", "routes": "server.cluster.routes",
	})
	return cmd
}

// runServer starts the embedded server, creates the bus resources (retrying
// while a cluster forms), calls ready with the client URL and serves until ctx
// ends.
func runServer(ctx context.Context, cfg Config, log hclog.Logger, ready func(url string)) error {
	if err := identitiesMatchPrefix(cfg); err != nil {
		return err
	}
	srv, err := embedded.Start(cfg.Server, log, 15*time.Second)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	if cfg.Server.Cluster.Name != "" {
		// Creating R3 resources before a meta leader exists only times out;
		// wait for the cluster first (ensureResources still retries after).
		if err := srv.WaitJetStream(30 * time.Second); err != nil {
			log.Warn("cluster not formed yet", "error", err)
		}
	}
	busCfg := cfg.Bus
	busCfg.ClientName = "xenft-server-" + cfg.Server.Name
	bus, err := srv.ConnectOwner(busCfg, log)
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := ensureResources(ctx, bus, log); err != nil {
		return err
	}
	ready(srv.ClientURL())
	<-ctx.Done()
	log.Info("stopping server", "name", cfg.Server.Name)
	return nil
}

// identitiesMatchPrefix checks that server.auth.identities was issued for
// bus.prefix: its permissions name the prefix's subjects.
func identitiesMatchPrefix(cfg Config) error {
	if cfg.Server.Auth.Identities == "" {
		return nil
	}
	f, err := auth.Load(cfg.Server.Auth.Identities)
	if err != nil {
		return fmt.Errorf("server.auth.identities: %w", err)
	}
	if f.Prefix != cfg.Bus.Prefix {
		return fmt.Errorf("server.auth.identities: %s was issued for prefix %q, but bus.prefix is %q", cfg.Server.Auth.Identities, f.Prefix, cfg.Bus.Prefix)
	}
	return nil
}

// ensureResources creates the stream and buckets, retrying with backoff until
// ctx ends: in a cluster the replicas are placed only once enough servers have
// joined, which may take a while after the first one starts.
func ensureResources(ctx context.Context, bus *events.Bus, log hclog.Logger) error {
	lastErr := ""
	op := func() error {
		err := bus.EnsureResources(ctx)
		if err != nil && err.Error() != lastErr {
			log.Warn("cannot create stream and buckets yet, retrying", "error", err)
			lastErr = err.Error()
		}
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0 // until ctx ends
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return fmt.Errorf("create stream and buckets: %w", err)
	}
	if lastErr != "" {
		log.Info("stream and buckets ready")
	}
	return nil
}
