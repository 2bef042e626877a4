package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rerun of xenft up on a reused data directory starts from an empty bus,
// says what it removed, keeps the log, and refuses a directory in use.
func TestUpStartsFreshOnAReusedDataDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"nats/jetstream/x", "images/mpi", "hosts/n1/spool"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "xenft-up.log"), []byte("old run\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	lock, err := startFresh(dir, &out)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "starting fresh: removed the previous run's state in "+dir+" (nats, images, hosts)") {
		t.Fatalf("message: %q", got)
	}
	for _, name := range upStateDirs {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("%s left behind: %v", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "xenft-up.log")); err != nil || string(b) != "old run\n" {
		t.Fatalf("the log was not kept: %q, %v", b, err)
	}
	if _, err := startFresh(dir, &out); err == nil || !strings.Contains(err.Error(), "another xenft up is using it") {
		t.Fatalf("second run on a directory in use: %v", err)
	}
	lock.Close()
	out.Reset()
	lock, err = startFresh(dir, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if out.Len() != 0 {
		t.Fatalf("nothing to remove, yet it said %q", out.String())
	}
}
