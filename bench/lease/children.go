package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// child is the bench binary re-executed as a child process. Its stdout is
// read line by line by one goroutine, which ends when the child's stdout
// closes; stop kills the child, waits for that goroutine and reaps it.
type child struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stdin  io.WriteCloser
	lines  <-chan string // closed at the child's EOF

	once sync.Once
	err  error
}

// startChild starts the bench binary with args. The child is killed when ctx
// ends, and, on Linux, when this process dies (proc_linux.go).
func startChild(ctx context.Context, name string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, exe, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 256<<20) // the report is one long line
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return &child{name: name, cmd: cmd, cancel: cancel, stdin: stdin, lines: lines}, nil
}

// line returns the child's next line of output, waiting at most timeout.
func (c *child) line(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", fmt.Errorf("%s exited: %v", c.name, c.stop())
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("%s: no output within %s", c.name, timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// send writes a line to the child's stdin and closes it.
func (c *child) send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return errors.Join(err, c.stdin.Close())
}

// wait gives the child timeout to exit on its own (its output is read and
// dropped meanwhile), kills it after that, and reaps it.
func (c *child) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case _, ok := <-c.lines:
			if !ok {
				return c.reap(false)
			}
		case <-t.C:
			return errors.Join(fmt.Errorf("%s did not exit within %s", c.name, timeout), c.reap(true))
		}
	}
}

// stop kills the child unless it has been reaped already, and reaps it.
func (c *child) stop() error { return c.reap(true) }

func (c *child) reap(kill bool) error {
	c.once.Do(func() {
		if kill {
			c.cancel()
		}
		for range c.lines { // until its stdout closes
		}
		c.err = c.cmd.Wait()
		c.cancel()
		if c.err != nil {
			c.err = fmt.Errorf("%s: %w", c.name, c.err)
		}
	})
	return c.err
}

// startHogs starts n busy-looping children, each bounded to d, and waits
// until every one is spinning. The returned stop kills and reaps them all.
func startHogs(ctx context.Context, n int, d time.Duration) (stop func(), err error) {
	var hogs []*child
	stop = func() {
		for _, h := range hogs {
			_ = h.stop() // killed: its exit status is the signal
		}
	}
	for i := 0; i < n; i++ {
		h, err := startChild(ctx, fmt.Sprintf("hog %d", i), "-hog", "-hog-for", d.String())
		if err != nil {
			return stop, err
		}
		hogs = append(hogs, h)
	}
	for _, h := range hogs {
		if l, err := h.line(ctx, 30*time.Second); err != nil || l != "hog" {
			return stop, fmt.Errorf("%s did not start: %q %v", h.name, l, err)
		}
	}
	return stop, nil
}
