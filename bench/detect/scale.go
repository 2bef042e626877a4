package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
)

// The scale benchmark: three processes on loopback.
//
//	child "server"   an embedded NATS server with JetStream (embedded.Start)
//	child "beacons"  N real detector.Beacons paced at the interval, sharing a
//	                 few NATS connections, each beat carrying a 4-domain inventory
//	this process     the real detector.Monitor (production defaults) and nothing
//	                 else busy, so its CPU time is the detector's
//
// The detector's CPU use is this process's user+system time (getrusage) over
// a steady window after every host is seen and the windows have warmed up.
// It includes the NATS client reading and parsing 10,000 messages a second,
// JSON decoding, the tracker, the ticks, and the Go runtime (GC); it does not
// include the server's routing work, which is reported apart, as are the
// beacons'. Children report their own CPU time when asked, so no figure is
// derived from another process's share.

type scaleConfig struct {
	hosts    int
	interval time.Duration
	conns    int
	warmup   time.Duration
	measure  time.Duration
	det      detector.Config
	profile  string // CPU profile of this process over the measured window
	baseline bool   // a bare NATS subscriber instead of the Monitor
	// coalesce is the detector connection's read coalescing window
	// (detector.read_coalesce, events.CoalesceReads); it applies to the
	// baseline too, so both receive the same way.
	coalesce time.Duration
}

// receiver is the Monitor, or the bare subscriber it is compared with.
type receiver interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Metrics() detector.Metrics
}

// bareSubscriber receives the beats exactly as the Monitor does (a channel
// subscription drained every 10 ms) and only counts them and their hosts:
// the floor of what receiving 10,000 messages a second costs here.
type bareSubscriber struct {
	bus      *events.Bus
	ready    chan struct{}
	received atomic.Uint64
	hosts    atomic.Int64
}

func (b *bareSubscriber) Ready() <-chan struct{} { return b.ready }
func (b *bareSubscriber) Metrics() detector.Metrics {
	return detector.Metrics{BeatsReceived: b.received.Load(), Hosts: int(b.hosts.Load())}
}

func (b *bareSubscriber) Run(ctx context.Context) error {
	msgs := make(chan *nats.Msg, 1<<16)
	sub, err := b.bus.Conn().ChanSubscribe(b.bus.Subjects().AllHeartbeats(), msgs)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = b.bus.Conn().Flush()
	close(b.ready)
	seen := map[string]bool{}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for n := len(msgs); n > 0; n-- {
			m := <-msgs
			if !seen[m.Subject] {
				seen[m.Subject] = true
				b.hosts.Add(1)
			}
			b.received.Add(1)
		}
	}
}

type scaleJSON struct {
	Hosts               int     `json:"hosts"`
	Baseline            bool    `json:"baseline"`
	ReadCoalesceMs      float64 `json:"read_coalesce_ms"`
	LoadAverage         string  `json:"load_average_1m"`
	MeasuredSeconds     float64 `json:"measured_seconds"`
	DetectorCPUPercent  float64 `json:"detector_cpu_percent_of_one_core"`
	BeaconsCPUPercent   float64 `json:"beacons_cpu_percent_of_one_core"`
	ServerCPUPercent    float64 `json:"nats_server_cpu_percent_of_one_core"`
	BeatsPerSecond      float64 `json:"beats_received_per_second"`
	DroppedBeats        uint64  `json:"dropped_beats"`
	EventsInWindow      uint64  `json:"node_events_in_window"`
	SuspectedAtEnd      int     `json:"hosts_suspected_at_end"`
	FailedAtEnd         int     `json:"hosts_failed_at_end"`
	BeatsSentTotal      uint64  `json:"beats_sent_total"`
	BeatsReceivedTotal  uint64  `json:"beats_received_total"`
	BeaconPublishFailed uint64  `json:"beacon_publish_failures"`
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// child is a re-executed copy of this program in a role. It answers "cpu" on
// its stdin with "cpu <nanoseconds>" and stops when its stdin closes.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error
}

func startChild(ctx context.Context, name string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	return c, nil
}

// expect waits for a line starting with prefix and returns the rest.
func (c *child) expect(prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("%s exited before saying %q", c.name, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(l, prefix)), nil
			}
		case <-deadline:
			return "", fmt.Errorf("%s did not say %q within %s", c.name, prefix, timeout)
		}
	}
}

func (c *child) cpu() (time.Duration, error) {
	if _, err := io.WriteString(c.stdin, "cpu\n"); err != nil {
		return 0, err
	}
	s, err := c.expect("cpu ", 10*time.Second)
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	return time.Duration(ns), err
}

// stop closes its stdin and waits for it to exit (bounded), returning the
// lines it printed meanwhile.
func (c *child) stop(timeout time.Duration) []string {
	_ = c.stdin.Close()
	var out []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				select {
				case <-c.done:
				case <-deadline:
				}
				return out
			}
			out = append(out, l)
		case <-deadline:
			_ = c.cmd.Process.Kill()
			return out
		}
	}
}

func runScale(cfg scaleConfig) (scaleJSON, error) {
	bound := cfg.warmup + cfg.measure + 4*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	fmt.Printf("xenft detector scale benchmark: %d real beacons at %s on a real NATS server (loopback), the real Monitor in this process\n", cfg.hosts, cfg.interval)
	fmt.Printf("  machine: %d CPUs seen by Go (shared with other work: figures are CPU time, not wall time), %s\n", runtime.NumCPU(), runtime.Version())

	srv, err := startChild(ctx, "server", "-role", "server")
	if err != nil {
		return scaleJSON{}, err
	}
	defer srv.stop(10 * time.Second)
	url, err := srv.expect("URL ", 30*time.Second)
	if err != nil {
		return scaleJSON{}, err
	}

	log := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Warn, Output: os.Stderr})
	bcfg := events.DefaultBusConfig()
	bcfg.URLs = []string{url}
	bcfg.ClientName = "bench-detector"
	bus, err := events.Connect(bcfg, log, events.CoalesceReads(cfg.coalesce))
	if err != nil {
		return scaleJSON{}, err
	}
	defer bus.Close()
	fmt.Printf("  detector connection: reads coalesced over %s (detector.read_coalesce; 0 = off)\n", cfg.coalesce)
	if err := bus.EnsureResources(ctx); err != nil {
		return scaleJSON{}, err
	}
	var mon receiver
	if cfg.baseline {
		mon = &bareSubscriber{bus: bus, ready: make(chan struct{})}
		fmt.Printf("  BASELINE: a bare NATS subscriber that only counts, in place of the Monitor\n")
	} else {
		m, err := detector.NewMonitor(bus, cfg.det, log)
		if err != nil {
			return scaleJSON{}, err
		}
		mon = m
	}
	mctx, mcancel := context.WithCancel(ctx)
	var mwg sync.WaitGroup
	mwg.Add(1)
	go func() {
		defer mwg.Done()
		if err := mon.Run(mctx); err != nil {
			fmt.Fprintln(os.Stderr, "monitor:", err)
		}
	}()
	defer func() { mcancel(); mwg.Wait() }()
	select {
	case <-mon.Ready():
	case <-time.After(30 * time.Second):
		return scaleJSON{}, errors.New("monitor not ready within 30s")
	}

	bea, err := startChild(ctx, "beacons", "-role", "beacons", "-url", url,
		"-hosts", strconv.Itoa(cfg.hosts), "-conns", strconv.Itoa(cfg.conns), "-interval", cfg.interval.String())
	if err != nil {
		return scaleJSON{}, err
	}
	defer bea.stop(30 * time.Second)
	if _, err := bea.expect("READY", 2*time.Minute); err != nil {
		return scaleJSON{}, err
	}
	fmt.Printf("  beacons started on %d connections; waiting for the monitor to see all %d hosts\n", cfg.conns, cfg.hosts)
	seen := time.Now().Add(time.Minute)
	for mon.Metrics().Hosts < cfg.hosts {
		if time.Now().After(seen) {
			return scaleJSON{}, fmt.Errorf("monitor sees %d of %d hosts after a minute", mon.Metrics().Hosts, cfg.hosts)
		}
		time.Sleep(100 * time.Millisecond) // polling a gauge, not synchronising
	}
	fmt.Printf("  all hosts seen; warming up %s, then measuring %s\n", cfg.warmup, cfg.measure)
	time.Sleep(cfg.warmup)

	load0 := loadAvg()
	m0, c0, t0 := mon.Metrics(), cpuTime(), time.Now()
	b0, err := bea.cpu()
	if err != nil {
		return scaleJSON{}, err
	}
	s0, err := srv.cpu()
	if err != nil {
		return scaleJSON{}, err
	}
	if cfg.profile != "" {
		f, err := os.Create(cfg.profile)
		if err != nil {
			return scaleJSON{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return scaleJSON{}, err
		}
	}
	time.Sleep(cfg.measure)
	m1, c1, t1 := mon.Metrics(), cpuTime(), time.Now()
	if cfg.profile != "" {
		pprof.StopCPUProfile()
	}
	b1, err := bea.cpu()
	if err != nil {
		return scaleJSON{}, err
	}
	s1, err := srv.cpu()
	if err != nil {
		return scaleJSON{}, err
	}
	wall := t1.Sub(t0)
	pct := func(d time.Duration) float64 { return round2(100 * d.Seconds() / wall.Seconds()) }

	// Stop the beacons, let the last beats in, and compare totals.
	lines := bea.stop(30 * time.Second)
	var sent, failed uint64
	for _, l := range lines {
		fmt.Sscanf(l, "sent %d failed %d", &sent, &failed)
	}
	drain := time.Now().Add(5 * time.Second)
	for time.Now().Before(drain) && mon.Metrics().BeatsReceived+mon.Metrics().BeatsStale < sent {
		time.Sleep(50 * time.Millisecond)
	}
	m2 := mon.Metrics()
	mcancel() // before the silence of the stopped beacons turns into failures

	out := scaleJSON{
		Hosts:               cfg.hosts,
		Baseline:            cfg.baseline,
		ReadCoalesceMs:      float64(cfg.coalesce) / float64(time.Millisecond),
		LoadAverage:         load0,
		MeasuredSeconds:     round2(wall.Seconds()),
		DetectorCPUPercent:  pct(c1 - c0),
		BeaconsCPUPercent:   pct(b1 - b0),
		ServerCPUPercent:    pct(s1 - s0),
		BeatsPerSecond:      round2(float64(m1.BeatsReceived-m0.BeatsReceived) / wall.Seconds()),
		DroppedBeats:        (m1.BeatsDropped - m0.BeatsDropped) + (m1.BeatsMissing - m0.BeatsMissing),
		EventsInWindow:      (m1.EventsPublished - m0.EventsPublished) + (m1.EventsDuplicate - m0.EventsDuplicate),
		SuspectedAtEnd:      m1.Suspected,
		FailedAtEnd:         m1.Failed,
		BeatsSentTotal:      sent,
		BeatsReceivedTotal:  m2.BeatsReceived,
		BeaconPublishFailed: failed,
	}
	fmt.Printf("\n  steady window %.1f s (load average before %s, after %s: other work on this machine\n"+
		"  changes how many beats each wake-up of the NATS client finds, so repeat when in doubt):\n", wall.Seconds(), load0, loadAvg())
	fmt.Printf("    detector process CPU (Monitor + NATS client + Go runtime): %.2f%% of one core  (target < 5%%)\n", out.DetectorCPUPercent)
	fmt.Printf("    beacons child CPU (%d beacons, JSON encode + publish):     %.2f%% of one core\n", cfg.hosts, out.BeaconsCPUPercent)
	fmt.Printf("    nats-server child CPU (routing the beats):                 %.2f%% of one core\n", out.ServerCPUPercent)
	fmt.Printf("    beats received: %.0f/s; dropped by the client: %d; lost (sequence gaps): %d; garbage: %d; stale: %d\n",
		out.BeatsPerSecond, m1.BeatsDropped-m0.BeatsDropped, m1.BeatsMissing-m0.BeatsMissing,
		m1.BeatsGarbage-m0.BeatsGarbage, m1.BeatsStale-m0.BeatsStale)
	fmt.Printf("    node events in the window (every beacon is healthy, so each would be a false accusation): %d; suspected at the end %d, failed %d; detector stalls %d\n",
		out.EventsInWindow, m1.Suspected, m1.Failed, m1.Stalls-m0.Stalls)
	fmt.Printf("  whole run: beacons sent %d beats (%d publish failures), the monitor received %d (+%d stale), %d missing by sequence, %d dropped by the client\n",
		sent, failed, m2.BeatsReceived, m2.BeatsStale, m2.BeatsMissing, m2.BeatsDropped)
	verdict := "met"
	if out.DetectorCPUPercent >= 5 {
		verdict = "MISSED"
	}
	fmt.Printf("  target detector CPU < 5%% of one core for %d hosts: %s (%.2f%%)\n", cfg.hosts, verdict, out.DetectorCPUPercent)
	verdict = "met"
	if out.DroppedBeats != 0 {
		verdict = "MISSED"
	}
	fmt.Printf("  target zero dropped beats in the steady window: %s (%d)\n\n", verdict, out.DroppedBeats)
	return out, nil
}

// loadAvg is the 1-minute load average, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

// answerCPU serves the parent's "cpu" requests on stdin until it closes.
func answerCPU() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "cpu" {
			fmt.Printf("cpu %d\n", int64(cpuTime()))
		}
	}
}

func childServer() error {
	dir, err := os.MkdirTemp("", "xenft-bench-nats-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := embedded.DefaultConfig()
	cfg.Name, cfg.Host, cfg.Port, cfg.DataDir = "bench", "127.0.0.1", -1, dir
	s, err := embedded.Start(cfg, hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Warn, Output: os.Stderr}), 30*time.Second)
	if err != nil {
		return err
	}
	defer s.Shutdown()
	fmt.Printf("URL %s\n", s.ClientURL())
	answerCPU()
	return nil
}

// benchInventory is a host with four domains.
type benchInventory struct{ doms []detector.DomainSummary }

func (b benchInventory) Domains(context.Context) ([]detector.DomainSummary, error) {
	return b.doms, nil
}
func (b benchInventory) FreeMemoryMiB(context.Context) (uint64, error) { return 65536, nil }

func childBeacons(url string, hosts, conns int, interval time.Duration) error {
	if hosts <= 0 || conns <= 0 {
		return errors.New("beacons: -hosts and -conns must be positive")
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "beacons", Level: hclog.Warn, Output: os.Stderr})
	bcfg := events.DefaultBusConfig()
	bcfg.URLs = []string{url}
	var buses []*events.Bus
	for i := range conns {
		bcfg.ClientName = fmt.Sprintf("bench-beacons-%d", i)
		b, err := events.Connect(bcfg, log)
		if err != nil {
			return err
		}
		defer b.Close()
		buses = append(buses, b)
	}
	inv := benchInventory{}
	for i := range 4 {
		inv.doms = append(inv.doms, detector.DomainSummary{Name: fmt.Sprintf("vm-%d", i), State: "running", MemoryMiB: 4096})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var beacons []*detector.Beacon
	bc := detector.DefaultBeaconConfig()
	bc.Interval = interval
	for i := range hosts {
		b, err := detector.NewBeacon(buses[i%conns], fmt.Sprintf("host-%05d", i), inv, bc, log)
		if err != nil {
			cancel()
			return err
		}
		beacons = append(beacons, b)
		// Phases spread evenly over one interval, as independent hosts are.
		offset := time.Duration(i) * interval / time.Duration(hosts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(offset):
			case <-ctx.Done():
				return
			}
			_ = b.Run(ctx)
		}()
	}
	fmt.Println("READY")
	answerCPU()
	cancel()
	wg.Wait()
	for _, b := range buses {
		_ = b.Conn().Flush()
	}
	var sent, failed uint64
	for _, b := range beacons {
		st := b.Stats()
		sent += st.Sent
		failed += st.Failed
	}
	fmt.Printf("sent %d failed %d\n", sent, failed)
	return nil
}
