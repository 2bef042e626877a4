package xen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// xlResult is what one finished xl invocation left behind.
type xlResult struct {
	Stdout   []byte
	Stderr   string
	ExitCode int
}

// run execs xl once, with no shell in between: args go to execve as they
// are, so a domain name can never be interpreted. The child leads its own
// process group, and when ctx ends the whole group is killed, because xl
// forks helpers (the save/restore helper, the domain-watching daemon before
// it detaches) that would otherwise outlive a timed-out call and keep
// working on the domain.
//
// A non-zero exit is not an error here (the caller classifies it); errors
// are returned only when xl could not be run or did not finish.
func (x *XL) run(ctx context.Context, verb, subject string, args ...string) (xlResult, error) {
	full := append([]string{verb}, args...)
	cmd := exec.CommandContext(ctx, x.path(), full...)
	cmd.Env = append(os.Environ(), x.Env...)
	cmd.Stdin = nil // xl must never wait for a terminal
	stdout := &cappedBuffer{limit: x.maxOutput()}
	stderr := &cappedBuffer{limit: x.maxOutput() / 4, keepTail: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Negative pid: the whole group. ESRCH means it is already gone.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	// After the kill (or a normal exit), stop waiting for pipes held open by
	// a stray grandchild outside the group.
	cmd.WaitDelay = x.waitDelay()

	err := cmd.Run()
	res := xlResult{Stdout: stdout.Bytes(), Stderr: string(stderr.Bytes()), ExitCode: -1}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		te := &ToolstackError{Verb: verb, Domain: subject, Args: full, ExitCode: res.ExitCode, Stderr: res.Stderr, Cause: ctxErr}
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			te.Kind = ErrTimeout
		}
		return res, te
	}
	if stdout.truncated {
		return res, &ToolstackError{Verb: verb, Domain: subject, Args: full, ExitCode: res.ExitCode, Stderr: res.Stderr,
			Cause: fmt.Errorf("output exceeds %d bytes", x.maxOutput())}
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.As(err, &exitErr):
		return res, nil
	case errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0:
		// xl finished fine; only an orphan kept its output open.
		return res, nil
	default:
		return res, &ToolstackError{Verb: verb, Domain: subject, Args: full, ExitCode: res.ExitCode, Stderr: res.Stderr, Cause: err}
	}
}

func (x *XL) path() string {
	if x.Path == "" {
		return "xl"
	}
	return x.Path
}

func (x *XL) maxOutput() int {
	if x.MaxOutput <= 0 {
		return 4 << 20
	}
	return x.MaxOutput
}

func (x *XL) waitDelay() time.Duration {
	if x.WaitDelay <= 0 {
		return 2 * time.Second
	}
	return x.WaitDelay
}

// cappedBuffer collects a child's output up to a limit, so that a runaway
// toolstack cannot exhaust the agent's memory. For stderr the tail is kept,
// because xl's last lines say why it failed.
type cappedBuffer struct {
	buf       []byte
	limit     int
	keepTail  bool
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if b.keepTail {
		b.buf = append(b.buf, p...)
		if len(b.buf) > 2*b.limit { // trim in batches to keep appends cheap
			b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.limit:]...)
			b.truncated = true
		}
		return n, nil
	}
	if room := b.limit - len(b.buf); room < len(p) {
		p = p[:max(room, 0)]
		b.truncated = true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *cappedBuffer) Bytes() []byte {
	if b.keepTail && len(b.buf) > b.limit {
		return b.buf[len(b.buf)-b.limit:]
	}
	return b.buf
}
