package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
)

func newVMCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Register, list, restart and move the VMs xenft protects"}
	var spec supervisor.VMSpec
	var policy string
	add := a.busCommand(&cobra.Command{
		Use:   "add NAME",
		Short: "Register a VM (or update it)",
		Example: `  xenft vm add mpi-0 --group mpi --host n1 --memory 2048 --policy restore
  xenft vm add web --host n2 --memory 1024 --priority 10 --policy restore-or-cold --config /etc/xen/web.cfg`,
		Args: cobra.ExactArgs(1),
	}, busCall{
		check: func(_ *cobra.Command, args []string) error {
			spec.Name, spec.Policy = args[0], core.RestartPolicy(policy)
			if err := spec.Validate(); err != nil {
				return usageErrorf("vm %s: %v", spec.Name, oneLine(err.Error()))
			}
			return nil
		},
		run: withInventory(func(cmd *cobra.Command, _ []string, inv *supervisor.Inventory) error {
			if err := inv.PutVM(cmd.Context(), spec); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registered vm %s (group %s, host %s, %d MiB, policy %s)\n", spec.Name, spec.GroupName(), spec.Host, spec.MemoryMiB, spec.Policy)
			return nil
		}),
	})
	f := add.Flags()
	f.StringVar(&spec.Group, "group", "", "group that rolls back together (default: the VM alone)")
	f.StringVar(&spec.Host, "host", "", "host it runs on now")
	f.Int64Var(&spec.MemoryMiB, "memory", 0, "memory in MiB (required)")
	f.IntVar(&spec.Priority, "priority", 0, "higher is restarted first")
	f.StringVar(&policy, "policy", string(core.PolicyRestore), "restore, restore-or-cold or none")
	f.StringVar(&spec.ConfigPath, "config", "", "xl configuration on the hosts (for cold starts)")

	var asJSON bool
	list := a.busCommand(&cobra.Command{Use: "list", Short: "List registered VMs", Args: cobra.NoArgs}, busCall{
		run: withInventory(func(cmd *cobra.Command, _ []string, inv *supervisor.Inventory) error {
			vms, err := inv.VMs(cmd.Context())
			if err != nil {
				return err
			}
			return printVMs(cmd.OutOrStdout(), vms, asJSON)
		}),
	})
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	remove := a.busCommand(&cobra.Command{Use: "remove NAME", Short: "Stop protecting a VM (the domain itself is left alone)", Args: cobra.ExactArgs(1)}, busCall{
		run: withInventory(func(cmd *cobra.Command, args []string, inv *supervisor.Inventory) error {
			return inv.DeleteVM(cmd.Context(), args[0])
		}),
	})
	cmd.AddCommand(add, list, remove)
	cmd.AddCommand(vmOperatorCommands(a)...)
	return cmd
}

func printVMs(out io.Writer, vms []supervisor.VMSpec, asJSON bool) error {
	if asJSON {
		if vms == nil {
			vms = []supervisor.VMSpec{}
		}
		return json.NewEncoder(out).Encode(vms)
	}
	fmt.Fprintf(out, "%-20s %-16s %-12s %8s %8s %s\n", "VM", "GROUP", "HOST", "MEM MiB", "PRIORITY", "POLICY")
	for _, v := range vms {
		fmt.Fprintf(out, "%-20s %-16s %-12s %8d %8d %s\n", v.Name, v.GroupName(), v.Host, v.MemoryMiB, v.Priority, v.Policy)
	}
	return nil
}

func newGroupCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Set how a group of VMs is checkpointed"}
	var g supervisor.GroupSettings
	var interval time.Duration
	var resume string
	set := a.busCommand(&cobra.Command{
		Use:     "set NAME",
		Short:   "Set a group's checkpoint interval, resume mode and retention",
		Example: `  xenft group set mpi --interval 10m --resume after-all --retain 3`,
		Args:    cobra.ExactArgs(1),
	}, busCall{
		check: func(_ *cobra.Command, args []string) error {
			g.Name, g.CheckpointInterval = args[0], supervisor.Duration(interval)
			switch resume {
			case "after-all":
			case "early":
				g.ResumeEarly = true
			default:
				return usageErrorf("--resume: %q is not one of after-all, early", resume)
			}
			if err := g.Validate(); err != nil {
				return usageErrorf("group %s: %v", g.Name, oneLine(err.Error()))
			}
			return nil
		},
		run: withInventory(func(cmd *cobra.Command, _ []string, inv *supervisor.Inventory) error {
			if err := inv.PutGroup(cmd.Context(), g); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "group %s: checkpoint every %s, resume %s, retain %d\n", g.Name, interval, resume, g.Retain)
			return nil
		}),
	})
	set.Flags().DurationVar(&interval, "interval", 5*time.Minute, "time between checkpoints; 0 for on demand only")
	set.Flags().StringVar(&resume, "resume", "after-all", "after-all (safe) or early (less downtime)")
	set.Flags().IntVar(&g.Retain, "retain", 0, "committed checkpoints to keep (0: the supervisor's default)")
	cmd.AddCommand(set)
	return cmd
}
