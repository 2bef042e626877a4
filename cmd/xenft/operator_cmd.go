package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/supervisor"
)

func newHostCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "Take hosts out of placement, release quarantined hosts"}
	var drain bool
	var reason string
	maint := a.operatorCommand(&cobra.Command{
		Use:   "maintenance HOST on|off",
		Short: "Take a host out of placement (on) or return it (off); --drain moves its VMs first",
		Long: `With on, the supervisor places nothing new on HOST; with --drain it also restarts
every VM running there on other hosts, from a checkpoint taken just before
(each VM's whole group moves together). off returns the host to placement.`,
		Example: `  xenft host maintenance n3 on --drain --reason "BIOS update"
  xenft host maintenance n3 off`,
		Args: cobra.ExactArgs(2),
	}, func(args []string) (supervisor.OperatorRequest, string, error) {
		var on bool
		switch args[1] {
		case "on":
			on = true
		case "off":
		default:
			return supervisor.OperatorRequest{}, "", usageErrorf("maintenance: %q is not on or off", args[1])
		}
		return supervisor.OperatorRequest{Op: supervisor.OpMaintenance, Host: args[0], On: on, Drain: drain, Reason: reason},
			fmt.Sprintf("host %s: maintenance %s", args[0], args[1]), nil
	})
	maint.Flags().BoolVar(&drain, "drain", false, "with on: move the host's VMs elsewhere first")
	maint.Flags().StringVar(&reason, "reason", "", "why (recorded in node.maintenance)")
	release := a.operatorCommand(&cobra.Command{Use: "release HOST", Short: "Return a quarantined (flapping) host to placement (until then it is only a last resort)", Args: cobra.ExactArgs(1)},
		func(args []string) (supervisor.OperatorRequest, string, error) {
			return supervisor.OperatorRequest{Op: supervisor.OpRelease, Host: args[0]}, "host " + args[0] + ": released", nil
		})
	cmd.AddCommand(maint, release)
	return cmd
}

func newRestartsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "restarts", Short: "Control the storm guard"}
	resume := a.operatorCommand(&cobra.Command{Use: "resume", Short: "Resume restarts the storm guard paused (when you know the supervisor is not cut off)", Args: cobra.NoArgs},
		func([]string) (supervisor.OperatorRequest, string, error) {
			return supervisor.OperatorRequest{Op: supervisor.OpResume}, "restarts resumed", nil
		})
	cmd.AddCommand(resume)
	return cmd
}

// vmOperatorCommands are added under `xenft vm`.
func vmOperatorCommands(a *app) []*cobra.Command {
	restart := a.operatorCommand(&cobra.Command{Use: "restart VM", Short: "Recover a VM again (e.g. one reported unrecoverable) with its group", Args: cobra.ExactArgs(1)},
		func(args []string) (supervisor.OperatorRequest, string, error) {
			return supervisor.OperatorRequest{Op: supervisor.OpRestartVM, VM: args[0]}, "vm " + args[0] + ": restart requested", nil
		})
	var to string
	move := a.operatorCommand(&cobra.Command{Use: "move VM --to HOST", Short: "Move a VM (with its group, from a fresh checkpoint) to a host", Args: cobra.ExactArgs(1)},
		func(args []string) (supervisor.OperatorRequest, string, error) {
			if to == "" {
				return supervisor.OperatorRequest{}, "", usageErrorf("--to: required")
			}
			return supervisor.OperatorRequest{Op: supervisor.OpMoveVM, VM: args[0], Host: to}, "vm " + args[0] + ": move to " + to + " requested", nil
		})
	move.Flags().StringVar(&to, "to", "", "target host")
	return []*cobra.Command{restart, move}
}
