package executor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xenft/xenft/checkpointer"
)

// runHook runs the configured disk snapshot hook for a paused member. It is
// exec'd directly (no shell), with its own process group so a timeout kills
// whatever it started, and the checkpoint's identity in its environment.
func (x *Executor) runHook(ctx context.Context, r checkpointer.CaptureRequest) (string, error) {
	if x.cfg.SnapshotHook == "" {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, x.cfg.HookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, x.cfg.SnapshotHook)
	cmd.Env = append(os.Environ(),
		"XENFT_DOMAIN="+r.VM,
		"XENFT_GROUP="+r.Group,
		"XENFT_CHECKPOINT_SEQ="+strconv.FormatUint(r.Seq, 10),
		"XENFT_CHECKPOINT_ID="+checkpointID(r.Group, r.Seq),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout = &limited{w: &out, n: 64 << 10}
	cmd.Stderr = &limited{w: &errb, n: 64 << 10}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s timed out after %s", x.cfg.SnapshotHook, x.cfg.HookTimeout)
		}
		return "", fmt.Errorf("%s: %v: %s", x.cfg.SnapshotHook, err, strings.TrimSpace(errb.String()))
	}
	first, _, _ := bufio.NewReader(&out).ReadLine()
	return strings.TrimSpace(string(first)), nil
}

// limited keeps at most n bytes of a child's output and discards the rest, so
// a chatty hook cannot fill the agent's memory.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		if len(p) > room {
			l.w.Write(p[:room])
		} else {
			l.w.Write(p)
		}
	}
	return len(p), nil
}
