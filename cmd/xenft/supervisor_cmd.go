package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/supervisor"
)

func newSupervisorCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "supervisor",
		Short: "Decide and drive: leader lease, coordinated checkpoints (restarts as issue 6 lands)",
		Long: `Several supervisors may run; one holds the lease in the xenft_leader bucket and
acts, the others wait to take over. The leader aborts checkpoints a
predecessor left half done, checkpoints every group on its schedule, and
answers 'xenft checkpoint now'. Runs until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setup(cmd, validateBus, validateStore, func(c Config) error { return c.Supervisor.Validate("supervisor") }); err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runSupervisor(ctx, a)
		},
	}
	cmd.Flags().String("id", "", "this supervisor's id (supervisor.id)")
	a.flagKeys(cmd, map[string]string{"id": "supervisor.id"})
	addBusFlags(a, cmd)
	return cmd
}

func runSupervisor(ctx context.Context, a *app) error {
	bus, err := connectWithRetry(ctx, a.cfg.Bus, "xenft-supervisor-"+a.cfg.Supervisor.ID, a)
	if err != nil {
		return err
	}
	defer bus.Close()
	st, err := openStore(ctx, a.cfg.Store, bus)
	if err != nil {
		return err
	}
	sup, err := supervisor.New(ctx, bus, st, a.cfg.Supervisor, a.log)
	if err != nil {
		return err
	}
	return sup.Run(ctx)
}
