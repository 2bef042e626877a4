package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
)

// recorder follows the event stream for the view and the summary. Its
// fields are guarded by mu.
type recorder struct {
	mu       sync.Mutex
	recent   []string
	counts   map[events.Type]int
	fatal    int // node.fault events of severity fatal: hosts failed by a site detector
	faults   []*fault
	jsonOut  bool
	out      *os.File
	start    time.Time
	restarts []time.Duration
}

// fault is one injected failure and how long its VMs took to run again.
type fault struct {
	Kind      string               `json:"kind"`
	Host      string               `json:"host"`
	At        time.Time            `json:"at"`
	VMs       []string             `json:"vms"`
	Restarted map[string]time.Time `json:"restarted"`
}

func (f *fault) recovery() (time.Duration, bool) {
	if len(f.VMs) == 0 {
		return 0, false
	}
	var last time.Time
	for _, vm := range f.VMs {
		t, ok := f.Restarted[vm]
		if !ok {
			return 0, false
		}
		if t.After(last) {
			last = t
		}
	}
	return last.Sub(f.At), true
}

func newRecorder() *recorder {
	return &recorder{counts: map[events.Type]int{}, out: os.Stdout, start: time.Now()}
}

func (r *recorder) emit(v any) {
	b, _ := json.Marshal(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(r.out, string(b))
}

func (r *recorder) note(format string, args ...any) {
	line := fmt.Sprintf("%s  %s", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, args...))
	r.mu.Lock()
	r.recent = append(r.recent, line)
	if len(r.recent) > 14 {
		r.recent = r.recent[len(r.recent)-14:]
	}
	js := r.jsonOut
	r.mu.Unlock()
	if js {
		r.emit(map[string]any{"kind": "note", "text": fmt.Sprintf(format, args...)})
	}
}

func (r *recorder) fault(kind, host string, vms []string) {
	f := &fault{Kind: kind, Host: host, At: time.Now(), VMs: vms, Restarted: map[string]time.Time{}}
	r.mu.Lock()
	r.faults = append(r.faults, f)
	js := r.jsonOut
	r.mu.Unlock()
	if js {
		r.emit(map[string]any{"kind": "fault", "fault": f})
	}
	r.note("CHAOS: %s of host %s (running %s)", kind, host, strings.Join(vms, ", "))
}

// follow tails every event from now until ctx ends.
func (r *recorder) follow(ctx context.Context, bus *events.Bus) {
	_ = bus.Tail(ctx, events.TailConfig{Since: time.Now().Add(-time.Second)}, func(_ context.Context, ev events.Event, _ events.Meta) error {
		r.mu.Lock()
		r.counts[ev.Type]++
		if f, err := events.DataAs[events.NodeFault](ev); err == nil && f.Severity == events.SeverityFatal {
			r.fatal++
		}
		js := r.jsonOut
		if ev.Type == events.TypeVMRestarted {
			for _, f := range r.faults {
				if _, done := f.Restarted[ev.EntityID()]; !done && ev.Time.After(f.At) && contains(f.VMs, ev.EntityID()) {
					f.Restarted[ev.EntityID()] = ev.Time
					if d, ok := f.recovery(); ok {
						r.restarts = append(r.restarts, d)
					}
				}
			}
		}
		r.mu.Unlock()
		if js {
			r.emit(map[string]any{"kind": "event", "event": ev})
			return nil
		}
		if ev.Type != events.TypeCheckpointStarted {
			r.note("%-22s %-14s %s", ev.Type.Short(), ev.Subject, compact(ev.Data))
		}
		return nil
	})
}

// compact is summarize without the bulky fields: lists become their length
// and epochs and long checksums are left out, so an event fits on a line.
func compact(data json.RawMessage) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return summarize(data)
	}
	for k, v := range m {
		switch {
		case k == "epoch" || k == "since" || k == "last_beat" || k == "incarnation" || k == "previous_incarnation":
			delete(m, k)
		case len(v) > 0 && v[0] == '[':
			var list []json.RawMessage
			_ = json.Unmarshal(v, &list)
			m[k] = json.RawMessage(fmt.Sprint(len(list)))
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := string(m[k])
		var str string
		if json.Unmarshal(m[k], &str) == nil {
			v = str
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// show draws the live view every second until ctx ends (or, with --json,
// prints a status line every 5 s).
func (d *demo) show(ctx context.Context) {
	d.rec.mu.Lock()
	d.rec.jsonOut = d.o.json
	d.rec.mu.Unlock()
	every := time.Second
	if d.o.json {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := d.coreState(ctx)
		if d.o.json {
			d.rec.emit(map[string]any{"kind": "status", "uptime_s": int(time.Since(d.started).Seconds()), "vms": vmRows(st), "hosts": hostRows(st)})
			continue
		}
		fmt.Fprint(d.out, "\033[H\033[2J"+render(d.snapshot(ctx, st)))
	}
}

func (d *demo) coreState(ctx context.Context) *core.State {
	kv, err := d.bus.KV(ctx, d.bus.Names().State())
	if err != nil {
		return nil
	}
	st, err := supervisor.LoadState(ctx, kv)
	if err != nil {
		return nil
	}
	return st
}

type vmRow struct {
	VM, Group, Host, State string
	Seq                    uint64
}

func vmRows(st *core.State) []vmRow {
	var rows []vmRow
	if st == nil {
		return rows
	}
	for name, v := range st.VMs {
		g := v.Group
		if g == "" {
			g = name
		}
		rows = append(rows, vmRow{VM: name, Group: g, Host: v.Host, State: string(v.State), Seq: v.Seq})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].VM < rows[j].VM })
	return rows
}

type hostRow struct {
	Host, State string
	// Fault and FaultReason: a site detector's finding that stands.
	Fault, FaultReason string `json:",omitempty"`
	FreeMiB            int64
}

func hostRows(st *core.State) []hostRow {
	var rows []hostRow
	if st == nil {
		return rows
	}
	for name, h := range st.Hosts {
		rows = append(rows, hostRow{Host: name, State: string(h.State), Fault: string(h.Fault), FaultReason: h.FaultReason, FreeMiB: h.FreeMiB})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Host < rows[j].Host })
	return rows
}

// viewSnapshot is everything one frame of the live view shows, gathered
// before anything is drawn: render is then a pure function of it.
type viewSnapshot struct {
	Now     time.Time
	Uptime  time.Duration
	NATS    string
	Hosts   []hostRow
	Domains map[string][]string // per host, as "name(state,progress)"
	VMs     []vmRow
	// Checkpoints are the latest committed checkpoint of every group;
	// CatalogErr says why they could not be read.
	Checkpoints []checkpointRow
	CatalogErr  string
	Recent      []string
}

type checkpointRow struct {
	Group    string
	Seq      uint64
	Age      time.Duration
	Members  int
	PausedMs int64
}

// snapshot gathers one frame: the core's state st, each host's domains,
// the catalog's latest checkpoints and the recent events.
func (d *demo) snapshot(ctx context.Context, st *core.State) viewSnapshot {
	now := time.Now()
	s := viewSnapshot{Now: now, Uptime: now.Sub(d.started), NATS: d.srv.ClientURL(), Hosts: hostRows(st), VMs: vmRows(st), Domains: map[string][]string{}}
	for _, h := range s.Hosts {
		s.Domains[h.Host] = d.domainsOn(h.Host)
	}
	s.Checkpoints, s.CatalogErr = d.latestCheckpoints(ctx, now)
	d.rec.mu.Lock()
	s.Recent = slices.Clone(d.rec.recent)
	d.rec.mu.Unlock()
	return s
}

// latestCheckpoints reads the catalog's latest committed checkpoint of every
// group; the error text, if any, is for the view.
func (d *demo) latestCheckpoints(ctx context.Context, now time.Time) ([]checkpointRow, string) {
	kv, err := d.bus.KV(ctx, d.bus.Names().Checkpoints())
	if err != nil {
		return nil, err.Error()
	}
	cat := checkpointer.NewCatalog(kv)
	groups, err := cat.Groups(ctx)
	if err != nil {
		return nil, err.Error()
	}
	var rows []checkpointRow
	for _, g := range groups {
		r, err := cat.Latest(ctx, g)
		if err != nil {
			continue // no committed checkpoint yet
		}
		row := checkpointRow{Group: g, Seq: r.Seq, Age: now.Sub(r.Updated), Members: len(r.Members)}
		for _, m := range r.Members {
			row.PausedMs = max(row.PausedMs, m.PausedMs)
		}
		rows = append(rows, row)
	}
	return rows, ""
}

// render draws one frame of the live view (without the clear-screen
// sequence).
func render(s viewSnapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "xenft up — %s — NATS %s — %s   (Ctrl-C to stop)\n\n", s.Now.Format("15:04:05"), s.NATS, s.Uptime.Round(time.Second))
	fmt.Fprintf(&b, "%-8s %-12s %10s   %s\n", "HOST", "STATE", "FREE MiB", "DOMAINS")
	for _, h := range s.Hosts {
		fmt.Fprintf(&b, "%-8s %-12s %10d   %s\n", h.Host, h.State, h.FreeMiB, strings.Join(s.Domains[h.Host], " "))
		if l := faultLine(h.Fault, h.FaultReason); l != "" {
			fmt.Fprintf(&b, "%-8s %s\n", "", l)
		}
	}
	fmt.Fprintf(&b, "\n%-8s %-8s %-8s %-12s %s\n", "VM", "GROUP", "HOST", "STATE", "FROM CKPT")
	for _, v := range s.VMs {
		seq := "-"
		if v.Seq > 0 {
			seq = fmt.Sprint(v.Seq)
		}
		fmt.Fprintf(&b, "%-8s %-8s %-8s %-12s %s\n", v.VM, v.Group, v.Host, v.State, seq)
	}
	b.WriteString("\nLATEST CHECKPOINTS\n")
	if s.CatalogErr != "" {
		fmt.Fprintf(&b, "  (the catalog cannot be read now: %s)\n", s.CatalogErr)
	}
	for _, c := range s.Checkpoints {
		fmt.Fprintf(&b, "  %-8s seq %-4d %s ago, %d members, paused %d ms\n", c.Group, c.Seq, c.Age.Round(time.Second), c.Members, c.PausedMs)
	}
	b.WriteString("\nRECENT EVENTS\n")
	for _, l := range s.Recent {
		if len(l) > 150 {
			l = l[:150] + "…"
		}
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func (d *demo) domainsOn(host string) []string {
	d.mu.Lock()
	h := d.hosts[host]
	d.mu.Unlock()
	if h == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	doms, _ := h.sim.List(ctx)
	var out []string
	for _, dom := range doms {
		out = append(out, fmt.Sprintf("%s(%s,%d)", dom.Name, dom.State, dom.Progress))
	}
	return out
}

// summary is printed when the demo stops.
func (d *demo) summary() {
	r := d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	type faultOut struct {
		Kind       string   `json:"kind"`
		Host       string   `json:"host"`
		AtS        float64  `json:"at_s"`
		VMs        []string `json:"vms"`
		RecoveredS *float64 `json:"recovered_s"`
	}
	var fs []faultOut
	for _, f := range r.faults {
		fo := faultOut{Kind: f.Kind, Host: f.Host, AtS: f.At.Sub(d.started).Seconds(), VMs: f.VMs}
		if dur, ok := f.recovery(); ok {
			s := dur.Seconds()
			fo.RecoveredS = &s
		}
		fs = append(fs, fo)
	}
	sum := map[string]any{
		"kind": "summary", "ran_s": int(time.Since(d.started).Seconds()), "faults_injected": len(r.faults), "faults": fs,
		"vms_restarted": r.counts[events.TypeVMRestarted], "groups_rolled_back": r.counts[events.TypeGroupRolledBack],
		"checkpoints_committed": r.counts[events.TypeCheckpointCommitted], "checkpoints_aborted": r.counts[events.TypeCheckpointAborted],
		// A fatal node.fault fails a host as node.failed does.
		"hosts_failed": r.counts[events.TypeNodeFailed] + r.fatal, "hosts_failed_by_fault": r.fatal,
		"hosts_fenced":   r.counts[events.TypeNodeFenced],
		"ignored_inputs": d.ignoredInputs(),
	}
	if d.o.json {
		b, _ := json.Marshal(sum)
		fmt.Fprintln(r.out, string(b))
		return
	}
	fmt.Fprintf(d.out, "\nxenft up: stopped after %s\n", time.Since(d.started).Round(time.Second))
	fmt.Fprintf(d.out, "  checkpoints committed: %d (aborted %d)\n", r.counts[events.TypeCheckpointCommitted], r.counts[events.TypeCheckpointAborted])
	byFault := ""
	if r.fatal > 0 {
		byFault = fmt.Sprintf(" (%d by a fatal fault)", r.fatal)
	}
	fmt.Fprintf(d.out, "  faults injected: %d; hosts failed %d%s, fenced %d; VMs restarted %d; groups rolled back %d\n",
		len(r.faults), r.counts[events.TypeNodeFailed]+r.fatal, byFault, r.counts[events.TypeNodeFenced], r.counts[events.TypeVMRestarted], r.counts[events.TypeGroupRolledBack])
	fmt.Fprint(d.out, d.ignoredSummary())
	for _, f := range fs {
		rec := "not recovered before stop"
		if f.RecoveredS != nil {
			rec = fmt.Sprintf("all running again after %.1f s", *f.RecoveredS)
		}
		fmt.Fprintf(d.out, "    +%5.0fs %-9s %-4s %-24s %s\n", f.AtS, f.Kind, f.Host, strings.Join(f.VMs, ","), rec)
	}
}
