//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/xen/xentest"
)

// The binaries every scenario runs, built once by TestMain into binDir.
var (
	binDir   string
	xenftBin string // with -race: a data race in any process fails the suite
	// serverBin is xenft without -race, for `xenft server` only. Under the
	// race detector the embedded nats-server ran 5x slower: a checkpoint
	// of three 8 MiB images took 8 s instead of 1.7 s, and a route busy
	// replicating them held other hosts' beats back 3 s, so detectors
	// failed live hosts before any fault was injected (CI, 2026-12-05).
	// The server is nats-server's code; ours in it is raced in make test.
	serverBin string
	fakeXL    string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var err error
	binDir, err = os.MkdirTemp("", "xenft-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	start := time.Now()
	xenftBin = filepath.Join(binDir, "xenft")
	build := exec.Command("go", "build", "-race", "-o", xenftBin, "github.com/xenft/xenft/cmd/xenft")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build xenft: %v\n%s", err, out)
		return 1
	}
	serverBin = filepath.Join(binDir, "xenft-server")
	build = exec.Command("go", "build", "-o", serverBin, "github.com/xenft/xenft/cmd/xenft")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build xenft (servers): %v\n%s", err, out)
		return 1
	}
	if fakeXL, err = xentest.BuildFakeXL(binDir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	fmt.Printf("e2e: built xenft and the fake xl in %s\n", time.Since(start).Round(100*time.Millisecond))
	code := m.Run()
	// Each scenario checks for leftovers itself; this catches one that
	// stopped before its cleanup could run.
	if left := ourProcesses(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: processes left behind:\n  %s\n", strings.Join(left, "\n  "))
		killAll(left)
		if code == 0 {
			code = 1
		}
	}
	return code
}
