package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// renewalsInFlight is restarter.maxRenewals: an agent starts no renewal
// while three are still unacknowledged.
const renewalsInFlight = 3

func main() {
	var (
		quick      = flag.Bool("quick", false, "8 s per condition (for make bench)")
		servers    = flag.Int("servers", 1, "NATS servers: 1 (replicas 1) or 3 (a cluster, replicas 3)")
		duration   = flag.Duration("duration", 30*time.Second, "measured window of each condition (8s with -quick)")
		conditions = flag.String("conditions", strings.Join(conditionNames(), ","), "conditions to run, comma-separated")
		hosts      = flag.Int("hosts", 8, "renewing hosts, each on its own connection")
		interval   = flag.Duration("interval", 500*time.Millisecond, "renew interval (fence.renew_interval; the demo's 500ms)")
		putTimeout = flag.Duration("put-timeout", 10*time.Second, "bound of one put; a put still unacknowledged then counts as failed")
		quotaPct   = flag.Int("quota-pct", 5, "quota conditions: CPU quota of the renewers' process, percent of one CPU (1-100)")
		uploaders  = flag.Int("uploaders", 4, "upload conditions: hosts that upload images")
		uploadMiB  = flag.Int("upload-mib", 32, "upload conditions: size of each image, MiB")

		// Child modes: the bench re-executes itself.
		renewers = flag.Bool("renewers", false, "internal: run the renewers (child process)")
		urls     = flag.String("urls", "", "internal: NATS URLs, comma-separated (with -renewers)")
		upload   = flag.String("upload", "", "internal: '', shared or own (with -renewers)")
		hog      = flag.Bool("hog", false, "internal: busy-loop on one CPU (child process)")
		hogFor   = flag.Duration("hog-for", time.Minute, "internal: how long -hog runs at most")
	)
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick && !set["duration"] {
		*duration = 8 * time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch {
	case *hog:
		err = runHog(ctx, *hogFor)
	case *renewers:
		err = runRenewers(ctx, childConfig{
			URLs: strings.Split(*urls, ","), Hosts: *hosts, Interval: *interval, Duration: *duration,
			PutTimeout: *putTimeout, Upload: *upload, Uploaders: *uploaders, UploadMiB: *uploadMiB,
		})
	default:
		cfg := benchConfig{
			Servers: *servers, Duration: *duration, Hosts: *hosts, Interval: *interval, PutTimeout: *putTimeout,
			QuotaPct: *quotaPct, Uploaders: *uploaders, UploadMiB: *uploadMiB,
		}
		if cfg.Conditions, err = pickConditions(*conditions); err == nil {
			err = cfg.validate()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/lease:", err)
			os.Exit(2)
		}
		err = run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/lease:", err)
		os.Exit(1)
	}
}

// benchConfig is the coordinator's configuration (the flags).
type benchConfig struct {
	Servers    int
	Duration   time.Duration
	Hosts      int
	Interval   time.Duration
	PutTimeout time.Duration
	QuotaPct   int
	Uploaders  int
	UploadMiB  int
	Conditions []condition
}

func (c benchConfig) validate() error {
	switch {
	case c.Servers != 1 && c.Servers != 3:
		return fmt.Errorf("-servers: 1 or 3, got %d", c.Servers)
	case c.Duration < time.Second:
		return fmt.Errorf("-duration: at least 1s, got %s", c.Duration)
	case c.Hosts < 1 || c.Hosts > 1000:
		return fmt.Errorf("-hosts: 1 to 1000, got %d", c.Hosts)
	case c.Interval < 10*time.Millisecond:
		return fmt.Errorf("-interval: at least 10ms, got %s", c.Interval)
	case c.PutTimeout < time.Second:
		return fmt.Errorf("-put-timeout: at least 1s, got %s", c.PutTimeout)
	case c.QuotaPct < 1 || c.QuotaPct > 100:
		return fmt.Errorf("-quota-pct: 1 to 100, got %d", c.QuotaPct)
	case c.Uploaders < 1 || c.Uploaders > c.Hosts:
		return fmt.Errorf("-uploaders: 1 to -hosts (%d), got %d", c.Hosts, c.Uploaders)
	case c.UploadMiB < 1 || c.UploadMiB > 1024:
		return fmt.Errorf("-upload-mib: 1 to 1024, got %d", c.UploadMiB)
	}
	return nil
}

// runHog busy-loops on one CPU until ctx ends or d has passed, whichever is
// first, so a hog outlives its parent by at most d.
func runHog(ctx context.Context, d time.Duration) error {
	runtime.GOMAXPROCS(1)
	deadline := time.Now().Add(d)
	fmt.Println("hog") // the parent waits for every hog to be spinning
	x := uint64(1)
	for i := 0; ; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		if i%(1<<20) == 0 && (ctx.Err() != nil || time.Now().After(deadline)) {
			break
		}
	}
	if x == 0 { // keeps the loop from being optimised away
		fmt.Println(x)
	}
	return nil
}
