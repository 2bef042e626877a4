package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A host failed by a fatal fault that still beats shows its state and the
// fault under its row (issue 12: status said "healthy" with no fault).
func TestStatusShowsAHostsFaultAndState(t *testing.T) {
	rep := statusReport{Hosts: []statusHost{
		{Name: "n1", State: "healthy", LastBeat: time.Now(), FreeMiB: 4096, Reached: true},
		{Name: "n2", State: "fenced", Fault: "fatal", FaultReason: "IPMI SEL: uncorrectable ECC error, DIMM A2", LastBeat: time.Now(), Reached: true},
	}}
	var out bytes.Buffer
	printStatus(&out, rep)
	lines := strings.Split(out.String(), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "n2 ") {
			if !strings.Contains(l, "fenced") || i+1 >= len(lines) ||
				strings.TrimSpace(lines[i+1]) != "fatal fault: IPMI SEL: uncorrectable ECC error, DIMM A2" {
				t.Fatalf("n2 shown as:\n%s\n%s", l, lines[i+1])
			}
		}
		if strings.HasPrefix(l, "n1 ") && strings.Contains(lines[i+1], "fault") {
			t.Fatalf("n1 has no fault, shown as:\n%s\n%s", l, lines[i+1])
		}
	}
	if !strings.Contains(out.String(), "n2 ") {
		t.Fatalf("no row for n2:\n%s", out.String())
	}
}
