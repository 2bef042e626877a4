package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
)

// statusReport is what `xenft status` shows: the supervisor's view (the
// state it persists), the agents' own listings, and the catalog.
type statusReport struct {
	Leader *supervisor.Lease `json:"leader,omitempty"`
	Hosts  []statusHost      `json:"hosts"`
	VMs    []statusVM        `json:"vms"`
	Groups []statusGroup     `json:"groups"`
}

type statusHost struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Fault is a site detector's finding that stands (fatal or degraded),
	// FaultReason its reason: a host with a fatal fault stays failed or
	// fenced until it is cleared (docs/fencing.md).
	Fault       string    `json:"fault,omitempty"`
	FaultReason string    `json:"fault_reason,omitempty"`
	LastBeat    time.Time `json:"last_beat,omitzero"`
	FreeMiB     int64     `json:"free_mib"`
	Domains     []string  `json:"domains,omitempty"` // as the agent lists them now
	Reached     bool      `json:"reached"`
}

type statusVM struct {
	Name     string  `json:"name"`
	Group    string  `json:"group"`
	Host     string  `json:"host,omitempty"`
	State    string  `json:"state"`
	Seq      uint64  `json:"checkpoint_seq,omitempty"`
	Progress *uint64 `json:"progress,omitempty"` // sim workloads only
}

type statusGroup struct {
	Name      string    `json:"name"`
	Members   []string  `json:"members"`
	LatestSeq uint64    `json:"latest_seq,omitempty"`
	LatestAt  time.Time `json:"latest_at,omitzero"`
}

func newStatusCommand(a *app) *cobra.Command {
	var asJSON bool
	cmd := a.busCommand(&cobra.Command{Use: "status", Short: "Show the leader, hosts, VMs (host, state, checkpoint, progress) and groups", Args: cobra.NoArgs}, busCall{
		run: func(cmd *cobra.Command, _ []string, bus *events.Bus) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			rep, err := collectStatus(ctx, bus)
			if err != nil {
				return err
			}
			return printReply(cmd.OutOrStdout(), asJSON, rep, func(out io.Writer) { printStatus(out, rep) })
		},
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func collectStatus(ctx context.Context, bus *events.Bus) (statusReport, error) {
	var rep statusReport
	if kv, err := bus.KV(ctx, bus.Names().Leader()); err == nil {
		if l, err := supervisor.Current(ctx, kv); err == nil {
			rep.Leader = &l
		}
	}
	kv, err := bus.KV(ctx, bus.Names().State())
	if err != nil {
		return rep, missingHint(err, "has a supervisor run against this bus?")
	}
	var st core.State
	if loaded, err := supervisor.LoadState(ctx, kv); err != nil {
		return rep, err
	} else if loaded != nil {
		st = *loaded
	}
	progress := map[string]uint64{}
	for name, h := range st.Hosts {
		sh := statusHost{Name: name, State: string(h.State), Fault: string(h.Fault), FaultReason: h.FaultReason,
			LastBeat: h.LastBeat, FreeMiB: h.FreeMiB}
		var list protocol.ListReply
		// vm.peek: the read-only listing an operator's credential may ask for.
		if err := bus.Command(ctx, name, protocol.VerbPeek, protocol.PeekRequest{}, &list, 3*time.Second); err == nil {
			sh.Reached = true
			for _, d := range list.Domains {
				sh.Domains = append(sh.Domains, d.Name)
				if d.Progress > 0 {
					progress[name+"/"+d.Name] = d.Progress
				}
			}
		}
		rep.Hosts = append(rep.Hosts, sh)
	}
	sort.Slice(rep.Hosts, func(i, j int) bool { return rep.Hosts[i].Name < rep.Hosts[j].Name })
	var cat *checkpointer.Catalog
	if ckv, err := bus.KV(ctx, bus.Names().Checkpoints()); err == nil {
		cat = checkpointer.NewCatalog(ckv)
	}
	for name, v := range st.VMs {
		g := v.Group
		if g == "" {
			g = name
		}
		sv := statusVM{Name: name, Group: g, Host: v.Host, State: string(v.State), Seq: v.Seq}
		if p, ok := progress[v.Host+"/"+name]; ok {
			sv.Progress = &p
		}
		rep.VMs = append(rep.VMs, sv)
	}
	sort.Slice(rep.VMs, func(i, j int) bool { return rep.VMs[i].Name < rep.VMs[j].Name })
	for name, g := range st.Groups {
		sg := statusGroup{Name: name, Members: g.Members}
		if cat != nil {
			if r, err := cat.Latest(ctx, name); err == nil {
				sg.LatestSeq, sg.LatestAt = r.Seq, r.Updated
			}
		}
		rep.Groups = append(rep.Groups, sg)
	}
	sort.Slice(rep.Groups, func(i, j int) bool { return rep.Groups[i].Name < rep.Groups[j].Name })
	return rep, nil
}

func printStatus(out io.Writer, rep statusReport) {
	if rep.Leader != nil {
		fmt.Fprintf(out, "leader: %s (term %d, since %s)\n\n", rep.Leader.Holder, rep.Leader.Term, rep.Leader.Since.Local().Format(time.RFC3339))
	} else {
		fmt.Fprint(out, "leader: none\n\n")
	}
	fmt.Fprintf(out, "%-12s %-11s %-10s %9s  %s\n", "HOST", "STATE", "LAST BEAT", "FREE MiB", "DOMAINS (agent)")
	for _, h := range rep.Hosts {
		doms := fmt.Sprint(h.Domains)
		if !h.Reached {
			doms = "(agent not answering)"
		}
		fmt.Fprintf(out, "%-12s %-11s %-10s %9d  %s\n", h.Name, h.State, ago(h.LastBeat), h.FreeMiB, doms)
		if l := faultLine(h.Fault, h.FaultReason); l != "" {
			fmt.Fprintf(out, "%-12s %s\n", "", l)
		}
	}
	fmt.Fprintf(out, "\n%-14s %-12s %-12s %-12s %6s %10s\n", "VM", "GROUP", "HOST", "STATE", "CKPT", "PROGRESS")
	for _, v := range rep.VMs {
		p := "-"
		if v.Progress != nil {
			p = fmt.Sprint(*v.Progress)
		}
		seq := "-"
		if v.Seq > 0 {
			seq = fmt.Sprint(v.Seq)
		}
		fmt.Fprintf(out, "%-14s %-12s %-12s %-12s %6s %10s\n", v.Name, v.Group, v.Host, v.State, seq, p)
	}
	fmt.Fprintf(out, "\n%-14s %-8s %-10s %s\n", "GROUP", "LATEST", "AGE", "MEMBERS")
	for _, g := range rep.Groups {
		fmt.Fprintf(out, "%-14s %-8d %-10s %v\n", g.Name, g.LatestSeq, ago(g.LatestAt), g.Members)
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// faultLine says what a host's standing fault is, under its row ("" for
// none): status and the up view show why a host is failed or out of
// placement while it still beats.
func faultLine(fault, reason string) string {
	if fault == "" {
		return ""
	}
	if reason == "" {
		reason = "no reason given"
	}
	return fault + " fault: " + reason
}
