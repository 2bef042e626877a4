package events_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/xenft/xenft/events/embedded"
)

// node is one NATS server of a test cluster, however it runs.
type node struct {
	name, url string
	stop      func() // once; again is a no-op
}

// inProcessNodes is startCluster's servers: stop shuts one down in order.
func inProcessNodes(t *testing.T) []node {
	var nodes []node
	for _, s := range startCluster(t) {
		nodes = append(nodes, node{name: s.Name(), url: s.ClientURL(), stop: s.Shutdown})
	}
	return nodes
}

// serverProcEnv, set to a ServerConfig in JSON, makes the test binary run as
// that NATS server until its standard input closes (see TestMain).
const serverProcEnv = "XENFT_EVENTS_TEST_SERVER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(serverProcEnv); cfg != "" {
		os.Exit(runServerProc(cfg))
	}
	os.Exit(m.Run())
}

// runServerProc is the child's side: start the server, say "ready", and run
// until the parent closes stdin (or dies, which closes it too).
func runServerProc(cfgJSON string) int {
	var cfg embedded.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: cfg.Name, Level: hclog.Error, Output: os.Stderr})
	s, err := embedded.Start(cfg, log, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	return 0
}

// processNodes starts three servers of one cluster as processes of their
// own: stop kills one with SIGKILL, so it neither steps down nor says
// goodbye to its clients and routes, as a crashed server.
func processNodes(t *testing.T) []node {
	t.Helper()
	ports := freePorts(t, 6)
	var routes []string
	for _, p := range ports[3:] {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var nodes []node
	for i := 0; i < 3; i++ {
		cfg := embedded.DefaultConfig()
		cfg.Name = fmt.Sprintf("p%d", i+1)
		cfg.Port = ports[i]
		cfg.DataDir = t.TempDir()
		cfg.Cluster = embedded.ClusterConfig{Name: "xenft", Host: "127.0.0.1", Port: ports[3+i], Routes: routes}
		nodes = append(nodes, startServerProc(t, cfg))
	}
	return nodes
}

func startServerProc(t *testing.T, cfg embedded.Config) node {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serverProcEnv+"="+string(js))
	cmd.Stderr = os.Stderr
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
	exited := make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && strings.TrimSpace(sc.Text()) == "ready"
		ready <- ok
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Kill()
		_ = stdin.Close()
		<-exited
	}
	t.Cleanup(func() {
		if stopped {
			return
		}
		stopped = true
		_ = stdin.Close() // in order: the server shuts down
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("server process %s did not start", cfg.Name)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("server process %s not ready within 20s", cfg.Name)
	}
	return node{name: cfg.Name, url: fmt.Sprintf("nats://127.0.0.1:%d", cfg.Port), stop: stop}
}
