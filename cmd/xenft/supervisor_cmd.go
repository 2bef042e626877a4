package main

import (
	"context"

	"github.com/xenft/xenft/events"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/supervisor"
)

func newSupervisorCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "supervisor",
		Short: "Decide and drive: leader lease, fencing, group rollback, restarts, coordinated checkpoints",
		Long: `Several supervisors may run; one holds the lease in the xenft_leader bucket and
acts, the others wait to take over. The leader runs the decision core: it
consumes node and VM events, fences failed hosts (supervisor.fence_command, or
the agents' self-fence deadline), rolls whole groups back to their latest
verified checkpoint and restarts them on healthy hosts; it aborts checkpoints a
predecessor left half done, checkpoints every group on its schedule, and
answers 'xenft checkpoint now'. Its state lives in the xenft_state bucket, so a
successor resumes what it was doing. Runs until SIGINT or SIGTERM.`,
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
	// The supervisor creates the stream and buckets (or updates their
	// limits): its credential may, the other roles' may not.
	as := events.As(events.RoleSupervisor, a.cfg.Supervisor.ID)
	bus, err := connectWithRetry(ctx, a.cfg.Bus, "xenft-supervisor-"+a.cfg.Supervisor.ID, a, ensure, as)
	if err != nil {
		return err
	}
	defer bus.Close()
	st, closeStore, err := openRoleStore(ctx, a.cfg.Store, a.cfg.Bus, "xenft-supervisor-"+a.cfg.Supervisor.ID, a, as)
	if err != nil {
		return err
	}
	defer closeStore()
	sup, err := supervisor.New(ctx, bus, st, a.cfg.Supervisor, a.log)
	if err != nil {
		return err
	}
	return sup.Run(ctx)
}
