package core

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Decision latency on a large cluster: 1,000 hosts, 10,000 VMs (10 per host),
// in groups of groupSize spread over consecutive hosts, every group with a
// committed checkpoint. Run with:
//
//	go test -run '^$' -bench . -benchmem ./supervisor/core

const (
	benchHosts = 1000
	benchVMs   = 10000
)

// bigState builds the cluster and returns it leading in term 1.
func bigState(b *testing.B, groupSize int) *State {
	b.Helper()
	s := NewState(DefaultPolicy())
	at := t0
	apply := func(in Input) {
		if _, err := Apply(s, in); err != nil {
			b.Fatal(err)
		}
	}
	apply(Leader{At: at, Term: 1})
	domains := make([][]string, benchHosts)
	for i := range benchVMs {
		domains[i%benchHosts] = append(domains[i%benchHosts], fmt.Sprintf("vm%05d", i))
	}
	for i := range benchHosts {
		apply(HostBeat{At: at, Host: fmt.Sprintf("h%04d", i), Incarnation: "i1", Seq: 1,
			CapacityMiB: 262144, FreeMiB: 262144 - 10*4096, Domains: domains[i]})
	}
	for i := range benchVMs {
		c := VMConfig{Name: fmt.Sprintf("vm%05d", i), MemoryMiB: 4096, Priority: i % 3, Policy: PolicyRestore}
		if groupSize > 1 {
			c.Group = fmt.Sprintf("g%04d", i/groupSize)
		}
		apply(VMRegistered{At: at, Config: c, Host: fmt.Sprintf("h%04d", i%benchHosts)})
		if i%groupSize == groupSize-1 {
			apply(CheckpointCommitted{At: at, Group: groupOf(c), Seq: 1})
		}
	}
	s.TakeChanges()
	return s
}

// runDecision measures decide(s) on a fresh copy of base each iteration.
func runDecision(b *testing.B, base *State, decide func(s *State) int) {
	b.ReportAllocs()
	var cmds int
	for b.Loop() {
		b.StopTimer()
		s := base.Clone()
		s.index()
		b.StartTimer()
		cmds = decide(s)
	}
	b.ReportMetric(float64(cmds), "commands/op")
}

func mustApply(b *testing.B, s *State, in Input) []Action {
	acts, err := Apply(s, in)
	if err != nil {
		b.Fatal(err)
	}
	return acts
}

func countCommands(acts []Action, kind OpKind) int {
	n := 0
	for _, a := range acts {
		if c, ok := a.(Command); ok && (kind == "" || c.Op().Kind == kind) {
			n++
		}
	}
	return n
}

// BenchmarkApply_NodeFailed_Groups: node.failed of one host whose 10 VMs
// belong to 10 groups of 5: 10 rollbacks are planned and the fence is sent
// (the 40 members on healthy hosts wait for it).
func BenchmarkApply_NodeFailed_Groups(b *testing.B) {
	base := bigState(b, 5)
	at := t0.Add(2 * time.Second)
	runDecision(b, base, func(s *State) int {
		return countCommands(mustApply(b, s, NodeFailed{At: at, Host: "h0500", LastBeat: t0}), "")
	})
}

// BenchmarkApply_FenceToRollback_Groups: node.failed, then the fence's
// success: the 10 lost members' restores and the 40 survivors' destroys.
func BenchmarkApply_FenceToRollback_Groups(b *testing.B) {
	base := bigState(b, 5)
	at := t0.Add(2 * time.Second)
	runDecision(b, base, func(s *State) int {
		acts := mustApply(b, s, NodeFailed{At: at, Host: "h0500", LastBeat: t0})
		fence := acts[0].(FenceHost)
		return countCommands(mustApply(b, s, ResultOf(fence, at, OutcomeOK, "")), "")
	})
}

// BenchmarkApply_FenceToRestores_Single: node.failed, then the fence
// command's success: the restores of the host's 10 lone VMs are placed and
// sent. Together the two Applies are the decision latency of one host's
// failure (node.failed -> every restore command sent).
func BenchmarkApply_FenceToRestores_Single(b *testing.B) {
	base := bigState(b, 1)
	at := t0.Add(2 * time.Second)
	runDecision(b, base, func(s *State) int {
		acts := mustApply(b, s, NodeFailed{At: at, Host: "h0500", LastBeat: t0})
		fence := acts[0].(FenceHost)
		return countCommands(mustApply(b, s, ResultOf(fence, at, OutcomeOK, "")), OpRestore)
	})
}

// BenchmarkApply_Burst10Hosts: 10 hosts fail at once (100 lone VMs) and are
// fenced by their self-fence deadline on one tick: 10 node.failed and the tick
// that places and sends all 100 restores.
func BenchmarkApply_Burst10Hosts(b *testing.B) {
	base := bigState(b, 1)
	at := t0.Add(2 * time.Second)
	runDecision(b, base, func(s *State) int {
		for i := range 10 {
			mustApply(b, s, NodeFailed{At: at, Host: fmt.Sprintf("h%04d", 100*i), LastBeat: t0})
		}
		return countCommands(mustApply(b, s, Tick{At: at.Add(time.Minute)}), OpRestore)
	})
}

// BenchmarkApply_HeartbeatQuiet: the steady state, a beat of one host of a
// quiet 10,000-VM cluster (every host beats every second or so).
func BenchmarkApply_HeartbeatQuiet(b *testing.B) {
	s := bigState(b, 5)
	in := HostBeat{At: t0, Host: "h0500", Incarnation: "i1", Seq: 1, CapacityMiB: 262144,
		FreeMiB: 262144 - 10*4096, Domains: []string{"vm00500", "vm01500", "vm02500", "vm03500", "vm04500",
			"vm05500", "vm06500", "vm07500", "vm08500", "vm09500"}}
	b.ReportAllocs()
	for b.Loop() {
		in.Seq++
		in.At = in.At.Add(time.Second)
		mustApply(b, s, in)
	}
}

// BenchmarkApply_TickQuiet: a tick on a quiet 10,000-VM cluster.
func BenchmarkApply_TickQuiet(b *testing.B) {
	s := bigState(b, 5)
	at := t0
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		mustApply(b, s, Tick{At: at})
	}
}

// BenchmarkClone is what copy-on-write would cost on every input: the reason
// Apply updates the state in place.
func BenchmarkClone(b *testing.B) {
	s := bigState(b, 5)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Clone()
	}
}

// BenchmarkMarshalState: the whole state as one JSON document, as a shell
// persisting it in one key would write it (its size is reported): at this
// scale it exceeds NATS's default 1 MiB message, hence Changes.
func BenchmarkMarshalState(b *testing.B) {
	s := bigState(b, 5)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		data, err := json.Marshal(s)
		if err != nil {
			b.Fatal(err)
		}
		n = len(data)
	}
	b.ReportMetric(float64(n), "bytes/state")
}
