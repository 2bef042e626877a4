package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/events"
)

func newUpCommand(a *app) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything in one process on an embedded NATS server (the demo)",
		Long: `Starts an embedded NATS server with JetStream under ./.xenft (or --data), creates
the event stream and buckets, prints the NATS URL so 'xenft events tail' and
any NATS client can watch from another terminal, and shows events as they come.
Simulated hosts, the detector and the supervisor join this process as their
issues land. Ctrl-C stops cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setup(cmd, validateServer, validateBus); err != nil {
				return err
			}
			cfg := a.cfg
			if dataDir != "" {
				cfg.Server.DataDir = filepath.Join(dataDir, "nats")
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runUp(ctx, a, cfg, cmd)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "data directory (default ./.xenft)")
	cmd.Flags().Int("port", 0, "NATS client port, -1 for any free port (server.port)")
	a.flagKeys(cmd, map[string]string{"port": "server.port"})
	return cmd
}

func runUp(ctx context.Context, a *app, cfg Config, cmd *cobra.Command) error {
	out := cmd.OutOrStdout()
	srv, err := events.StartServer(cfg.Server, a.log, 15*time.Second)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	busCfg := cfg.Bus
	busCfg.ClientName = "xenft-up"
	bus, err := events.Connect(busCfg, a.log, events.InProcess(srv))
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := ensureResources(ctx, bus, a.log); err != nil {
		return err
	}
	fmt.Fprintf(out, "xenft up: embedded NATS with JetStream at %s (data in %s)\n", srv.ClientURL(), cfg.Server.DataDir)
	fmt.Fprintf(out, "  watch from another terminal:  xenft events tail --nats %s\n", srv.ClientURL())
	fmt.Fprintf(out, "  inject a site detector event: xenft event publish --nats %s --type node.fault --subject host/n1 --data '{\"host\":\"n1\",\"severity\":\"degraded\",\"reason\":\"ECC errors\"}'\n", srv.ClientURL())
	fmt.Fprintln(out, "Events (Ctrl-C to stop):")
	fmt.Fprintf(out, "%-24s %-26s %-18s %s\n", "TIME", "TYPE", "SUBJECT", "DATA")
	err = bus.Tail(ctx, events.TailConfig{Since: time.Now().Add(-time.Hour)}, func(_ context.Context, ev events.Event, _ events.Meta) error {
		fmt.Fprintf(out, "%-24s %-26s %-18s %s\n", ev.Time.Local().Format("2006-01-02 15:04:05.000"), ev.Type.Short(), ev.Subject, summarize(ev.Data))
		return nil
	})
	if err != nil && err != events.ErrStopped {
		return err
	}
	fmt.Fprintln(out, "xenft up: stopped")
	return nil
}
