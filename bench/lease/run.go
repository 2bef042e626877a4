package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
)

// result is one condition's outcome.
type result struct {
	cond condition
	skip string // why it did not run
	// all hosts; in the upload conditions, uploading hosts and the others.
	all, uploading, others summary
	rep                    childReport
	throttle               *throttling
	hogs                   int
	leaders                []leadership // hosts bucket, then images (a cluster only)
}

func run(ctx context.Context, cfg benchConfig) error {
	load := loadavg()
	dir, err := os.MkdirTemp("", "xenft-bench-lease")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := hclog.New(&hclog.LoggerOptions{
		Name: "lease", Level: hclog.Error, Output: os.Stderr,
		// A cluster's first servers cannot reach the routes of those not
		// started yet; the servers log that as an error and retry.
		Exclude: func(_ hclog.Level, msg string, _ ...any) bool {
			return strings.HasPrefix(msg, "Error trying to connect to route")
		},
	})
	servers, stopServers, err := startServers(cfg.Servers, dir, log)
	defer stopServers()
	if err != nil {
		return err
	}
	if err := ensureResources(ctx, servers, log); err != nil {
		return err
	}

	shape := "1 embedded server (file store, replicas 1)"
	if cfg.Servers == 3 {
		shape = "a 3-node embedded cluster (file store, replicas 3)"
	}
	fmt.Printf("lease: %d hosts renew every %s (at most %d puts in flight, put timeout %s), each on its own connection,\n",
		cfg.Hosts, cfg.Interval, renewalsInFlight, cfg.PutTimeout)
	fmt.Printf("  in a child process; %s in the bench's process; %d CPUs, GOMAXPROCS=%d, %s/%s\n",
		shape, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("  %s per condition; load average at start: %s\n", cfg.Duration, load)
	fmt.Printf("  latency: put sent -> acknowledged (ms); >1s/2s/4s: renewals slower than the demo's, e2e's self-fence window\n")
	fmt.Printf("  send gap: longest time between two renewals of a host being sent (the interval when on time)\n")
	fmt.Printf("  lease age: longest time since the newest acknowledged renewal was sent (what the fence loop compares)\n\n")
	printHeader()

	var results []result
	for _, c := range cfg.Conditions {
		r, err := runCondition(ctx, cfg, c, servers)
		if err != nil {
			return fmt.Errorf("condition %s: %w", c.Name, err)
		}
		printResult(r, cfg)
		results = append(results, r)
	}
	// The servers stop before the last line, which must be the JSON: a
	// cluster logs its routes' errors as it shuts down.
	stopServers()
	fmt.Printf("\nload average at end: %s\n", loadavg())
	out, err := json.Marshal(figures(cfg, load, results))
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// runCondition runs the renewers' process under one condition and stops
// every child it started before it returns, also on failure.
func runCondition(ctx context.Context, cfg benchConfig, c condition, servers []*embedded.Server) (result, error) {
	r := result{cond: c, hogs: c.HogsPerCPU * runtime.NumCPU()}
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	// Children outlive neither this bound nor the bench.
	bound := cfg.Duration + cfg.PutTimeout + time.Minute
	var quota *cpuQuota
	if c.Quota {
		q, err := newCPUQuota(cfg.QuotaPct)
		if errors.Is(err, errNoCgroup) {
			r.skip = err.Error()
			return r, nil
		}
		if err != nil {
			return r, err
		}
		quota = q
		defer func() {
			if err := quota.remove(); err != nil {
				fmt.Fprintln(os.Stderr, "bench/lease:", err)
			}
		}()
	}
	ch, err := startChild(ctx, "renewers", "-renewers",
		"-urls", strings.Join(urls, ","), "-hosts", strconv.Itoa(cfg.Hosts),
		"-interval", cfg.Interval.String(), "-duration", cfg.Duration.String(), "-put-timeout", cfg.PutTimeout.String(),
		"-upload", c.Upload, "-uploaders", strconv.Itoa(cfg.Uploaders), "-upload-mib", strconv.Itoa(cfg.UploadMiB))
	if err != nil {
		return r, err
	}
	defer ch.stop() // before quota.remove: a cgroup with a process in it cannot be removed
	if quota != nil {
		if err := quota.add(ch.cmd.Process.Pid); err != nil {
			return r, err
		}
	}
	if l, err := ch.line(ctx, time.Minute); err != nil || l != "ready" {
		return r, fmt.Errorf("renewers not ready: %q %v", l, err)
	}
	stopHogs, err := startHogs(ctx, r.hogs, bound)
	defer stopHogs()
	if err != nil {
		return r, err
	}
	var before throttling
	if quota != nil {
		if before, err = quota.stat(); err != nil {
			return r, err
		}
	}
	names := events.NamesFor(events.DefaultPrefix)
	stopWatch := watchLeaders(ctx, servers, "KV_"+names.Hosts(), "OBJ_"+names.Images())
	defer stopWatch()
	if err := ch.send("go"); err != nil {
		return r, err
	}
	line, err := ch.line(ctx, cfg.Duration+cfg.PutTimeout+30*time.Second)
	if err != nil {
		return r, err
	}
	r.leaders = stopWatch()
	if err := ch.wait(10 * time.Second); err != nil {
		return r, err
	}
	stopHogs()
	if quota != nil {
		after, err := quota.stat()
		if err != nil {
			return r, err
		}
		r.throttle = &throttling{Periods: after.Periods - before.Periods, Throttled: after.Throttled - before.Throttled, Time: after.Time - before.Time}
	}
	if err := json.Unmarshal([]byte(line), &r.rep); err != nil {
		return r, fmt.Errorf("renewers' report: %w", err)
	}
	r.all = summarize(r.rep, cfg.Duration, func(int) bool { return true })
	if c.Upload != "" {
		r.uploading = summarize(r.rep, cfg.Duration, func(h int) bool { return h < cfg.Uploaders })
		r.others = summarize(r.rep, cfg.Duration, func(h int) bool { return h >= cfg.Uploaders })
	}
	return r, nil
}

func printHeader() {
	fmt.Printf("%-22s %-9s %6s %4s %4s %8s %8s %8s %8s %8s %4s %4s %4s %8s %9s\n",
		"condition", "hosts", "count", "fail", "skip", "p50", "p90", "p99", "p99.9", "max", ">1s", ">2s", ">4s", "send gap", "lease age")
}

func printResult(r result, cfg benchConfig) {
	if r.skip != "" {
		fmt.Printf("%-22s skipped: %s\n", r.cond.Name, r.skip)
		return
	}
	row := func(name, hosts string, s summary) {
		fmt.Printf("%-22s %-9s %6d %4d %4d %8.2f %8.2f %8.2f %8.2f %8.2f %4d %4d %4d %8.2f %9.2f\n",
			name, hosts, s.Count, s.Failed, s.Skipped, s.P50, s.P90, s.P99, s.P999, s.Max, s.Over1s, s.Over2s, s.Over4s, s.SendGapMax, s.LeaseAgeMax)
	}
	if r.cond.Upload == "" {
		row(r.cond.Name, fmt.Sprintf("all %d", r.all.Hosts), r.all)
	} else {
		row(r.cond.Name, fmt.Sprintf("upload %d", r.uploading.Hosts), r.uploading)
		row("", fmt.Sprintf("others %d", r.others.Hosts), r.others)
	}
	var notes []string
	if r.hogs > 0 {
		notes = append(notes, fmt.Sprintf("%d hog processes", r.hogs))
	}
	if r.throttle != nil {
		notes = append(notes, fmt.Sprintf("quota %d%% of a CPU: throttled in %d of %d periods, %.2fs in all",
			cfg.QuotaPct, r.throttle.Throttled, r.throttle.Periods, r.throttle.Time.Seconds()))
	}
	if r.cond.Upload != "" {
		notes = append(notes, fmt.Sprintf("%d uploads of %d MiB (%.0f MiB/s), %d failed%s",
			r.rep.Uploads, cfg.UploadMiB, mibPerSec(r.rep, cfg.Duration), r.rep.UploadErrors, firstErr(r.rep.UploadError)))
	}
	for _, l := range r.leaders {
		notes = append(notes, l.String())
	}
	notes = append(notes, fmt.Sprintf("renewers' process used %.2f s of CPU", r.rep.CPUSeconds))
	fmt.Printf("%-22s   %s\n", "", strings.Join(notes, "; "))
}

func firstErr(e string) string {
	if e == "" {
		return ""
	}
	return " (first: " + e + ")"
}

func mibPerSec(rep childReport, window time.Duration) float64 {
	return float64(rep.UploadBytes) / (1 << 20) / window.Seconds()
}

// figures is the last line's JSON object.
func figures(cfg benchConfig, load string, results []result) map[string]any {
	f := map[string]any{
		"servers": cfg.Servers, "hosts": cfg.Hosts, "interval_ms": cfg.Interval.Milliseconds(),
		"duration_s": cfg.Duration.Seconds(), "cpus": runtime.NumCPU(), "loadavg_start": load,
	}
	for _, r := range results {
		k := r.cond.Key
		if r.skip != "" {
			f[k+"_skipped"] = r.skip
			continue
		}
		s := r.all
		if r.cond.Upload != "" {
			s = r.uploading
			f[k+"_others_p99_ms"] = r.others.P99
			f[k+"_others_max_ms"] = r.others.Max
			f[k+"_mib_s"] = round1(mibPerSec(r.rep, cfg.Duration))
		}
		f[k+"_count"] = s.Count
		f[k+"_failed"] = s.Failed
		f[k+"_p50_ms"] = s.P50
		f[k+"_p99_ms"] = s.P99
		f[k+"_max_ms"] = s.Max
		f[k+"_over_1s"] = s.Over1s
		f[k+"_over_4s"] = s.Over4s
		f[k+"_lease_age_max_ms"] = s.LeaseAgeMax
		f[k+"_send_gap_max_ms"] = s.SendGapMax
		if r.throttle != nil {
			f[k+"_throttled_s"] = round1(r.throttle.Time.Seconds())
		}
		if len(r.leaders) > 0 {
			f[k+"_hosts_leader_changes"] = r.leaders[0].Changes
			f[k+"_hosts_leaderless_s"] = round1(r.leaders[0].Leaderless.Seconds())
		}
	}
	return f
}

func round1(v float64) float64 { return float64(int(v*10+0.5)) / 10 }

// loadavg is the first three fields of /proc/loadavg, or "unknown".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
