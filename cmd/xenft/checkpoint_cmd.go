package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor"
)

func newCheckpointCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "checkpoint", Short: "Take, list, show and verify coordinated checkpoints"}
	cmd.AddCommand(newCheckpointNowCommand(a), newCheckpointListCommand(a), newCheckpointShowCommand(a), newCheckpointVerifyCommand(a))
	return cmd
}

// newCheckpointNowCommand is `xenft checkpoint now`.
func newCheckpointNowCommand(a *app) *cobra.Command {
	var group string
	var wait bool
	var timeout time.Duration
	now := a.busCommand(&cobra.Command{Use: "now", Short: "Ask the leading supervisor for a checkpoint of a group now", Args: cobra.NoArgs}, busCall{
		check: func(*cobra.Command, []string) error {
			if group == "" {
				return usageErrorf("--group: required")
			}
			return nil
		},
		run: func(cmd *cobra.Command, _ []string, bus *events.Bus) error {
			rep, err := supervisor.RequestCheckpoint(cmd.Context(), bus, group, wait, timeout)
			if err != nil {
				return err
			}
			if rep.Record == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "checkpoint of %s started (see: xenft checkpoint list --group %s)\n", group, group)
				return nil
			}
			r := rep.Record
			fmt.Fprintf(cmd.OutOrStdout(), "checkpoint %s/%d committed: %d members, %s\n", r.Group, r.Seq, len(r.Members), r.Updated.Sub(r.Created).Round(time.Millisecond))
			return nil
		},
	})
	now.Flags().StringVar(&group, "group", "", "group to checkpoint (required)")
	now.Flags().BoolVar(&wait, "wait", false, "wait until it is committed or aborted")
	now.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long to wait with --wait")
	return now
}

// newCheckpointListCommand is `xenft checkpoint list`.
func newCheckpointListCommand(a *app) *cobra.Command {
	var listGroup string
	var asJSON bool
	list := a.busCommand(&cobra.Command{Use: "list", Short: "List checkpoints (all groups, or --group)", Args: cobra.NoArgs}, busCall{
		run: withCatalog(func(cmd *cobra.Command, _ []string, cat *checkpointer.Catalog, _ *events.Bus) error {
			groups := []string{listGroup}
			if listGroup == "" {
				var err error
				if groups, err = cat.Groups(cmd.Context()); err != nil {
					return err
				}
			}
			var all []checkpointer.Record
			for _, g := range groups {
				recs, err := cat.List(cmd.Context(), g)
				if err != nil {
					return err
				}
				all = append(all, recs...)
			}
			return printRecords(cmd.OutOrStdout(), all, asJSON)
		}),
	})
	list.Flags().StringVar(&listGroup, "group", "", "only this group")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return list
}

// newCheckpointShowCommand is `xenft checkpoint show`.
func newCheckpointShowCommand(a *app) *cobra.Command {
	var showJSON bool
	var group string
	var seq uint64
	show := a.busCommand(&cobra.Command{
		Use:   "show GROUP [SEQ]",
		Short: "Show one checkpoint and its images (GROUP SEQ, GROUP/SEQ as list prints it, or GROUP for its latest committed)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageErrorf("want GROUP SEQ, GROUP/SEQ or GROUP, got %d arguments", len(args))
			}
			return nil
		},
	}, busCall{
		check: func(_ *cobra.Command, args []string) (err error) {
			group, seq, err = parseCheckpointRef(args)
			return err
		},
		run: withCatalog(func(cmd *cobra.Command, _ []string, cat *checkpointer.Catalog, _ *events.Bus) error {
			var r checkpointer.Record
			var err error
			if seq == 0 {
				r, err = cat.Latest(cmd.Context(), group)
			} else {
				r, err = cat.Get(cmd.Context(), group, seq)
			}
			if err != nil {
				return err
			}
			return printReply(cmd.OutOrStdout(), showJSON, r, func(out io.Writer) { printRecord(out, r) })
		}),
	})
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	return show
}

// newCheckpointVerifyCommand is `xenft checkpoint verify`.
func newCheckpointVerifyCommand(a *app) *cobra.Command {
	verify := a.busCommand(&cobra.Command{Use: "verify GROUP", Short: "Read every image of the group's committed checkpoints and report the latest that verifies", Args: cobra.ExactArgs(1)}, busCall{
		configured: func(cfg Config) error {
			if err := validateStore(cfg); err != nil {
				return asUsage(err)
			}
			if c := cfg.Store; c.Backend != "nats" {
				// Verifying reads; it must not create an empty store where
				// none was (NewDir would) and then report every image lost.
				if fi, err := os.Stat(c.Dir); err != nil || !fi.IsDir() {
					return fmt.Errorf("store.dir: %q is not a directory of images", c.Dir)
				}
			}
			return nil
		},
		run: withCatalog(func(cmd *cobra.Command, args []string, cat *checkpointer.Catalog, bus *events.Bus) error {
			st, err := openStore(cmd.Context(), a.cfg.Store, bus)
			if err != nil {
				return err
			}
			r, rejected, err := cat.LatestVerified(cmd.Context(), args[0], st)
			for _, rj := range rejected {
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%d: REJECTED: %v\n", args[0], rj.Seq, rj.Reason)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%d: verified (%d images): the group rolls back to it\n", r.Group, r.Seq, len(r.Members))
			return nil
		}),
	})
	// The images are read where the agents wrote them; without a shared
	// config file (a `xenft up --data D` demo, a quick look from a login
	// node) the store is named here.
	verify.Flags().String("store-dir", "", "directory of the dir image store (store.dir)")
	verify.Flags().String("store-backend", "", "image store: dir or nats (store.backend)")
	a.flagKeys(verify, map[string]string{"store-dir": "store.dir", "store-backend": "store.backend"})
	return verify
}

// parseCheckpointRef reads show's arguments: GROUP SEQ, GROUP/SEQ (as list
// and verify print a checkpoint) or GROUP alone, for which seq is 0 and
// means the group's latest committed checkpoint.
func parseCheckpointRef(args []string) (group string, seq uint64, err error) {
	group, num := args[0], ""
	if len(args) == 2 {
		num = args[1]
	} else if i := strings.LastIndexByte(group, '/'); i >= 0 {
		group, num = group[:i], group[i+1:]
	}
	if !detector.ValidName(group) {
		return "", 0, usageErrorf("GROUP: %q must be letters, digits, '.', '_' or '-'", group)
	}
	if num == "" {
		return group, 0, nil
	}
	seq, err = strconv.ParseUint(num, 10, 64)
	if err != nil || seq == 0 {
		return "", 0, usageErrorf("SEQ: %q is not a checkpoint number", num)
	}
	return group, seq, nil
}

func printRecords(out io.Writer, recs []checkpointer.Record, asJSON bool) error {
	if asJSON {
		if recs == nil {
			recs = []checkpointer.Record{}
		}
		return json.NewEncoder(out).Encode(recs)
	}
	fmt.Fprintf(out, "%-16s %6s %-10s %-20s %8s %10s %s\n", "GROUP", "SEQ", "STATE", "CREATED", "MEMBERS", "SIZE MiB", "REASON")
	for _, r := range recs {
		var size int64
		for _, m := range r.Members {
			size += m.Size
		}
		fmt.Fprintf(out, "%-16s %6d %-10s %-20s %8d %10.1f %s\n", r.Group, r.Seq, r.State, r.Created.Local().Format("2006-01-02 15:04:05"), len(r.Members), float64(size)/(1<<20), r.Reason)
	}
	return nil
}

func printRecord(out io.Writer, r checkpointer.Record) {
	fmt.Fprintf(out, "checkpoint %s/%d: %s\n  created %s by %s (epoch %d.%d), updated %s\n", r.Group, r.Seq, r.State,
		r.Created.Local().Format(time.RFC3339), r.Coordinator, r.Epoch.Term, r.Epoch.Seq, r.Updated.Local().Format(time.RFC3339))
	if r.Reason != "" {
		fmt.Fprintf(out, "  reason: %s\n", r.Reason)
	}
	fmt.Fprintf(out, "  %-16s %-12s %-28s %12s %9s  %s\n", "VM", "HOST", "IMAGE", "BYTES", "PAUSED", "SHA256")
	for _, m := range r.Members {
		fmt.Fprintf(out, "  %-16s %-12s %-28s %12d %7dms  %s\n", m.VM, m.Host, m.ImageKey, m.Size, m.PausedMs, m.SHA256)
	}
}
