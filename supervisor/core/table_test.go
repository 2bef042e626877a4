package core

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Table tests: one rule, many cases, no script.

func TestPolicy_DefaultIsValid(t *testing.T) {
	if err := DefaultPolicy().Validate("supervisor"); err != nil {
		t.Fatal(err)
	}
}

// Validate names the offending key under the section, and reports all.
func TestPolicy_ValidateNamesKeys(t *testing.T) {
	for _, tc := range []struct {
		key    string
		mutate func(*Policy)
	}{
		{"fence_self_timeout", func(p *Policy) { p.FenceSelfTimeout = 0 }},
		{"fence_margin", func(p *Policy) { p.FenceMargin = -time.Second }},
		{"max_concurrent_restores", func(p *Policy) { p.MaxConcurrentRestores = 0 }},
		{"max_failed_fraction", func(p *Policy) { p.MaxFailedFraction = 0 }},
		{"max_failed_fraction", func(p *Policy) { p.MaxFailedFraction = 1.5 }},
		{"storm_window", func(p *Policy) { p.StormWindow = 0 }},
		{"flap_threshold", func(p *Policy) { p.FlapThreshold = 0 }},
		{"flap_window", func(p *Policy) { p.FlapWindow = 0 }},
		{"restore_attempts_per_host", func(p *Policy) { p.RestoreAttemptsPerHost = 0 }},
		{"max_attempts", func(p *Policy) { p.MaxAttempts = 2 }},
		{"backoff_base", func(p *Policy) { p.BackoffBase = 0 }},
		{"backoff_cap", func(p *Policy) { p.BackoffCap = time.Millisecond }},
		{"backoff_cap", func(p *Policy) { p.BackoffCap = 2 * time.Hour }},
	} {
		p := DefaultPolicy()
		tc.mutate(&p)
		err := p.Validate("supervisor")
		if err == nil || !strings.Contains(err.Error(), "supervisor."+tc.key+":") {
			t.Errorf("%s: got %v", tc.key, err)
		}
	}
	p := DefaultPolicy()
	p.StormWindow, p.FlapWindow = 0, 0
	if err := p.Validate("x"); err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("two problems must both be reported: %v", err)
	}
}

// Backoff doubles from backoff_base and stops at backoff_cap; no jitter.
func TestPolicy_Backoff(t *testing.T) {
	p := DefaultPolicy()
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		5: 16 * time.Second, 6: 30 * time.Second, 60: 30 * time.Second} {
		if got := p.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestEpoch_Order(t *testing.T) {
	for _, tc := range []struct {
		a, b Epoch
		less bool
	}{
		{Epoch{1, 9}, Epoch{2, 1}, true},
		{Epoch{2, 1}, Epoch{1, 9}, false},
		{Epoch{2, 1}, Epoch{2, 2}, true},
		{Epoch{2, 2}, Epoch{2, 2}, false},
	} {
		if got := tc.a.Less(tc.b); got != tc.less {
			t.Errorf("%s < %s = %t", tc.a, tc.b, got)
		}
	}
}

// cluster builds a leading state with hosts h1..hn (64 GiB free) and lone VMs
// v1..vm on h1 with a checkpoint each.
func cluster(t *testing.T, hosts, vms int) *State {
	t.Helper()
	s := NewState(DefaultPolicy())
	must := func(in Input) {
		t.Helper()
		if _, err := Apply(s, in); err != nil {
			t.Fatal(err)
		}
	}
	must(Leader{At: t0, Term: 1})
	var doms []string
	for i := range vms {
		doms = append(doms, fmt.Sprint("v", i+1))
	}
	for i := range hosts {
		b := HostBeat{At: t0, Host: fmt.Sprint("h", i+1), Incarnation: "i", Seq: 1, CapacityMiB: 65536, FreeMiB: 65536}
		if i == 0 {
			b.Domains = doms
		}
		must(b)
	}
	for _, v := range doms {
		must(VMRegistered{At: t0, Config: VMConfig{Name: v, MemoryMiB: 4096}, Host: "h1"})
		must(CheckpointCommitted{At: t0, Group: v, Seq: 1})
	}
	return s
}

// Storm guard: more than max_failed_fraction (0.5) of the hosts failing within
// storm_window pauses restarts; exactly half does not.
func TestRule_StormGuard_Threshold(t *testing.T) {
	for _, tc := range []struct {
		hosts, failed int
		spread        time.Duration // between two failures
		storm         bool
	}{
		{hosts: 4, failed: 2, storm: false},
		{hosts: 4, failed: 3, storm: true},
		{hosts: 3, failed: 2, storm: true},
		{hosts: 2, failed: 1, storm: false},
		{hosts: 10, failed: 5, storm: false},
		{hosts: 10, failed: 6, storm: true},
		// the same failures spread over more than the window: no storm
		{hosts: 10, failed: 6, spread: 13 * time.Second, storm: false},
	} {
		s := cluster(t, tc.hosts, 0)
		at := t0
		for i := range tc.failed {
			at = at.Add(tc.spread)
			if _, err := Apply(s, NodeFailed{At: at, Host: fmt.Sprint("h", i+1), LastBeat: at}); err != nil {
				t.Fatal(err)
			}
			if tc.spread > 0 { // fenced by deadline before the next one fails
				Apply(s, Tick{At: at.Add(tc.spread - time.Millisecond)})
			}
		}
		if got := s.Storm != nil; got != tc.storm {
			t.Errorf("%d of %d hosts failed %s apart: storm=%t, want %t", tc.failed, tc.hosts, tc.spread, got, tc.storm)
		}
	}
}

// Flapping: quarantine at the (flap_threshold+1)-th real failure within
// flap_window (the host rebooted, or was fenced); older failures do not
// count, nor does one its agent's beats retract (flapping.txt).
func TestRule_Flapping_Window(t *testing.T) {
	for _, tc := range []struct {
		at          []time.Duration
		quarantined bool
	}{
		{[]time.Duration{0, time.Minute, 2 * time.Minute}, false},
		{[]time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute}, true},
		{[]time.Duration{0, 30 * time.Minute, 61 * time.Minute, 62 * time.Minute}, false},
		{[]time.Duration{0, 30 * time.Minute, 50 * time.Minute, 59 * time.Minute}, true},
	} {
		s := cluster(t, 10, 0)
		seq := uint64(1)
		for _, d := range tc.at {
			at := t0.Add(d)
			seq++
			// A new incarnation each time: the host rebooted after each
			// failure, which makes the one before real.
			Apply(s, HostBeat{At: at, Host: "h1", Incarnation: fmt.Sprint("i", seq), Seq: 1, CapacityMiB: 65536, FreeMiB: 65536})
			if _, err := Apply(s, NodeFailed{At: at, Host: "h1", LastBeat: at, LastSeq: 1}); err != nil {
				t.Fatal(err)
			}
		}
		// The last failure becomes real when its self-fence deadline passes.
		last := t0.Add(tc.at[len(tc.at)-1])
		Apply(s, Tick{At: last.Add(s.Policy.FenceSelfTimeout + s.Policy.FenceMargin)})
		if got := s.Hosts["h1"].Quarantined; got != tc.quarantined {
			t.Errorf("failures at %v: quarantined=%t, want %t", tc.at, got, tc.quarantined)
		}
	}
}

// Placement: the chosen host for a lone 4 GiB VM among hosts in various
// states: healthy only, no maintenance, quarantine or fault, room net of
// reservations, then most free memory, then the name.
func TestRule_Placement_Choice(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s *State)
		want  string
	}{
		{"most free memory", func(s *State) { s.Hosts["h2"].FreeMiB = 8192 }, "h3"},
		{"name breaks ties", func(s *State) {}, "h2"},
		{"maintenance excluded", func(s *State) { s.Hosts["h2"].Maintenance = true }, "h3"},
		{"quarantine excluded", func(s *State) { s.Hosts["h2"].Quarantined = true }, "h3"},
		{"fault excluded", func(s *State) { s.Hosts["h2"].Fault = SeverityDegraded }, "h3"},
		{"suspect excluded", func(s *State) { s.Hosts["h2"].State = HostSuspect }, "h3"},
		{"reservations count", func(s *State) {
			s.Hosts["h2"].Reserved = map[string]int64{"x": 63488}
			s.Hosts["h3"].FreeMiB = 8192
		}, "h3"},
		{"no room: wait", func(s *State) { s.Hosts["h2"].FreeMiB, s.Hosts["h3"].FreeMiB = 1024, 4095 }, ""},
	} {
		s := cluster(t, 3, 1)
		tc.setup(s)
		s.idx = nil // hand-made changes: rebuild the index
		if _, err := Apply(s, NodeFailed{At: t0, Host: "h1", LastBeat: t0}); err != nil {
			t.Fatal(err)
		}
		acts, err := Apply(s, Tick{At: t0.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, a := range acts {
			if r, ok := a.(RestoreVM); ok {
				got = r.Host
			}
		}
		if got != tc.want {
			t.Errorf("%s: restored on %q, want %q", tc.name, got, tc.want)
		}
	}
}

// Invalid and stale inputs are refused with a sentinel error and leave the
// state exactly as it was.
func TestApply_RefusedInputsChangeNothing(t *testing.T) {
	for _, tc := range []struct {
		in   Input
		want error
	}{
		{nil, ErrInvalid},
		{NodeFailed{At: t0, Host: "nope"}, ErrUnknownHost},
		{NodeFailed{At: t0}, ErrInvalid},
		{NodeFault{At: t0, Host: "h1", Severity: "bad"}, ErrInvalid},
		{VMFailed{At: t0, Host: "h1", VM: "nope"}, ErrUnknownVM},
		{VMFailed{At: t0, Host: "h2", VM: "v1"}, ErrStale},
		{VMRegistered{At: t0, Config: VMConfig{Name: "x"}}, ErrInvalid},
		{VMRegistered{At: t0, Config: VMConfig{Name: "x", MemoryMiB: 1, Policy: "sometimes"}}, ErrInvalid},
		{VMRegistered{At: t0, Config: VMConfig{Name: "x", MemoryMiB: 1}, Host: "nope"}, ErrUnknownHost},
		{VMRegistered{At: t0, Config: VMConfig{Name: "x", Group: "v1", MemoryMiB: 1}}, ErrInvalid},
		{VMUnregistered{At: t0, VM: "nope"}, ErrUnknownVM},
		{CheckpointCommitted{At: t0, Group: "g"}, ErrInvalid},
		{CheckpointDeleted{At: t0, Group: "nope", Seq: 1}, ErrUnknownGroup},
		{Result{At: t0, Kind: OpRestore, VM: "v1", Epoch: Epoch{1, 99}, Outcome: OutcomeOK}, ErrStale},
		{Result{At: t0, Kind: OpFence, Host: "h1", Epoch: Epoch{1, 1}, Outcome: OutcomeOK}, ErrStale},
		{Result{At: t0, Kind: "reboot", Epoch: Epoch{1, 1}, Outcome: OutcomeOK}, ErrInvalid},
		{Result{At: t0, Kind: OpRestore, VM: "v1", Epoch: Epoch{1, 1}, Outcome: "fine"}, ErrInvalid},
		{Result{At: t0, Kind: OpCheckpoint, Group: "nope", Epoch: Epoch{1, 1}, Outcome: OutcomeOK}, ErrUnknownGroup},
		{Leader{At: t0, Term: 1}, ErrStaleTerm},
		{SetPolicy{At: t0}, ErrInvalid},
		{MoveVM{At: t0, VM: "v1", Host: "nope"}, ErrUnknownHost},
		{RestartVM{At: t0, VM: "nope"}, ErrUnknownVM},
		{Maintenance{At: t0, Host: "nope", On: true}, ErrUnknownHost},
		{HostBeat{At: t0, Host: "h1", Incarnation: "i", Seq: 1}, ErrStale},
		{HostBeat{At: t0, Host: "h9", FreeMiB: -1}, ErrInvalid},
	} {
		s := cluster(t, 2, 1)
		s.TakeChanges()
		before := s.Clone()
		acts, err := Apply(s, tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("%T %+v: err %v, want %v", tc.in, tc.in, err, tc.want)
		}
		if acts != nil || !sameState(before, s) || !s.TakeChanges().Empty() {
			t.Errorf("%T %+v: refused but changed the state or acted: %v", tc.in, tc.in, acts)
		}
	}
}

// A supervisor that does not lead yet (term 0) plans but is not heard; when
// it becomes leader, what it planned is sent.
func TestApply_FollowerPlansLeaderSends(t *testing.T) {
	s := NewState(DefaultPolicy())
	for _, in := range []Input{
		HostBeat{At: t0, Host: "h1", Incarnation: "i", Seq: 1, CapacityMiB: 65536, FreeMiB: 65536, Domains: []string{"v"}},
		HostBeat{At: t0, Host: "h2", Incarnation: "i", Seq: 1, CapacityMiB: 65536, FreeMiB: 65536},
		HostBeat{At: t0, Host: "h3", Incarnation: "i", Seq: 1, CapacityMiB: 65536, FreeMiB: 65536},
		VMRegistered{At: t0, Config: VMConfig{Name: "v", MemoryMiB: 1024}, Host: "h1"},
		CheckpointCommitted{At: t0, Group: "v", Seq: 4},
		NodeFailed{At: t0, Host: "h1", LastBeat: t0},
	} {
		if acts, err := Apply(s, in); err != nil || acts != nil {
			t.Fatalf("%T: %v %v", in, acts, err)
		}
	}
	acts, err := Apply(s, Leader{At: t0, Term: 3})
	if err != nil || len(acts) != 1 {
		t.Fatalf("leader: %v %v", acts, err)
	}
	if f, ok := acts[0].(FenceHost); !ok || f.Host != "h1" || f.Epoch != (Epoch{3, 1}) {
		t.Fatalf("leader sent %v, want the fence of h1 with epoch 3.1", acts[0])
	}
}
