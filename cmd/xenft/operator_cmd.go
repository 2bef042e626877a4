package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor"
)

// operate sends one operator request to the leading supervisor.
func operate(cmd *cobra.Command, a *app, req supervisor.OperatorRequest, done string) error {
	if err := a.setup(cmd, validateBus); err != nil {
		return err
	}
	if req.By == "" {
		if u := os.Getenv("USER"); u != "" {
			req.By = u
		} else {
			req.By = "xenft-cli"
		}
	}
	return withBus(cmd.Context(), a, func(bus *events.Bus) error {
		if err := supervisor.RequestOperator(cmd.Context(), bus, req, 30*time.Second); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), done)
		return nil
	})
}

func newHostCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "Take hosts out of placement, release quarantined hosts"}
	var drain bool
	var reason string
	maint := &cobra.Command{
		Use:   "maintenance HOST on|off",
		Short: "Take a host out of placement (on) or return it (off); --drain moves its VMs first",
		Long: `With on, the supervisor places nothing new on HOST; with --drain it also restarts
every VM running there on other hosts, from a checkpoint taken just before
(each VM's whole group moves together). off returns the host to placement.`,
		Example: `  xenft host maintenance n3 on --drain --reason "BIOS update"
  xenft host maintenance n3 off`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var on bool
			switch args[1] {
			case "on":
				on = true
			case "off":
			default:
				return usageErrorf("maintenance: %q is not on or off", args[1])
			}
			return operate(cmd, a, supervisor.OperatorRequest{Op: supervisor.OpMaintenance, Host: args[0], On: on, Drain: drain, Reason: reason},
				fmt.Sprintf("host %s: maintenance %s", args[0], args[1]))
		},
	}
	maint.Flags().BoolVar(&drain, "drain", false, "with on: move the host's VMs elsewhere first")
	maint.Flags().StringVar(&reason, "reason", "", "why (recorded in node.maintenance)")
	addBusFlags(a, maint)
	release := &cobra.Command{
		Use:   "release HOST",
		Short: "Return a quarantined (flapping) host to placement (until then it is only a last resort)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return operate(cmd, a, supervisor.OperatorRequest{Op: supervisor.OpRelease, Host: args[0]}, "host "+args[0]+": released")
		},
	}
	addBusFlags(a, release)
	cmd.AddCommand(maint, release)
	return cmd
}

func newRestartsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "restarts", Short: "Control the storm guard"}
	resume := &cobra.Command{
		Use:   "resume",
		Short: "Resume restarts the storm guard paused (when you know the supervisor is not cut off)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return operate(cmd, a, supervisor.OperatorRequest{Op: supervisor.OpResume}, "restarts resumed")
		},
	}
	addBusFlags(a, resume)
	cmd.AddCommand(resume)
	return cmd
}

// vmOperatorCommands are added under `xenft vm`.
func vmOperatorCommands(a *app) []*cobra.Command {
	restart := &cobra.Command{
		Use:   "restart VM",
		Short: "Recover a VM again (e.g. one reported unrecoverable) with its group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return operate(cmd, a, supervisor.OperatorRequest{Op: supervisor.OpRestartVM, VM: args[0]}, "vm "+args[0]+": restart requested")
		},
	}
	addBusFlags(a, restart)
	var to string
	move := &cobra.Command{
		Use:   "move VM --to HOST",
		Short: "Move a VM (with its group, from a fresh checkpoint) to a host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageErrorf("--to: required")
			}
			return operate(cmd, a, supervisor.OperatorRequest{Op: supervisor.OpMoveVM, VM: args[0], Host: to}, "vm "+args[0]+": move to "+to+" requested")
		},
	}
	move.Flags().StringVar(&to, "to", "", "target host")
	addBusFlags(a, move)
	return []*cobra.Command{restart, move}
}
