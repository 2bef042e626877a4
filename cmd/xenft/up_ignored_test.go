package main

import "testing"

// The summary names each role's ignored inputs by reason, sorted, and says
// nothing when nothing was ignored.
func TestIgnoredSummaryLine(t *testing.T) {
	if got := ignoredLine(map[string]map[string]uint64{}, ".xenft/xenft-up.log"); got != "" {
		t.Fatalf("nothing ignored: %q", got)
	}
	got := ignoredLine(map[string]map[string]uint64{
		"supervisor": {"unknown_vm": 1, "unknown_host": 3},
		"detector":   {"duplicate": 2},
	}, ".xenft/xenft-up.log")
	want := "  ignored inputs (lines in .xenft/xenft-up.log): detector duplicate=2; supervisor unknown_host=3 unknown_vm=1\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
