package main

import (
	"os"
	"path/filepath"
	"testing"
)

// With FAKEXL_CALLS set, every invocation is recorded before anything else
// happens, even one the fake refuses.
func TestEveryCallIsRecordedInTheCallLog(t *testing.T) {
	f := newFakeRun(t)
	log := filepath.Join(t.TempDir(), "calls.jsonl")
	t.Setenv("FAKEXL_CALLS", log)
	f.xl("list")
	f.xl("destroy", "no such domain")
	f.xl("-x")
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := `["list"]` + "\n" + `["destroy","no such domain"]` + "\n" + `["-x"]` + "\n"
	if string(data) != want {
		t.Fatalf("call log:\n%s\nwant:\n%s", data, want)
	}
}
