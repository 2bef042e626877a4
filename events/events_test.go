package events

import (
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// samplePayloads has one valid payload of every type; TestEveryTypeHasASample
// keeps it complete.
func samplePayloads() []Payload {
	ep := Epoch{Term: 3, Seq: 17}
	img := CheckpointImage{VM: "mpi-0", Host: "n1", ImageKey: "mpi/4/mpi-0.img", Size: 1 << 20,
		SHA256: strings.Repeat("ab", 32), PausedMs: 120}
	members := []Member{{VM: "mpi-0", Host: "n1"}, {VM: "mpi-1", Host: "n2"}}
	return []Payload{
		NodeSuspect{Host: "n1", Incarnation: "i1", Phi: 5.2, LastBeat: t0, LastSeq: 10, Detector: "d1"},
		NodeFailed{Host: "n1.example.org", Incarnation: "i1", Phi: 8.1, LastBeat: t0, LastSeq: 10, Detector: "d1", Reason: FailedByPhi},
		NodeRecovered{Host: "n1", Incarnation: "i2", PreviousIncarnation: "i1", NewIncarnation: true, LastBeat: t0, LastSeq: 1, Detector: "d1"},
		NodeFault{Host: "n1", Severity: SeverityFatal, Reason: "ipmi: power fault", Detector: "ipmi"},
		NodeFenced{Host: "n1", Method: FenceCommand, Epoch: ep},
		NodeFenced{Host: "n1", Method: FenceAgent, Epoch: ep},
		NodeQuarantined{Host: "n1", Failures: 4, WindowMs: 600000, Reason: "flapping"},
		NodeMaintenance{Host: "n1", Enabled: true, Reason: "bios update", By: "ops"},
		CheckpointStarted{Group: "mpi", Seq: 4, Members: members, Epoch: ep},
		CheckpointCommitted{Group: "mpi", Seq: 4, Images: []CheckpointImage{img}, DurationMs: 900, Epoch: ep},
		CheckpointAborted{Group: "mpi", Seq: 5, Reason: "save failed", VM: "mpi-1", Host: "n2", Epoch: ep},
		CheckpointDeleted{Group: "mpi", Seq: 1, Reason: "retention"},
		VMFailed{VM: "web", Host: "n3", Reason: "domain vanished"},
		VMRestarting{VM: "mpi-0", Group: "mpi", FromHost: "n1", ToHost: "n2", CheckpointSeq: 4, Attempt: 1, Epoch: ep},
		VMRestarted{VM: "mpi-0", Group: "mpi", Host: "n2", CheckpointSeq: 4, DurationMs: 1500, Epoch: ep},
		VMRestartFailed{VM: "mpi-0", Group: "mpi", Host: "n2", Attempt: 1, Error: "xl restore: exit 1", Retryable: true, Epoch: ep},
		VMUnrecoverable{VM: "db", Reason: "no checkpoint and policy forbids cold start"},
		GroupRolledBack{Group: "mpi", CheckpointSeq: 4, Members: members, Reason: "host n1 failed", DurationMs: 2100, Epoch: ep},
		SupervisorLeader{Supervisor: "s1", Term: 3, Since: t0},
		SupervisorRestartsPaused{Supervisor: "s1", Reason: "3 of 4 hosts failed within 1m"},
		SupervisorRestartsResumed{Supervisor: "s1", Reason: "hosts back"},
		SupervisorFenceFailed{Supervisor: "s1", Host: "n1", Error: "no fence command", Attempt: 1},
		SupervisorDrainFailed{Supervisor: "s1", Group: "mpi", Error: "capture barrier timed out"},
		SupervisorInputRejected{Supervisor: "s1", RejectedType: "node.fault", EventID: "e1", Host: "n1", Publisher: "agent/n2",
			ClaimedSource: "xenft/detector/ipmi", Reason: "role agent may not tell node.fault"},
	}
}

func mustNew(t testing.TB, p Payload) Event {
	t.Helper()
	ev, err := New("xenft/test", t0, p)
	if err != nil {
		t.Fatalf("New(%T): %v", p, err)
	}
	return ev
}

func TestEveryTypeHasASampleAndASchemaFile(t *testing.T) {
	seen := map[Type]bool{}
	for _, p := range samplePayloads() {
		seen[p.EventType()] = true
	}
	for _, typ := range Types() {
		if !seen[typ] {
			t.Errorf("no sample payload for %s", typ)
		}
		if _, err := fs.Stat(SchemaFS(), SchemaFile(typ)); err != nil {
			t.Errorf("no schema file for %s: %v", typ, err)
		}
	}
	if len(Types()) != 23 {
		t.Errorf("DESIGN.md names 18 event types and the supervisor adds 5 notices; registry has %d", len(Types()))
	}
}

func TestRoundTripEveryType(t *testing.T) {
	for _, p := range samplePayloads() {
		t.Run(p.EventType().Short(), func(t *testing.T) {
			ev := mustNew(t, p)
			b, err := Encode(ev)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v\n%s", err, b)
			}
			if got.ID != ev.ID || got.Type != ev.Type || got.Subject != ev.Subject || !got.Time.Equal(ev.Time) {
				t.Fatalf("envelope changed: %+v vs %+v", got, ev)
			}
			back, err := got.Payload()
			if err != nil {
				t.Fatalf("Payload: %v", err)
			}
			want, _ := json.Marshal(p)
			have, _ := json.Marshal(back)
			if string(want) != string(have) {
				t.Fatalf("payload changed:\n want %s\n have %s", want, have)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := func() map[string]any {
		ev := mustNew(t, NodeFault{Host: "n1", Severity: SeverityFatal, Reason: "ecc"})
		b, _ := json.Marshal(ev)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	cases := []struct {
		name    string
		edit    func(m map[string]any) any
		wantErr error
		wantMsg string
	}{
		{"not json", func(map[string]any) any { return json.RawMessage(`{"type":`) }, ErrMalformed, ""},
		{"array", func(map[string]any) any { return []int{1} }, ErrMalformed, "not a JSON object"},
		{"unknown type", func(m map[string]any) any { m["type"] = "xenft.node.exploded"; return m }, ErrUnknownType, "xenft.node.exploded"},
		{"missing type", func(m map[string]any) any { delete(m, "type"); return m }, ErrInvalid, "type"},
		{"bad severity", func(m map[string]any) any { m["data"].(map[string]any)["severity"] = "meh"; return m }, ErrInvalid, "/data/severity"},
		{"missing host", func(m map[string]any) any { delete(m["data"].(map[string]any), "host"); return m }, ErrInvalid, "host"},
		{"extra data field", func(m map[string]any) any { m["data"].(map[string]any)["sevrity"] = "x"; return m }, ErrInvalid, "sevrity"},
		{"bad spec version", func(m map[string]any) any { m["specversion"] = "0.3"; return m }, ErrInvalid, "/specversion"},
		{"bad time", func(m map[string]any) any { m["time"] = "yesterday"; return m }, ErrInvalid, "/time"},
		{"host with space", func(m map[string]any) any { m["data"].(map[string]any)["host"] = "n 1"; return m }, ErrInvalid, "/data/host"},
		{"subject mismatch", func(m map[string]any) any { m["subject"] = "host/n2"; return m }, ErrInvalid, "does not match"},
		{"wrong entity", func(m map[string]any) any { m["subject"] = "vm/n1"; return m }, ErrInvalid, "/subject"},
		{"data not object", func(m map[string]any) any { m["data"] = "x"; return m }, ErrInvalid, "/data"},
		{"too large", func(m map[string]any) any {
			m["data"].(map[string]any)["reason"] = strings.Repeat("x", MaxEventSize)
			return m
		}, ErrTooLarge, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := json.Marshal(c.edit(valid()))
			_, err := Decode(b)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("err %q does not name %q", err, c.wantMsg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	ev := mustNew(t, NodeFault{Host: "n1", Severity: "sideways", Reason: "x"})
	if _, err := Encode(ev); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode of invalid severity: err = %v, want ErrInvalid", err)
	}
}

func TestDataAs(t *testing.T) {
	ev := mustNew(t, NodeFailed{Host: "n1", Incarnation: "i", Detector: "d", Reason: FailedBySilence, LastBeat: t0})
	nf, err := DataAs[NodeFailed](ev)
	if err != nil || nf.Reason != FailedBySilence {
		t.Fatalf("DataAs = %+v, %v", nf, err)
	}
	if _, err := DataAs[NodeFault](ev); err == nil {
		t.Fatal("DataAs of the wrong type succeeded")
	}
}

func TestDropCounter(t *testing.T) {
	var c DropCounter
	for _, b := range [][]byte{[]byte("{"), []byte(`{"type":"xenft.nope"}`), []byte(`{"type":"xenft.node.fault"}`), make([]byte, MaxEventSize+1)} {
		_, err := Decode(b)
		_ = c.Count(err)
	}
	if s := c.Stats(); s != (DropStats{TooLarge: 1, Malformed: 1, Unknown: 1, Invalid: 1}) {
		t.Fatalf("stats = %+v", s)
	}
}

func TestSubjects(t *testing.T) {
	s := Subjects{}
	if got := s.Event(TypeNodeFailed, "n3"); got != "xenft.events.node.failed.n3.anonymous._" {
		t.Errorf("Event = %q", got)
	}
	if got := s.EventFrom(TypeNodeFailed, "n3", Publisher{Role: RoleDetector, Name: "det.a"}); got != "xenft.events.node.failed.n3.detector.det%2Ea" {
		t.Errorf("EventFrom = %q", got)
	}
	if got := (Subjects{Prefix: "site"}).Event(TypeVMRestartFailed, "db.prod"); got != "site.events.vm.restart_failed.db%2Eprod.anonymous._" {
		t.Errorf("Event with dots = %q", got)
	}
	if got := s.EventsAbout(TypeNodeFault, "n1.dc"); got != "xenft.events.node.fault.n1%2Edc.>" {
		t.Errorf("EventsAbout = %q", got)
	}
	if got := s.EventsOfType(TypeCheckpointCommitted); got != "xenft.events.checkpoint.committed.>" {
		t.Errorf("EventsOfType = %q", got)
	}
	if got := s.Command("n1.dc", "checkpoint.save"); got != "xenft.cmd.n1%2Edc.checkpoint.save" {
		t.Errorf("Command = %q", got)
	}
	if got := s.Heartbeat("n1"); got != "xenft.hb.n1" {
		t.Errorf("Heartbeat = %q", got)
	}
	if got := s.Probe("n1.dc"); got != "xenft.hb.probe.n1%2Edc" {
		t.Errorf("Probe = %q", got)
	}
}

func TestEscapeTokenRoundTrip(t *testing.T) {
	for _, s := range []string{"", "n1", "a.b.c", "50%", "x*y>z", "tab\there", "ünï"} {
		tok := EscapeToken(s)
		if strings.ContainsAny(tok, ".*> \t") || tok == "" {
			t.Errorf("EscapeToken(%q) = %q is not a safe token", s, tok)
		}
		back, err := UnescapeToken(tok)
		if s == "" {
			continue // "" is written as "_" and is not reversible by design
		}
		if err != nil || back != s {
			t.Errorf("UnescapeToken(EscapeToken(%q)) = %q, %v", s, back, err)
		}
	}
	if _, err := UnescapeToken("bad%G1"); err == nil {
		t.Error("bad escape accepted")
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]Type{"node.fault": TypeNodeFault, "xenft.vm.restarted": TypeVMRestarted} {
		if got, ok := ParseType(in); !ok || got != want {
			t.Errorf("ParseType(%q) = %q, %v", in, got, ok)
		}
	}
	if _, ok := ParseType("node.nope"); ok {
		t.Error("unknown type accepted")
	}
}
