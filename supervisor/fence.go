package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/xenft/xenft/supervisor/core"
)

// fence runs the configured fence command for a host. Without one the answer
// is permanent at once; what fences the host instead (its self-fence
// deadline, or its agent after a fatal fault) is the core's to say, and it
// adds that to supervisor.fence_failed (core.FenceHost).
func (d *dispatcher) fence(ctx context.Context, a core.FenceHost) (core.Outcome, string) {
	argv := d.sh.s.cfg.FenceCommand
	if len(argv) == 0 {
		return core.OutcomePermanent, "no fence command configured (supervisor.fence_command)"
	}
	args := make([]string, len(argv))
	for i, a0 := range argv {
		args[i] = strings.ReplaceAll(a0, "{host}", a.Host)
	}
	ctx, cancel := context.WithTimeout(ctx, d.sh.s.cfg.FenceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	msg := strings.TrimSpace(out.String())
	if len(msg) > 500 {
		msg = msg[:500]
	}
	switch {
	case err == nil:
		d.sh.log.Info("host fenced by command", "host", a.Host)
		return core.OutcomeOK, ""
	case ctx.Err() != nil:
		return core.OutcomeRetryable, fmt.Sprintf("fence command for %s timed out after %s", a.Host, d.sh.s.cfg.FenceTimeout)
	}
	return core.OutcomeRetryable, fmt.Sprintf("fence command for %s: %v: %s", a.Host, err, msg)
}
