package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/xen"
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
			bus, err := connectWithRetry(ctx, a.cfg.Bus, "xenft-detector-"+a.cfg.Detector.ID, a,
				events.CoalesceReads(a.cfg.Detector.ReadCoalesce))
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

// hostInventory adapts a xen driver to what the beacon reports.
type hostInventory struct{ hv xen.Hypervisor }

var _ detector.HostInventory = hostInventory{}

func (h hostInventory) Domains(ctx context.Context) ([]detector.DomainSummary, error) {
	doms, err := h.hv.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]detector.DomainSummary, len(doms))
	for i, d := range doms {
		out[i] = detector.DomainSummary{Name: d.Name, State: string(d.State), MemoryMiB: d.MemoryMiB}
	}
	return out, nil
}

func (h hostInventory) FreeMemoryMiB(ctx context.Context) (uint64, error) {
	info, err := h.hv.HostInfo(ctx)
	if err != nil {
		return 0, err
	}
	return info.FreeMemoryMiB, nil
}
