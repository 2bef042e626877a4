package main

import (
	"github.com/spf13/cobra"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
)

func newDetectorCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "detector",
		Short: "Turn heartbeats into node.suspect/failed/recovered events; run plug-in detectors",
		Long: `Watches every agent's heartbeats and publishes node.suspect, node.failed and
node.recovered (phi accrual; see docs/detectors.md), and runs the site plug-in
detectors of detector.plugins, publishing node.fault. Run two or more: the same
transition from several detectors is stored once. Runs until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setup(cmd, validateBus, func(c Config) error { return c.Detector.Validate("detector") }); err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			// 10,000 beats a second cost a read each when read as they
			// come; detector.read_coalesce takes dozens per read.
			bus, err := connectWithRetry(ctx, a.cfg.Bus, "xenft-detector-"+a.cfg.Detector.ID, a, await(),
				events.CoalesceReads(a.cfg.Detector.ReadCoalesce), events.As(events.RoleDetector, a.cfg.Detector.ID))
			if err != nil {
				return err
			}
			defer bus.Close()
			m, err := detector.NewMonitor(bus, a.cfg.Detector, a.log)
			if err != nil {
				return err
			}
			return m.Run(ctx)
		},
	}
	cmd.Flags().String("id", "", "this detector's id (detector.id)")
	a.flagKeys(cmd, map[string]string{"id": "detector.id"})
	addBusFlags(a, cmd)
	return cmd
}
