package supervisor

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/supervisor/core"
)

func fenceWith(t *testing.T, argv []string, timeout time.Duration) (core.Outcome, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.FenceCommand, cfg.FenceTimeout = argv, timeout
	sh := &shell{s: &Supervisor{clock: clock.Real(), cfg: cfg}, log: hclog.NewNullLogger()}
	return newDispatcher(sh).fence(context.Background(), core.FenceHost{Host: "n7"})
}

func TestFenceCommandTemplatedPerHost(t *testing.T) {
	out := t.TempDir() + "/fenced"
	o, msg := fenceWith(t, []string{"sh", "-c", `echo "$1" > ` + out, "sh", "{host}-bmc"}, 5*time.Second)
	if o != core.OutcomeOK {
		t.Fatalf("outcome %s: %s", o, msg)
	}
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != "n7-bmc" {
		t.Fatalf("the command saw %q, want the host substituted", b)
	}
}

func TestFenceCommandFailureIsRetryableAndNamesTheHost(t *testing.T) {
	o, msg := fenceWith(t, []string{"sh", "-c", "echo BMC unreachable >&2; exit 3"}, 5*time.Second)
	if o != core.OutcomeRetryable || !strings.Contains(msg, "n7") || !strings.Contains(msg, "BMC unreachable") {
		t.Fatalf("outcome %s, %q", o, msg)
	}
}

func TestFenceCommandThatHangsIsKilledAtItsTimeout(t *testing.T) {
	start := time.Now()
	o, msg := fenceWith(t, []string{"sh", "-c", "sleep 60 & sleep 60"}, 300*time.Millisecond)
	if o != core.OutcomeRetryable || !strings.Contains(msg, "timed out") {
		t.Fatalf("outcome %s, %q", o, msg)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("fence returned after %s: the hung command (or its child) was not killed", d)
	}
}

// Without a command the answer is permanent and names the key; it claims no
// wait: whether a self-fence deadline or the host's agent fences it instead
// is the core's to say (core/testdata/fence_fault_agent_fails.txt).
func TestNoFenceCommandIsPermanentAndClaimsNoWait(t *testing.T) {
	o, msg := fenceWith(t, nil, time.Second)
	if o != core.OutcomePermanent || !strings.Contains(msg, "supervisor.fence_command") || strings.Contains(msg, "wait") {
		t.Fatalf("outcome %s, %q", o, msg)
	}
}
