// Command detect benchmarks xenft's failure detector.
//
// Two modes:
//
//	go run ./bench/detect            QoS: simulated beacons with jitter and loss on a
//	go run ./bench/detect -quick     simulated clock, the detector's pure core with
//	                                 its probes crossing the same network, the core
//	                                 without probes, and a fixed 3 x interval
//	                                 detector, all on the same trace
//	go run ./bench/detect -hosts 10000
//	                                 scale: a real NATS server and real beacons paced at
//	                                 1 Hz (child processes), the real Monitor in this
//	                                 process; reports its CPU use and dropped beats
//
// -mode picks one explicitly; without it, giving -hosts selects scale mode
// (the command), and the QoS mode runs with 200 hosts. The last line
// of output is one JSON object.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/xenft/xenft/detector"
)

func main() {
	def := detector.DefaultConfig()
	var (
		mode     = flag.String("mode", "", "qos or scale (default: scale if -hosts is given, else qos)")
		hosts    = flag.Int("hosts", 0, "hosts (default 200 in qos mode, 10000 in scale mode)")
		interval = flag.Duration("interval", time.Second, "heartbeat interval")
		quick    = flag.Bool("quick", false, "qos: a shorter run (under a minute); scale: a shorter measurement")
		seed     = flag.Uint64("seed", 1, "qos: random seed")
		jitter   = flag.Duration("jitter", 200*time.Millisecond, "qos: each beat is delayed by U[0,jitter]")
		loss     = flag.Float64("loss", 0.01, "qos: probability that a beat is lost")
		kills    = flag.Int("kills", 1000, "qos: kills at random times (p99 needs samples)")
		uptime   = flag.Duration("min-uptime", 5*time.Minute, "qos: kills pick hosts whose agent has run at least this long")
		restart  = flag.Duration("restart", time.Minute, "qos: a killed agent restarts after this (a new incarnation)")
		duration = flag.Duration("duration", 0, "qos: simulated duration (default 6h, 1h with -quick)")
		fixedK   = flag.Int("fixed", 3, "qos: the fixed detector's timeout in intervals")

		phiSuspect = flag.Float64("phi-suspect", def.PhiSuspect, "detector.phi_suspect")
		phiFail    = flag.Float64("phi-fail", def.PhiFail, "detector.phi_fail")
		pause      = flag.Duration("acceptable-pause", def.AcceptablePause, "detector.acceptable_pause")
		minStd     = flag.Duration("min-std-dev", def.MinStdDev, "detector.min_std_dev")
		window     = flag.Int("window", def.WindowSize, "detector.window_size")
		tick       = flag.Duration("tick", def.Tick, "detector.tick")
		silence    = flag.Duration("max-silence", def.MaxSilence, "detector.max_silence")
		probeEvery = flag.Duration("probe-interval", def.ProbeInterval, "detector.probe_interval (0: no probes)")
		probeLead  = flag.Duration("probe-lead", def.ProbeLead, "detector.probe_lead")
		probeWait  = flag.Duration("probe-timeout", def.ProbeTimeout, "detector.probe_timeout")

		warmup  = flag.Duration("warmup", 20*time.Second, "scale: time after every host is seen before measuring")
		measure = flag.Duration("measure", 30*time.Second, "scale: length of the measured steady window (10s with -quick)")
		conns   = flag.Int("conns", 0, "scale: NATS connections the beacons share (default hosts/500)")
		base    = flag.Bool("baseline", false, "scale: measure a bare NATS subscriber instead of the Monitor (the floor)")
		coal    = flag.Duration("read-coalesce", def.ReadCoalesce, "scale: detector.read_coalesce of the detector's connection (Monitor or baseline; 0 = off)")
		prof    = flag.String("cpuprofile", "", "scale: write this process's CPU profile over the measured window")
		role    = flag.String("role", "", "internal: the role of a child process (server, beacons)")
		url     = flag.String("url", "", "internal: the NATS URL for the beacons child")
	)
	flag.Parse()
	hostsGiven := false
	flag.Visit(func(f *flag.Flag) { hostsGiven = hostsGiven || f.Name == "hosts" })

	switch *role {
	case "server":
		exitOn(childServer())
		return
	case "beacons":
		exitOn(childBeacons(*url, *hosts, *conns, *interval))
		return
	case "":
	default:
		exitOn(fmt.Errorf("unknown -role %q", *role))
	}

	det := def
	det.ID = "bench"
	det.ExpectedInterval = *interval
	det.PhiSuspect, det.PhiFail = *phiSuspect, *phiFail
	det.AcceptablePause, det.MinStdDev = *pause, *minStd
	det.WindowSize, det.Tick, det.MaxSilence = *window, *tick, *silence
	det.ProbeInterval, det.ProbeLead, det.ProbeTimeout = *probeEvery, *probeLead, *probeWait
	if err := det.Validate("detector"); err != nil {
		exitOn(err)
	}

	if *mode == "" {
		*mode = "qos"
		if hostsGiven {
			*mode = "scale"
		}
	}
	switch *mode {
	case "qos":
		n := *hosts
		if n == 0 {
			n = 200
		}
		d := *duration
		if d == 0 {
			d = 6 * time.Hour
			if *quick {
				d = time.Hour
			}
		}
		cfg := qosConfig{hosts: n, interval: *interval, jitter: *jitter, loss: *loss, kills: *kills,
			restart: *restart, uptime: *uptime, duration: d, seed: *seed, det: det, fixedK: *fixedK}
		start := time.Now()
		run, err := runQoS(cfg)
		exitOn(err)
		out := printQoS(os.Stdout, cfg, run, time.Since(start))
		printJSON(out)
	case "scale":
		n := *hosts
		if n == 0 {
			n = 10000
		}
		m := *measure
		if *quick && !flagGiven("measure") {
			m = 10 * time.Second
		}
		c := *conns
		if c == 0 {
			c = max(1, n/500)
		}
		det.ReadCoalesce = *coal
		out, err := runScale(scaleConfig{hosts: n, interval: *interval, conns: c, warmup: *warmup, measure: m, det: det, profile: *prof, baseline: *base, coalesce: *coal})
		exitOn(err)
		printJSON(out)
	default:
		exitOn(fmt.Errorf("unknown -mode %q (qos or scale)", *mode))
	}
}

func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func printJSON(v any) {
	b, err := json.Marshal(v)
	exitOn(err)
	fmt.Println(string(b))
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/detect:", err)
		os.Exit(1)
	}
}
