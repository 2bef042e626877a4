package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events/eventstest"
)

// startUp runs `xenft up` (embedded NATS, a supervisor, 4 sim hosts with
// their agents, the demo's groups) as a separate process, as an operator
// would, and returns what its first line says: its NATS URL, the directory
// of its image store, and the client configuration of its operator
// credential. It is interrupted and waited for when the test ends.
func startUp(t *testing.T, args ...string) upStarted {
	t.Helper()
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, xenftBin, append([]string{"up", "--json", "--port", "-1", "--data", data, "--checkpoint-every", "1h"}, args...)...)
	cmd.Dir = data
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		cancel()
	})
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	if !lines.Scan() {
		t.Fatalf("xenft up printed nothing: %v", lines.Err())
	}
	var started upStarted
	if err := json.Unmarshal(lines.Bytes(), &started); err != nil || started.Kind != "started" {
		t.Fatalf("first line of xenft up: %q (%v)", lines.Text(), err)
	}
	go func() { // keep reading, so up never blocks on a full pipe
		for lines.Scan() {
		}
	}()
	if !filepath.IsAbs(started.StoreDir) {
		started.StoreDir = filepath.Join(data, started.StoreDir)
	}
	if started.OperatorConfig != "" && !filepath.IsAbs(started.OperatorConfig) {
		started.OperatorConfig = filepath.Join(data, started.OperatorConfig)
	}
	return started
}

// upStarted is the first line of `xenft up --json`.
type upStarted struct {
	Kind           string `json:"kind"`
	NATSURL        string `json:"nats_url"`
	StoreDir       string `json:"store_dir"`
	Secured        bool   `json:"secured"`
	AuthDir        string `json:"auth_dir"`
	OperatorConfig string `json:"operator_config"`
	NATSCLI        string `json:"nats_cli"`
}

// The checkpoint commands as an operator uses them on a running cluster:
// take one and wait, list and show it in every form, then damage an image
// and watch verify reject it and name the checkpoint the group would roll
// back to instead; and every bad request is one line and a non-zero exit.
func TestCheckpointCommandsOnARunningCluster(t *testing.T) {
	up := startUp(t)
	images := up.StoreDir
	nats := []string{"--config", up.OperatorConfig} // xenft up is secured: the operator's credential
	run := func(args ...string) result { return xenft(t, nil, append(args, nats...)...) }

	// The demo registers group mpi (3 VMs on 3 hosts); once every member
	// runs, the supervisor accepts a checkpoint.
	var now result
	eventstest.Eventually(t, 60*time.Second, func() bool {
		now = run("checkpoint", "now", "--group", "mpi", "--wait", "--timeout", "20s")
		return now.code == 0
	}, "checkpoint now never succeeded: %+v", now)
	var seq uint64
	if _, err := fmt.Sscanf(now.stdout, "checkpoint mpi/%d committed: 3 members", &seq); err != nil {
		t.Fatalf("checkpoint now printed %q: %v", now.stdout, err)
	}
	// A second one, so verify has an older checkpoint to fall back to.
	again := run("checkpoint", "now", "--group", "mpi", "--wait", "--timeout", "20s")
	var latest uint64
	if _, err := fmt.Sscanf(again.stdout, "checkpoint mpi/%d committed", &latest); err != nil || latest <= seq {
		t.Fatalf("second checkpoint now: exit %d, %q %q", again.code, again.stdout, again.stderr)
	}

	list := run("checkpoint", "list", "--group", "mpi", "--json")
	var recs []checkpointer.Record
	if err := json.Unmarshal([]byte(list.stdout), &recs); err != nil || list.code != 0 {
		t.Fatalf("checkpoint list --json: exit %d, %q: %v", list.code, list.stdout, err)
	}
	var listed *checkpointer.Record
	for i := range recs {
		if recs[i].Seq == latest {
			listed = &recs[i]
		}
	}
	if listed == nil || listed.State != checkpointer.Committed || len(listed.Members) != 3 {
		t.Fatalf("list has no committed mpi/%d of 3 members: %+v", latest, recs)
	}

	// show: GROUP SEQ, GROUP/SEQ (as list and verify print it), GROUP for
	// the latest committed: the same record each time.
	for _, args := range [][]string{{"mpi", fmt.Sprint(latest)}, {fmt.Sprintf("mpi/%d", latest)}, {"mpi"}} {
		r := run(append([]string{"checkpoint", "show", "--json"}, args...)...)
		var got checkpointer.Record
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
			t.Fatalf("show %v: exit %d, %q %q: %v", args, r.code, r.stdout, r.stderr, err)
		}
		if got.Seq != latest || got.Members[0].SHA256 != listed.Members[0].SHA256 {
			t.Fatalf("show %v: mpi/%d sha %s, list said mpi/%d sha %s", args, got.Seq, got.Members[0].SHA256, latest, listed.Members[0].SHA256)
		}
	}
	text := run("checkpoint", "show", "mpi")
	if !strings.Contains(text.stdout, fmt.Sprintf("checkpoint mpi/%d: committed", latest)) || !strings.Contains(text.stdout, listed.Members[0].ImageKey) {
		t.Fatalf("show mpi (text): %q", text.stdout)
	}

	if r := run("checkpoint", "verify", "mpi", "--store-dir", images); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("mpi/%d: verified (3 images)", latest)) {
		t.Fatalf("verify before any damage: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// One flipped byte in one member's image of the latest checkpoint.
	img := filepath.Join(images, filepath.FromSlash(listed.Members[1].ImageKey))
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 4096); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	v := run("checkpoint", "verify", "mpi", "--store-dir", images)
	if v.code != 0 || !strings.Contains(v.stdout, fmt.Sprintf("mpi/%d: REJECTED", latest)) ||
		!strings.Contains(v.stdout, listed.Members[1].ImageKey) || !strings.Contains(v.stdout, fmt.Sprintf("mpi/%d: verified", seq)) {
		t.Fatalf("verify after damaging %s: exit %d, %q %q", listed.Members[1].ImageKey, v.code, v.stdout, v.stderr)
	}

	for _, c := range []struct {
		args  []string
		code  int
		names string
	}{
		{[]string{"checkpoint", "show", "mpi", "x"}, 2, `SEQ: "x"`},
		{[]string{"checkpoint", "show", "mpi/0"}, 2, `SEQ: "0"`},
		{[]string{"checkpoint", "show", "a/b/1"}, 2, `GROUP: "a/b"`},
		{[]string{"checkpoint", "show"}, 2, "GROUP SEQ"},
		{[]string{"checkpoint", "show", "nosuch", "1"}, 1, "nosuch/1"},
		{[]string{"checkpoint", "show", "nosuch"}, 1, "group nosuch"},
		{[]string{"checkpoint", "now", "--group", "nosuch", "--wait", "--timeout", "10s"}, 1, `"nosuch"`},
		{[]string{"checkpoint", "now"}, 2, "--group"},
		{[]string{"checkpoint", "verify", "nosuch", "--store-dir", images}, 1, "nosuch"},
		{[]string{"checkpoint", "verify", "mpi", "--store-backend", "tape"}, 2, "store.backend"},
		{[]string{"checkpoint", "verify", "mpi", "--store-dir", filepath.Join(images, "nosuch")}, 1, "store.dir"},
	} {
		r := run(c.args...)
		if r.code != c.code || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.names) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d and one line naming %s", c.args, r.code, r.stderr, r.stdout, c.code, c.names)
		}
	}
	if _, err := os.Stat(filepath.Join(images, "nosuch")); err == nil {
		t.Error("verify --store-dir of a missing directory created it")
	}
}
