package core

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenario scripts, in the style of etcd/raft's interaction tests: each block
// of testdata/*.txt is a command, "----", and the output it must produce (the
// actions Apply returned, one per line, or the error). Run with -rewrite to
// regenerate the outputs after a deliberate change, and read the diff.
var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of scenario scripts")

// t0 is time zero of every script; times are written as offsets from it.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness drives one State from script commands.
type harness struct {
	s     *State
	now   time.Time
	beats map[string]*HostBeat // the last beat sent per host
	// open commands, in the order they were emitted
	open []Command
}

// scriptPolicy is the policy the scripts were written against: the default
// with a 10 s fence_self_timeout (their comments count deadlines as last beat
// + 10 s + 5 s), so the default can change without rewriting every deadline.
func scriptPolicy() Policy {
	p := DefaultPolicy()
	p.FenceSelfTimeout = 10 * time.Second
	return p
}

func newHarness() *harness {
	return &harness{s: NewState(scriptPolicy()), now: t0, beats: map[string]*HostBeat{}}
}

// apply feeds in and renders the outcome; it checks the state after each step.
func (h *harness) apply(t testing.TB, in Input) string {
	t.Helper()
	acts, err := Apply(h.s, in)
	if cerr := h.s.Check(); cerr != nil {
		t.Fatalf("after %T: state inconsistent: %v", in, cerr)
	}
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b strings.Builder
	for _, a := range acts {
		if c, ok := a.(Command); ok {
			h.supersede(c)
			h.open = append(h.open, c)
		}
		b.WriteString(render(a))
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "ok\n"
	}
	return b.String()
}

// supersede drops open commands that c replaces (a resend of the same op).
func (h *harness) supersede(c Command) {
	r := c.Op()
	h.open = slices.DeleteFunc(h.open, func(o Command) bool {
		p := o.Op()
		return p.Kind == r.Kind && p.VM == r.VM && p.Group == r.Group && p.Host == r.Host
	})
}

func off(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "+" + t.Sub(t0).String()
}

func render(a Action) string {
	if f, ok := a.(FenceHost); ok {
		return fmt.Sprintf("fence host=%s epoch=%s deadline=%s", f.Host, f.Epoch, off(f.SelfFenceDeadline))
	}
	return a.String()
}

// find returns the open command of kind about target ("vm", "vm@host",
// "host" or "group"), latest first.
func (h *harness) find(kind OpKind, target string) (Command, bool) {
	vm, host, _ := strings.Cut(target, "@")
	for i := len(h.open) - 1; i >= 0; i-- {
		r := h.open[i].Op()
		if r.Kind != kind {
			continue
		}
		switch {
		case host != "" && r.VM == vm && r.Host == host,
			host == "" && (r.VM == vm || (r.VM == "" && (r.Host == vm || r.Group == vm))):
			return h.open[i], true
		}
	}
	return nil, false
}

func (h *harness) answer(t testing.TB, c Command, o Outcome, msg string) string {
	h.open = slices.DeleteFunc(h.open, func(x Command) bool { return x == c })
	return h.apply(t, ResultOf(c, h.now, o, msg))
}

// run executes one command line and returns its output.
func (h *harness) run(t testing.TB, line string) string {
	t.Helper()
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	kv := map[string]string{}
	var pos []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	arg := func(i int) string {
		if i >= len(pos) {
			t.Fatalf("%q: missing argument %d", line, i+1)
		}
		return pos[i]
	}
	num := func(k string, def int64) int64 {
		if s, ok := kv[k]; ok {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("%q: %s: %v", line, k, err)
			}
			return n
		}
		return def
	}
	at := func(s string) time.Time {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return t0.Add(d)
	}
	list := func(k string) []string {
		if s, ok := kv[k]; ok && s != "" {
			return strings.Split(s, ",")
		}
		return nil
	}
	switch cmd {
	case "tick":
		h.now = at(arg(0))
		return h.apply(t, Tick{At: h.now})
	case "leader":
		n, _ := strconv.ParseUint(arg(0), 10, 64)
		return h.apply(t, Leader{At: h.now, Term: n})
	case "policy":
		return h.apply(t, SetPolicy{At: h.now, Policy: h.policy(t, kv)})
	case "host":
		b := h.beats[arg(0)]
		if b == nil {
			b = &HostBeat{Host: arg(0), Incarnation: "i1", CapacityMiB: 65536, FreeMiB: 65536}
			h.beats[arg(0)] = b
		}
		b.At, b.Seq = h.now, b.Seq+1
		if inc, ok := kv["inc"]; ok && inc != b.Incarnation {
			b.Incarnation, b.Seq = inc, 1
		}
		b.CapacityMiB, b.FreeMiB = num("cap", b.CapacityMiB), num("free", b.FreeMiB)
		b.FenceUnarmed = slices.Contains(pos, "unarmed")
		if _, ok := kv["domains"]; ok {
			b.Domains = list("domains")
		}
		return h.apply(t, *b)
	case "vm":
		c := VMConfig{Name: arg(0), Group: kv["group"], MemoryMiB: num("mem", 4096), Priority: int(num("prio", 0)),
			Policy: RestartPolicy(kv["policy"])}
		return h.apply(t, VMRegistered{At: h.now, Config: c, Host: kv["host"]})
	case "unregister":
		return h.apply(t, VMUnregistered{At: h.now, VM: arg(0)})
	case "ckpt":
		seq, _ := strconv.ParseUint(arg(1), 10, 64)
		return h.apply(t, CheckpointCommitted{At: h.now, Group: arg(0), Seq: seq, VMs: list("vms")})
	case "delckpt":
		seq, _ := strconv.ParseUint(arg(1), 10, 64)
		return h.apply(t, CheckpointDeleted{At: h.now, Group: arg(0), Seq: seq})
	case "suspect":
		return h.apply(t, NodeSuspect{At: h.now, Host: arg(0)})
	case "fail":
		in := NodeFailed{At: h.now, Host: arg(0), Reason: "phi"}
		if b := h.beats[arg(0)]; b != nil {
			in.Incarnation, in.LastBeat, in.LastSeq = b.Incarnation, b.At, b.Seq
		}
		if s, ok := kv["last"]; ok {
			in.LastBeat = at(s)
		}
		if s, ok := kv["lease"]; ok {
			in.LastLease = at(s)
		}
		return h.apply(t, in)
	case "lease": // lease HOST [self=DURATION] [renewed=T] [inc=I] [awaiting]: the agent (by default the incarnation that beats) renewed its lease (now)
		in := HostLeaseRenewed{At: h.now, Host: arg(0), AwaitingReconcile: slices.Contains(pos, "awaiting"), Incarnation: kv["inc"]}
		if b := h.beats[arg(0)]; b != nil && in.Incarnation == "" {
			in.Incarnation = b.Incarnation
		}
		if s, ok := kv["renewed"]; ok {
			in.RenewedAt = at(s)
		}
		if s, ok := kv["self"]; ok {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			in.SelfTimeout = d
		}
		return h.apply(t, in)
	case "recover":
		in := NodeRecovered{At: h.now, Host: arg(0), LastBeat: h.now, NewIncarnation: slices.Contains(pos, "new-inc")}
		return h.apply(t, in)
	case "fault":
		return h.apply(t, NodeFault{At: h.now, Host: arg(0), Severity: Severity(arg(1)), Reason: kv["reason"]})
	case "vmfail":
		return h.apply(t, VMFailed{At: h.now, VM: arg(0), Host: arg(1), Reason: "crashed"})
	case "ok", "retry", "perm", "corrupt", "notready":
		o := map[string]Outcome{"ok": OutcomeOK, "retry": OutcomeRetryable, "perm": OutcomePermanent, "corrupt": OutcomeImageCorrupt,
			"notready": OutcomeHostNotReady}[cmd]
		kind := OpKind(arg(0))
		if len(pos) == 1 { // every open command of that kind, in order
			var b strings.Builder
			for _, c := range slices.Clone(h.open) {
				if c.Op().Kind == kind {
					fmt.Fprintf(&b, "> %s\n%s", target(c.Op()), h.answer(t, c, o, kv["err"]))
				}
			}
			return b.String()
		}
		c, ok := h.find(kind, arg(1))
		if !ok {
			t.Fatalf("%q: no open %s command for %s", line, kind, arg(1))
		}
		return h.answer(t, c, o, kv["err"])
	case "result": // an explicit (possibly stale) result
		e := strings.Split(kv["epoch"], ".")
		term, _ := strconv.ParseUint(e[0], 10, 64)
		seq, _ := strconv.ParseUint(e[1], 10, 64)
		return h.apply(t, Result{At: h.now, Kind: OpKind(kv["kind"]), Host: kv["host"], VM: kv["vm"], Group: kv["group"],
			Epoch: Epoch{term, seq}, Outcome: Outcome(kv["outcome"])})
	case "maint":
		return h.apply(t, Maintenance{At: h.now, Host: arg(0), On: arg(1) == "on", Drain: slices.Contains(pos, "drain"), By: "ops"})
	case "restart":
		return h.apply(t, RestartVM{At: h.now, VM: arg(0)})
	case "move":
		return h.apply(t, MoveVM{At: h.now, VM: arg(0), Host: arg(1)})
	case "release":
		return h.apply(t, ReleaseQuarantine{At: h.now, Host: arg(0)})
	case "resume":
		return h.apply(t, ResumeRestarts{At: h.now})
	case "state":
		return h.dump()
	case "persist": // a new leader loads the state from its JSON
		return h.persist(t)
	case "open":
		var b strings.Builder
		for _, c := range h.open {
			b.WriteString(render(c) + "\n")
		}
		return b.String()
	}
	t.Fatalf("unknown command %q", line)
	return ""
}

// target names what a result is about, for the script output.
func target(r Result) string {
	switch {
	case r.VM != "":
		return string(r.Kind) + " " + r.VM + "@" + r.Host
	case r.Host != "":
		return string(r.Kind) + " " + r.Host
	}
	return string(r.Kind) + " " + r.Group
}

func (h *harness) policy(t testing.TB, kv map[string]string) Policy {
	p := h.s.Policy
	for k, v := range kv {
		d, derr := time.ParseDuration(v)
		n, nerr := strconv.Atoi(v)
		fl, ferr := strconv.ParseFloat(v, 64)
		set := map[string]func(){
			"fence_self_timeout":        func() { p.FenceSelfTimeout = d },
			"fence_margin":              func() { p.FenceMargin = d },
			"storm_window":              func() { p.StormWindow = d },
			"flap_window":               func() { p.FlapWindow = d },
			"backoff_base":              func() { p.BackoffBase = d },
			"backoff_cap":               func() { p.BackoffCap = d },
			"max_concurrent_restores":   func() { p.MaxConcurrentRestores = n },
			"flap_threshold":            func() { p.FlapThreshold = n },
			"restore_attempts_per_host": func() { p.RestoreAttemptsPerHost = n },
			"max_attempts":              func() { p.MaxAttempts = n },
			"max_failed_fraction":       func() { p.MaxFailedFraction = fl },
		}[k]
		if set == nil || (derr != nil && nerr != nil && ferr != nil) {
			t.Fatalf("policy %s=%s: unknown key or bad value", k, v)
		}
		set()
	}
	return p
}

// persist round-trips the state through JSON, as a new leader loading it.
func (h *harness) persist(t testing.TB) string {
	b, err := json.Marshal(h.s)
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("loaded state: %v", err)
	}
	h.s = &s
	return fmt.Sprintf("persisted %d bytes\n", len(b))
}

// dump renders the state compactly.
func (h *harness) dump() string {
	s := h.s
	var b strings.Builder
	storm := "no"
	if s.Storm != nil {
		storm = "since " + off(s.Storm.Since)
	}
	fmt.Fprintf(&b, "term=%d storm=%s\n", s.Term, storm)
	for _, name := range slices.Sorted(maps.Keys(s.Hosts)) {
		x := s.Hosts[name]
		fmt.Fprintf(&b, "host %s %s free=%d", name, x.status(), x.free())
		if x.Fence != nil {
			fmt.Fprintf(&b, " fence=%s", x.Fence.Epoch)
		}
		if !x.FenceDeadline.IsZero() {
			fmt.Fprintf(&b, " deadline=%s", off(x.FenceDeadline))
		}
		if len(x.Cleanup) > 0 {
			fmt.Fprintf(&b, " cleanup=%s", strings.Join(slices.Sorted(maps.Keys(x.Cleanup)), ","))
		}
		if x.NotReady > 0 || !x.AwaitingSince.IsZero() || !x.NotReadyUntil.IsZero() {
			fmt.Fprintf(&b, " not-ready(refusals=%d awaiting-since=%s until=%s)", x.NotReady, off(x.AwaitingSince), off(x.NotReadyUntil))
		}
		b.WriteByte('\n')
	}
	for _, name := range slices.Sorted(maps.Keys(s.VMs)) {
		v := s.VMs[name]
		fmt.Fprintf(&b, "vm %s %s host=%s seq=%d", name, v.State, v.Host, v.Seq)
		if v.Op != nil {
			fmt.Fprintf(&b, " op=%s@%s", v.Op.Kind, v.Op.Host)
		}
		if v.Attempts > 0 {
			fmt.Fprintf(&b, " attempts=%d", v.Attempts)
		}
		if len(v.Tried) > 0 {
			fmt.Fprintf(&b, " tried=%s", strings.Join(v.Tried, ","))
		}
		if v.Reason != "" {
			fmt.Fprintf(&b, " reason=%q", v.Reason)
		}
		b.WriteByte('\n')
	}
	for _, name := range slices.Sorted(maps.Keys(s.Groups)) {
		g := s.Groups[name]
		var cks []string
		for _, c := range g.Checkpoints {
			cs := strconv.FormatUint(c.Seq, 10)
			if c.Corrupt {
				cs += "!"
			}
			cks = append(cks, cs)
		}
		fmt.Fprintf(&b, "group %s members=%s checkpoints=%s", name, strings.Join(g.Members, ","), strings.Join(cks, ","))
		if rb := g.Rollback; rb != nil {
			fmt.Fprintf(&b, " rollback(seq=%d committed=%t unpausing=%t)", rb.Seq, rb.Committed, rb.Unpausing)
		}
		if d := g.Drain; d != nil {
			fmt.Fprintf(&b, " drain(after=%d accepted=%t)", d.After, d.Accepted)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// runScript runs testdata/name and compares (or rewrites) every output.
func runScript(t *testing.T, name string) *harness {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness()
	var out strings.Builder
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output so far:\n%s", out.String())
		}
	})
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return sc.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmdLine := lineNo
		out.WriteString(line + "\n----\n")
		got := h.run(t, line)
		var want strings.Builder
		if sep, ok := next(); !ok || sep != "----" {
			t.Fatalf("%s:%d: %q must be followed by ----", path, cmdLine, line)
		}
		for {
			l, ok := next()
			if !ok || l == "" {
				break
			}
			want.WriteString(l + "\n")
		}
		out.WriteString(got + "\n")
		if !*rewrite && got != want.String() {
			t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", path, cmdLine, line, got, want.String())
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return h
}
