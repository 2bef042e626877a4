package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
)

// xenftBin is the binary under test, built once by TestMain: the CLI is tested
// as users run it, as a separate process.
var xenftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xenft-cli")
	if err != nil {
		panic(err)
	}
	xenftBin = filepath.Join(dir, "xenft")
	build := exec.Command("go", "build", "-race", "-o", xenftBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build xenft: " + err.Error())
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// xenft runs the binary to completion with a deadline.
func xenft(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, xenftBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run xenft %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

const validFault = `{"host":"n3","severity":"fatal","reason":"IPMI: PSU failure"}`

func TestPublishedFaultIsSeenByTailAndDurableConsumer(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	url := s.ClientURL()

	// A durable consumer, as the supervisor will have.
	var mu sync.Mutex
	var got []events.Event
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, events.ConsumeConfig{Durable: "supervisor"}, func(_ context.Context, ev events.Event, _ events.Meta) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, ev)
			return nil
		})
	}()
	defer func() { cancel(); <-done }()

	// `xenft events tail` as a monitor runs it, in JSON to parse it here.
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer tcancel()
	tail := exec.CommandContext(tctx, xenftBin, "events", "tail", "--nats", url, "--json", "--count", "1", "--since", "1m", "--type", "node.fault")
	var tailOut bytes.Buffer
	tail.Stdout = &tailOut
	tail.Stderr = os.Stderr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}

	r := xenft(t, nil, "event", "publish", "--nats", url, "--type", "node.fault", "--subject", "host/n3", "--data", validFault)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "published node.fault host/n3 id=") {
		t.Fatalf("publish: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if err := tail.Wait(); err != nil {
		t.Fatalf("tail: %v", err)
	}
	var tailed events.Event
	if err := json.Unmarshal(tailOut.Bytes(), &tailed); err != nil {
		t.Fatalf("tail output %q: %v", tailOut.String(), err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 }, "durable consumer did not receive the event")
	mu.Lock()
	defer mu.Unlock()
	fault, err := events.DataAs[events.NodeFault](got[0])
	if err != nil || fault.Severity != events.SeverityFatal || fault.Host != "n3" {
		t.Fatalf("consumer got %+v, %v", fault, err)
	}
	if tailed.ID != got[0].ID || !strings.Contains(r.stdout, got[0].ID) {
		t.Fatalf("ids differ: publish said %q, tail %s, consumer %s", r.stdout, tailed.ID, got[0].ID)
	}
}

func TestInvalidEventIsRefusedWithExit2AndNothingPublished(t *testing.T) {
	s := eventstest.Server(t)
	b := eventstest.Bus(t, s)
	url := s.ClientURL()
	cases := []struct {
		name  string
		args  []string
		names string // what the one-line error must name
	}{
		{"bad severity", []string{"--type", "node.fault", "--subject", "host/n3", "--data", `{"host":"n3","severity":"meh","reason":"x"}`}, "/data/severity"},
		{"missing reason", []string{"--type", "node.fault", "--subject", "host/n3", "--data", `{"host":"n3","severity":"fatal"}`}, "'reason'"},
		{"misspelt field", []string{"--type", "node.fault", "--subject", "host/n3", "--data", `{"host":"n3","sevrity":"fatal","reason":"x"}`}, "sevrity"},
		{"not json", []string{"--type", "node.fault", "--subject", "host/n3", "--data", `{"host":`}, "--data"},
		{"unknown type", []string{"--type", "node.exploded", "--subject", "host/n3", "--data", `{}`}, "--type"},
		{"subject mismatch", []string{"--type", "node.fault", "--subject", "host/n4", "--data", validFault}, "subject"},
		{"missing data", []string{"--type", "node.fault", "--subject", "host/n3"}, "--data"},
		{"data file missing", []string{"--type", "node.fault", "--subject", "host/n3", "--data", "@/nonexistent.json"}, "--data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := xenft(t, nil, append([]string{"event", "publish", "--nats", url}, c.args...)...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, exitUsage, r.stderr)
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines != 0 || !strings.Contains(r.stderr, c.names) {
				t.Fatalf("stderr %q: want one line naming %q", r.stderr, c.names)
			}
		})
	}
	st, err := b.JetStream().Stream(context.Background(), b.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("stream holds %d events after refused publishes", info.State.Msgs)
	}
}

func TestBadConfigurationExits2NamingTheKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name  string
		env   []string
		args  []string
		names string
	}{
		{"unknown key", nil, []string{"--config", write("typo.yaml", "bus:\n  urlz: [x]\n")}, "bus.urlz"},
		{"bad yaml", nil, []string{"--config", write("bad.yaml", "bus: [\n")}, "bad.yaml"},
		{"missing file", nil, []string{"--config", filepath.Join(dir, "none.yaml")}, "--config"},
		{"bad replicas in file", nil, []string{"--config", write("r.yaml", "bus:\n  replicas: 0\n")}, "bus.replicas"},
		{"bad duration from env", []string{"XENFT_BUS_CONNECT_TIMEOUT=banana"}, nil, "bus.connect_timeout"},
		{"bad log level from env", []string{"XENFT_LOG_LEVEL=loud"}, nil, "log.level"},
		{"bad prefix from flag-less env", []string{"XENFT_BUS_PREFIX=a.b"}, nil, "bus.prefix"},
		{"unknown flag", nil, []string{"--sinse", "5m"}, "--sinse"},
		{"negative since", nil, []string{"--since", "-5m"}, "--since"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := xenft(t, c.env, append([]string{"events", "tail"}, c.args...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.names) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("exit %d stderr %q: want exit 2 and one line naming %q", r.code, r.stderr, c.names)
			}
		})
	}
}

func TestServerClusterFromExampleConfigs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes; skipped with -short")
	}
	// The example files use fixed loopback ports 4222-4224 and 6222-6224.
	root, _ := filepath.Abs("../..")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var procs []*exec.Cmd
	ready := make(chan string, 3)
	for i := 1; i <= 3; i++ {
		cfg := filepath.Join(root, "configs", "cluster", "n"+string(rune('0'+i))+".yaml")
		cmd := exec.CommandContext(ctx, xenftBin, "server", "--config", cfg, "--log-level", "warn")
		cmd.Env = append(os.Environ(), "XENFT_SERVER_DATA_DIR="+t.TempDir())
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "ready:") {
					ready <- sc.Text()
				}
			}
		}()
	}
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	for i := 0; i < 3; i++ {
		select {
		case <-ready:
		case <-ctx.Done():
			t.Fatal("cluster servers not ready (are ports 4222-4224/6222-6224 free?)")
		}
	}
	// The R3 resources exist: a client of the cluster writes and reads a bucket.
	cfg := events.DefaultBusConfig()
	cfg.URLs = []string{"nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"}
	cfg.Replicas = 3
	b, err := events.Connect(cfg, eventstest.Logger(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv, err := b.KV(ctx, b.Names().Hosts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "n1", []byte("up")); err != nil {
		t.Fatalf("put into R3 bucket: %v", err)
	}
	info, err := b.JetStream().Stream(ctx, b.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("event stream replicas = %d, want 3", r)
	}
	// SIGINT stops each server cleanly with exit 0.
	for _, p := range procs {
		_ = p.Process.Signal(os.Interrupt)
	}
	for i, p := range procs {
		if err := p.Wait(); err != nil {
			t.Errorf("server n%d exit: %v", i+1, err)
		}
	}
	procs = nil
}
