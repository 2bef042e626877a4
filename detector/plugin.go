package detector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
)

// Finding is one line of a plug-in's output.
type Finding struct {
	Host     string          `json:"host"`
	Severity events.Severity `json:"severity"`
	Reason   string          `json:"reason"`
}

// Limits on a plug-in's output: a plug-in that floods its output is cut off,
// not buffered without end.
const (
	pluginMaxStdout = 1 << 20
	pluginMaxStderr = 4 << 10
	// pluginWaitDelay is how long a run waits for its output pipes after the
	// process exited or was killed (a grandchild that escaped the process
	// group may hold them open).
	pluginWaitDelay = time.Second
)

// pluginRunner runs one exec plug-in on its schedule and publishes what
// changes. It owns its state; nothing else touches it.
type pluginRunner struct {
	clock    clock.Clock
	cfg      PluginConfig
	detector string
	pub      *publisher
	c        *counters
	log      hclog.Logger
	last     map[string]Finding // per host, the last finding published
	failing  bool
	garbage  *rateLog
}

func newPluginRunner(cfg PluginConfig, detector string, pub *publisher, c *counters, log hclog.Logger, clk clock.Clock) *pluginRunner {
	log = log.Named("plugin").With("plugin", cfg.Name)
	return &pluginRunner{clock: clk, cfg: cfg, detector: detector, pub: pub, c: c, log: log,
		last: map[string]Finding{}, garbage: newRateLog(log, "plug-in printed lines that are not findings")}
}

// run runs the plug-in at every multiple of its interval (wall clock) until
// ctx ends. Aligning on the clock puts the same plug-in of two detectors in
// the same slot, which is what lets their events share ids.
func (r *pluginRunner) run(ctx context.Context) {
	for {
		now := r.clock.Now()
		slot := now.Truncate(r.cfg.Interval).Add(r.cfg.Interval)
		t := r.clock.NewTimer(slot.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.Chan():
		}
		findings, garbage, err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.account(findings, garbage, err)
		if err != nil {
			continue
		}
		for _, f := range findings {
			if r.last[f.Host] == f {
				continue // edge-triggered: a finding is news once
			}
			ev, err := r.event(f, slot)
			if err != nil {
				r.c.pluginGarbage.Add(1)
				r.log.Warn("finding is not a valid event", "host", f.Host, "error", err)
				continue
			}
			r.last[f.Host] = f
			r.pub.publish(ctx, f.Host, ev)
		}
	}
}

func (r *pluginRunner) account(findings []Finding, garbage []string, err error) {
	r.c.pluginGarbage.Add(uint64(len(garbage)))
	r.c.pluginFindings.Add(uint64(len(findings)))
	if len(garbage) > 0 {
		r.garbage.note(r.clock.Now(), "lines", len(garbage), "first", garbage[0])
	}
	if err != nil {
		r.c.pluginFailures.Add(1)
		if !r.failing {
			r.failing = true
			r.log.Warn("plug-in failed; its findings of this run are ignored", "error", err)
		}
		return
	}
	r.c.pluginRuns.Add(1)
	if r.failing {
		r.failing = false
		r.log.Info("plug-in works again")
	}
}

// event is a finding as node.fault. Its id names the plug-in, host, severity
// and the slot of the run, so the same plug-in run by two detectors in one
// slot publishes once.
func (r *pluginRunner) event(f Finding, slot time.Time) (events.Event, error) {
	ev, err := events.New(source(r.detector)+"/plugin/"+r.cfg.Name, r.clock.Now(), events.NodeFault{
		Host: f.Host, Severity: f.Severity, Reason: f.Reason, Detector: r.cfg.Name,
	})
	if err != nil {
		return events.Event{}, err
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(f.Reason))
	id := fmt.Sprintf("node.fault/%s/%s/%s/%d/%08x", f.Host, r.cfg.Name, f.Severity, slot.UnixMilli(), h.Sum32())
	if _, err := events.Encode(ev.WithID(id)); err != nil {
		return events.Event{}, err
	}
	return ev.WithID(id), nil
}

// runOnce runs the command once (no shell), bounded by the timeout, and
// parses its output. A run counts only if it exits 0 in time; lines that are
// not findings are returned as garbage.
func (r *pluginRunner) runOnce(ctx context.Context) (findings []Finding, garbage []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.Command, r.cfg.Args...)
	// Its own process group, so a timeout kills whatever it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = pluginWaitDelay
	var stdout, stderr limitedBuffer
	stdout.limit, stderr.limit = pluginMaxStdout, pluginMaxStderr
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if cmd.Process != nil {
		_ = killGroup(cmd) // children it left behind
	}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, nil, fmt.Errorf("timed out after %s (process group killed)", r.cfg.Timeout)
	case err != nil:
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, nil, fmt.Errorf("%w: %s", err, msg)
		}
		return nil, nil, err
	case stdout.cut:
		return nil, nil, fmt.Errorf("output exceeds %d bytes", pluginMaxStdout)
	}
	findings, garbage = ParseFindings(stdout.Bytes())
	return findings, garbage, nil
}

func killGroup(cmd *exec.Cmd) error {
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// ParseFindings reads a plug-in's output: one JSON object per line, blank
// lines ignored. Invalid lines (bad JSON, a host that is not a valid name, an
// unknown severity, an empty or over-long reason) come back as garbage,
// shortened for logs.
func ParseFindings(out []byte) (findings []Finding, garbage []string) {
	for line := range bytes.Lines(out) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var f Finding
		err := json.Unmarshal(line, &f)
		switch {
		case err != nil:
		case !ValidName(f.Host):
			err = fmt.Errorf("host %q is not a valid name", f.Host)
		case f.Severity != events.SeverityFatal && f.Severity != events.SeverityDegraded && f.Severity != events.SeverityOK:
			err = fmt.Errorf("severity %q is not fatal, degraded or ok", f.Severity)
		case f.Reason == "" || len(f.Reason) > 1024:
			err = errors.New("reason must be 1 to 1024 bytes")
		}
		if err != nil {
			s := strconv.Quote(string(line[:min(len(line), 80)]))
			if len(line) > 80 {
				s += "…"
			}
			garbage = append(garbage, s+": "+err.Error())
			continue
		}
		findings = append(findings, f)
	}
	return findings, garbage
}

// limitedBuffer keeps the first limit bytes written and notes the cut. It
// never fails a write, so a flooding plug-in is not killed by SIGPIPE before
// its exit status is known.
// It must not embed bytes.Buffer: io.Copy would use the buffer's ReadFrom
// and bypass the limit.
type limitedBuffer struct {
	buf   bytes.Buffer
	limit int
	cut   bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.buf.Len(); room < len(p) {
		b.cut = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) Bytes() []byte  { return b.buf.Bytes() }
func (b *limitedBuffer) String() string { return b.buf.String() }
