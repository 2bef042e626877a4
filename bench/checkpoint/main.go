// Command checkpoint measures coordinated checkpoints of a group of 4 sim
// domains of 256 MiB each on 4 agents over an embedded NATS server:
//
//   - checkpoint wall time and the group's pause (the longest member pause)
//     with resume after-all and with resume early;
//
//   - image store throughput of both stores (dir, nats) as a ratio to `cp`
//     followed by `sync` of the same bytes on the same disk (Put fsyncs, so
//     cp must too for the comparison to be fair).
//
//     go run ./bench/checkpoint          # 9 checkpoints per mode, 256 MiB domains
//     go run ./bench/checkpoint -quick   # 5 per mode; under 60 s (about 25 s here)
//
// Several rounds: with 4 equal members saving side by side on one machine,
// resume early saves each VM only its wait for the slowest member and the
// coordinator's resume round trip, 10-20 ms of a 200 ms pause, and one
// round's noise on this 2-core machine is as large.
//
// The last line is one JSON object with dir_vs_cp, nats_vs_cp, wall_ms,
// pause_ms_after_all and pause_ms_early (the mean pause of a VM; the
// longest are pause_max_ms_*).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

func main() {
	quick := flag.Bool("quick", false, "five checkpoints per mode")
	rounds := flag.Int("rounds", 9, "checkpoints per mode")
	memMiB := flag.Int("mem", 256, "memory of each of the 4 domains, MiB")
	dir := flag.String("dir", "", "work directory on the disk to measure (default: a temporary one)")
	flag.Parse()
	if *quick {
		*rounds = 5
	}
	if err := run(*rounds, *memMiB, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench/checkpoint:", err)
		os.Exit(1)
	}
}

const members = 4

func run(rounds, memMiB int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "xenft-bench-checkpoint")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	scfg := embedded.DefaultConfig()
	scfg.Port, scfg.DataDir = -1, filepath.Join(dir, "nats")
	srv, err := embedded.Start(scfg, log, 10*time.Second)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	bcfg := events.DefaultBusConfig()
	bcfg.URLs = []string{srv.ClientURL()}
	bcfg.RequestTimeout = time.Minute
	bus, err := events.Connect(bcfg, log)
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := bus.EnsureResources(ctx); err != nil {
		return err
	}
	dirStore, err := store.NewDir(filepath.Join(dir, "images"))
	if err != nil {
		return err
	}
	obj, err := bus.Images(ctx)
	if err != nil {
		return err
	}
	chunks, err := bus.ImagesStream(ctx)
	if err != nil {
		return err
	}
	natsStore := store.NewNATS(obj, store.LeaderChunks(bus.Conn(), chunks.CachedInfo().Config.Name))

	// 4 agents, each a sim host with one domain, on the bus.
	actx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAgents(); wg.Wait() }()
	g := checkpointer.GroupSpec{Name: "bench", Retain: checkpointer.MinRetain}
	for i := 0; i < members; i++ {
		host, vm := fmt.Sprintf("n%d", i+1), fmt.Sprintf("vm%d", i)
		sim := &xen.Sim{Host: host, TotalMemoryMiB: uint64(memMiB + 2048)}
		cfgPath := filepath.Join(dir, vm+".cfg")
		if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("name = %q\nmemory = %d\n", vm, memMiB)), 0o644); err != nil {
			return err
		}
		if err := sim.Create(ctx, cfgPath); err != nil {
			return err
		}
		ecfg := executor.DefaultConfig()
		ecfg.SpoolDir = filepath.Join(dir, "spool", host)
		ex, err := executor.New(sim, dirStore, ecfg, &events.EpochGuard{}, log)
		if err != nil {
			return err
		}
		ab, err := events.Connect(bcfg, log)
		if err != nil {
			return err
		}
		defer ab.Close()
		wg.Add(1)
		go func() { defer wg.Done(); _ = ab.ServeCommands(actx, host, ex.Handlers(), 8) }()
		g.Members = append(g.Members, checkpointer.Member{VM: vm, Host: host})
	}
	kv, err := bus.KV(ctx, bus.Names().Checkpoints())
	if err != nil {
		return err
	}
	ccfg := checkpointer.DefaultCoordinatorConfig()
	ccfg.PauseTimeout = 5 * time.Minute
	coord := checkpointer.NewCoordinator("bench", bus, bus, checkpointer.NewCatalog(kv), dirStore, ccfg, log)
	if err := waitAgents(ctx, bus); err != nil {
		return err
	}

	fmt.Printf("checkpoint: group of %d x %d MiB sim domains on %d agents, embedded NATS, dir store; GOMAXPROCS=%d\n", members, memMiB, members, runtime.GOMAXPROCS(0))
	var seq uint64
	// A VM's pause is what its users feel; the mean over the members is
	// what resume: early improves (fast members go on at once), the longest
	// is what both modes share (the slowest capture).
	// measure takes one checkpoint in one mode.
	measure := func(early bool) (wall, meanPause, maxPause []time.Duration, err error) {
		g.ResumeEarly = early
		seq++
		// Each checkpoint starts with the previous one's gigabyte written
		// back: otherwise the later mode pays for the earlier.
		_ = exec.Command("sync").Run()
		start := time.Now()
		rec, err := coord.Checkpoint(ctx, g, events.Epoch{Term: 1, Seq: seq})
		if err != nil {
			return nil, nil, nil, err
		}
		var longest, total int64
		for _, m := range rec.Members {
			longest = max(longest, m.PausedMs)
			total += m.PausedMs
		}
		mean := time.Duration(total/int64(len(rec.Members))) * time.Millisecond
		return []time.Duration{time.Since(start)}, []time.Duration{mean}, []time.Duration{time.Duration(longest) * time.Millisecond}, nil
	}
	// The modes alternate, round by round, so neither always comes second.
	var wallAll, pauseAll, maxAll, wallEarly, pauseEarly, maxEarly []time.Duration
	for r := 0; r < rounds; r++ {
		w, p, m, err := measure(false)
		if err != nil {
			return err
		}
		wallAll, pauseAll, maxAll = append(wallAll, w...), append(pauseAll, p...), append(maxAll, m...)
		w, p, m, err = measure(true)
		if err != nil {
			return err
		}
		wallEarly, pauseEarly, maxEarly = append(wallEarly, w...), append(pauseEarly, p...), append(maxEarly, m...)
	}
	fmt.Printf("resume after-all: wall %s, VM pause mean %s, longest %s (median of %d)\n", median(wallAll), median(pauseAll), median(maxAll), rounds)
	fmt.Printf("resume early:     wall %s, VM pause mean %s, longest %s (median of %d)\n", median(wallEarly), median(pauseEarly), median(maxEarly), rounds)

	// Store throughput: the same image put into each store vs cp+sync.
	img, err := sampleImage(ctx, dir, memMiB)
	if err != nil {
		return err
	}
	fi, _ := os.Stat(img)
	size := fi.Size()
	// Three rounds, each mode after a sync, the median of each: a single
	// round is at the mercy of this machine's disk cache (cp+sync alone
	// swung from 263 to 1400 MiB/s between runs here).
	var cps, dirs, natss []time.Duration
	for r := 0; r < 3; r++ {
		_ = exec.Command("sync").Run()
		cpT, err := timeCp(img, filepath.Join(dir, fmt.Sprintf("cp-target-%d", r)), members)
		if err != nil {
			return err
		}
		_ = exec.Command("sync").Run()
		dirT, err := timePut(ctx, dirStore, img, members, fmt.Sprintf("tp%d", r))
		if err != nil {
			return err
		}
		_ = exec.Command("sync").Run()
		natsT, err := timePut(ctx, natsStore, img, members, fmt.Sprintf("tp%d", r))
		if err != nil {
			return err
		}
		_ = os.RemoveAll(filepath.Join(dir, fmt.Sprintf("cp-target-%d", r)))
		for i := 0; i < members; i++ {
			_ = dirStore.Delete(ctx, fmt.Sprintf("tp%d/%d/img.img", r, i))
			_ = natsStore.Delete(ctx, fmt.Sprintf("tp%d/%d/img.img", r, i))
		}
		cps, dirs, natss = append(cps, cpT), append(dirs, dirT), append(natss, natsT)
	}
	cpT, dirT, natsT := median(cps), median(dirs), median(natss)
	mbps := func(d time.Duration) float64 { return float64(size*members) / d.Seconds() / (1 << 20) }
	fmt.Printf("store throughput, %d images of %d bytes, same disk, median of 3 rounds:\n", members, size)
	fmt.Printf("  cp+sync %7.0f MiB/s\n  dir     %7.0f MiB/s  (%.2fx cp)\n  nats    %7.0f MiB/s  (%.2fx cp)\n",
		mbps(cpT), mbps(dirT), cpT.Seconds()/dirT.Seconds(), mbps(natsT), cpT.Seconds()/natsT.Seconds())
	out, _ := json.Marshal(map[string]any{
		"dir_vs_cp":              round2(cpT.Seconds() / dirT.Seconds()),
		"nats_vs_cp":             round2(cpT.Seconds() / natsT.Seconds()),
		"wall_ms":                median(wallAll).Milliseconds(),
		"wall_ms_early":          median(wallEarly).Milliseconds(),
		"pause_ms_after_all":     median(pauseAll).Milliseconds(),
		"pause_ms_early":         median(pauseEarly).Milliseconds(),
		"pause_max_ms_after_all": median(maxAll).Milliseconds(),
		"pause_max_ms_early":     median(maxEarly).Milliseconds(),
		"members":                members, "member_mib": memMiB, "rounds": rounds,
	})
	fmt.Println(string(out))
	return nil
}

func waitAgents(ctx context.Context, bus *events.Bus) error {
	for i := 0; i < members; i++ {
		host := fmt.Sprintf("n%d", i+1)
		deadline := time.Now().Add(10 * time.Second)
		for bus.Command(ctx, host, checkpointer.VerbAbort, checkpointer.AbortRequest{Group: "x", VM: "x"}, nil, time.Second) != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("agent %s not answering", host)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// sampleImage writes one sim image of a memMiB domain: the same bytes the
// stores carry in a checkpoint.
func sampleImage(ctx context.Context, dir string, memMiB int) (string, error) {
	sim := &xen.Sim{Host: "sample", TotalMemoryMiB: uint64(memMiB + 2048)}
	cfg := filepath.Join(dir, "sample.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("name = \"sample\"\nmemory = %d\n", memMiB)), 0o644); err != nil {
		return "", err
	}
	if err := sim.Create(ctx, cfg); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "sample.img")
	return p, sim.Save(ctx, "sample", p, xen.SaveOptions{Mode: xen.SaveStop})
}

func timeCp(src, dstDir string, n int) (time.Duration, error) {
	if err := os.MkdirAll(dstDir, 0o750); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		dst := filepath.Join(dstDir, fmt.Sprintf("img%d", i))
		var errb bytes.Buffer
		cmd := exec.Command("sh", "-c", `cp "$1" "$2" && sync "$2"`, "cp", src, dst)
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("cp: %v: %s", err, errb.String())
		}
	}
	return time.Since(start), nil
}

func timePut(ctx context.Context, s store.ImageStore, src string, n int, prefix string) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < n; i++ {
		f, err := os.Open(src)
		if err != nil {
			return 0, err
		}
		_, err = s.Put(ctx, fmt.Sprintf("%s/%d/img.img", prefix, i), f)
		f.Close()
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
