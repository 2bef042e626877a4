package lazyfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The NATS tests run the server in a child process (this test binary,
// re-executed: see TestMain) with its JetStream store on the mount, and end
// it with SIGKILL. That models a power loss honestly: the server's own
// buffers die with it and no shutdown code flushes or syncs anything; then
// PowerLoss drops what the server wrote but did not fsync. An in-process
// server.Shutdown would instead flush and sync its stores on the way out.

const (
	childStoreEnv = "LAZYFS_TEST_NATS_STORE"       // the child's StoreDir
	childSyncEnv  = "LAZYFS_TEST_NATS_SYNC_ALWAYS" // "1": SyncAlways
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childStoreEnv); dir != "" {
		os.Exit(runNATSChild(dir, os.Getenv(childSyncEnv) == "1"))
	}
	os.Exit(m.Run())
}

// runNATSChild serves JetStream on a free loopback port, prints its URL,
// and runs until SIGTERM (a clean shutdown) or until its stdin closes (the
// test process died).
func runNATSChild(dir string, syncAlways bool) int {
	ns, err := server.NewServer(&server.Options{
		ServerName: "lazyfs-test",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: syncAlways,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats server not ready in 20s")
		return 1
	}
	fmt.Printf("url=%s\n", ns.ClientURL())
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	orphaned := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(orphaned)
	}()
	select {
	case <-term:
	case <-orphaned:
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	return 0
}

// natsChild is a running child server.
type natsChild struct {
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
}

// startNATS starts a child server on store and waits for its URL; the test
// kills it when it ends (before the mount's cleanup unmounts).
func startNATS(t *testing.T, store string, syncAlways bool) *natsChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	sync := "0"
	if syncAlways {
		sync = "1"
	}
	cmd.Env = append(os.Environ(), childStoreEnv+"="+store, childSyncEnv+"="+sync)
	stderr, err := os.CreateTemp(t.TempDir(), "nats-stderr")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &natsChild{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		c.kill(t)
		if t.Failed() {
			out, _ := os.ReadFile(stderr.Name())
			t.Logf("nats child stderr:\n%s", out)
		}
	})
	urls := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		urls <- strings.TrimSpace(strings.TrimPrefix(line, "url="))
		io.Copy(io.Discard, stdout)
	}()
	select {
	case c.url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatal("the nats child printed no URL in 30s")
	}
	if c.url == "" {
		t.Fatal("the nats child exited before it served")
	}
	return c
}

// kill SIGKILLs the child and reaps it; it is a no-op the second time.
func (c *natsChild) kill(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Kill()
	c.stdin.Close()
	err := c.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Errorf("reap the nats child: %v", err)
	}
}

// natsRun is what one power-loss run saw.
type natsRun struct {
	acked    int   // messages the server acknowledged before the kill
	survived int   // of those, read back intact after the restart
	stream   bool  // the stream itself survived
	lost     Loss  // what PowerLoss dropped
	stats    Stats // the file system's counters at the power loss
}

// natsCase is how a run syncs.
type natsCase struct {
	syncAlways bool // the server's SyncAlways
	// syncStream writes everything back (FS.Sync) once the stream is
	// created, as the kernel's periodic write-back would in a real run
	// that lasts longer than its 30 s: the stream's metadata is durable,
	// the messages that follow are not.
	syncStream bool
}

// runNATSPowerLoss publishes n acknowledged messages to a file stream on
// the mount, kills the server, cuts the power, restarts the server on the
// same store and reads back what survived.
func runNATSPowerLoss(t *testing.T, c natsCase, n int) natsRun {
	lfs, _, mnt := mountT(t)
	store := filepath.Join(mnt, "jetstream")
	var run natsRun

	child := startNATS(t, store, c.syncAlways)
	js := connectJS(t, child.url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "LAZY",
		Subjects: []string{"lazy.>"},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if c.syncStream {
		if err := lfs.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		ack, err := js.Publish(ctx, fmt.Sprintf("lazy.%d", i), payload(i))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Sequence != uint64(i) {
			t.Fatalf("publish %d: acked as sequence %d", i, ack.Sequence)
		}
		run.acked++
	}
	child.kill(t)
	run.stats = lfs.Stats()
	run.lost = lfs.PowerLoss()

	child = startNATS(t, store, c.syncAlways)
	js = connectJS(t, child.url)
	stream, err := js.Stream(ctx, "LAZY")
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return run
	}
	if err != nil {
		t.Fatal(err)
	}
	run.stream = true
	for i := 1; i <= n; i++ {
		msg, err := stream.GetMsg(ctx, uint64(i))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get message %d: %v", i, err)
		}
		if string(msg.Data) != string(payload(i)) || msg.Subject != fmt.Sprintf("lazy.%d", i) {
			t.Errorf("message %d came back as %s %q", i, msg.Subject, msg.Data)
			continue
		}
		run.survived++
	}
	return run
}

func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func payload(i int) []byte { return []byte(fmt.Sprintf("message %d, acknowledged", i)) }

func (r natsRun) String() string {
	return fmt.Sprintf("%d acked, stream survived: %v, %d read back; %d writes and %d fsyncs through the mount, the power loss dropped %+v",
		r.acked, r.stream, r.survived, r.stats.Writes, r.stats.Fsyncs, r.lost)
}

// Rule: data fsynced before the ack survives a power loss. With SyncAlways
// every message is fsynced before it is acknowledged, so all come back.
func TestNATS_SyncAlwaysKeepsEveryAckedMessage(t *testing.T) {
	const n = 200
	run := runNATSPowerLoss(t, natsCase{syncAlways: true}, n)
	t.Logf("SyncAlways: %v", run)
	if !run.stream || run.survived != n {
		t.Errorf("SyncAlways: %d of %d acknowledged messages survived the power loss (stream survived: %v)", run.survived, n, run.stream)
	}
}

// Rule: unsynced data is lost. With the default lazy sync (every 2 min)
// the server fsyncs nothing during the run, so acknowledged messages are
// lost: this proves the file system really drops data. Without a sync the
// stream itself goes (its meta.inf was created, so it exists, but empty);
// with the stream synced, its messages go.
func TestNATS_LazySyncLosesAckedMessages(t *testing.T) {
	const n = 200
	for _, tc := range []struct {
		name string
		c    natsCase
	}{
		{"nothing synced", natsCase{}},
		{"stream synced first", natsCase{syncStream: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := runNATSPowerLoss(t, tc.c, n)
			t.Logf("lazy sync, %s: %v", tc.name, run)
			if run.survived >= n {
				t.Errorf("all %d acknowledged messages survived the power loss; the file system dropped nothing", n)
			}
			if run.lost.Bytes == 0 {
				t.Errorf("the power loss dropped nothing: %+v", run.lost)
			}
			if tc.c.syncStream && !run.stream {
				t.Errorf("the stream synced before the messages did not survive")
			}
		})
	}
}
