// Command xen measures the xen drivers:
//
//   - sim save and restore of a 1 GiB domain as a ratio to `cp` of the same
//     image on the same disk (cp then sync, because the sim's save fsyncs;
//     plain cp is printed too);
//
//   - the xl driver's cost per call against the fake xl (exec, argument
//     building, output parsing), beside a bare exec of the same command.
//
//     go run ./bench/xen           # 3 rounds
//     go run ./bench/xen -quick    # 1 round, under 60 s
//
// The last line is one JSON object with save_vs_cp, restore_vs_cp and
// xl_call_overhead_ms.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/xentest"
)

func main() {
	quick := flag.Bool("quick", false, "three rounds, fewer calls")
	rounds := flag.Int("rounds", 3, "rounds of each measurement (the median is reported)")
	memMiB := flag.Int("mem", 1024, "domain memory, MiB")
	calls := flag.Int("calls", 200, "xl driver calls to time")
	dir := flag.String("dir", "", "directory on the disk to measure (default: a temporary one)")
	flag.Parse()
	if *quick {
		*rounds, *calls = 3, 50 // one round is at the mercy of the VM's disk cache
	}
	if err := run(*rounds, *memMiB, *calls, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench/xen:", err)
		os.Exit(1)
	}
}

func run(rounds, memMiB, calls int, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "xenft-bench-xen")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sim := &xen.Sim{Host: "bench", TotalMemoryMiB: uint64(memMiB + 2048)}
	cfg := filepath.Join(dir, "big.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("name = \"big\"\nmemory = %d\n", memMiB)), 0o644); err != nil {
		return err
	}
	if err := sim.Create(ctx, cfg); err != nil {
		return err
	}
	img := filepath.Join(dir, "big.img")
	var saveT, restoreT, cpSyncT, cpT []time.Duration
	dropped := false
	for r := 0; r < rounds; r++ {
		_ = os.Remove(img)
		start := time.Now()
		if err := sim.Save(ctx, "big", img, xen.SaveOptions{Mode: xen.SaveStop}); err != nil {
			return err
		}
		saveT = append(saveT, time.Since(start))
		dropped = dropCaches()
		start = time.Now()
		if err := sim.Restore(ctx, img, xen.RestoreOptions{}); err != nil {
			return err
		}
		restoreT = append(restoreT, time.Since(start))
		dropCaches()
		d, err := timeShell(`cp "$1" "$2" && sync "$2"`, img, filepath.Join(dir, "copy.img"))
		if err != nil {
			return err
		}
		cpSyncT = append(cpSyncT, d)
		_ = os.Remove(filepath.Join(dir, "copy.img"))
		d, err = timeShell(`cp "$1" "$2"`, img, filepath.Join(dir, "copy.img"))
		if err != nil {
			return err
		}
		cpT = append(cpT, d)
		_ = os.Remove(filepath.Join(dir, "copy.img"))
	}
	fi, err := os.Stat(img)
	if err != nil {
		return err
	}
	size := float64(fi.Size())
	mbps := func(d time.Duration) float64 { return size / d.Seconds() / (1 << 20) }
	save, restore, cps, cp := median(saveT), median(restoreT), median(cpSyncT), median(cpT)
	fmt.Printf("xen: sim domain of %d MiB (image %d bytes), GOMAXPROCS=%d, median of %d\n", memMiB, fi.Size(), runtime.GOMAXPROCS(0), rounds)
	fmt.Printf("  sim save    %6s  %6.0f MiB/s  (%.2fx cp+sync)\n", save.Round(time.Millisecond), mbps(save), cps.Seconds()/save.Seconds())
	cache := "page cache dropped before restore and cp+sync"
	if !dropped {
		cache = "page cache NOT dropped (not root): restore may read from memory"
	}
	fmt.Printf("  sim restore %6s  %6.0f MiB/s  (%.2fx cp+sync; reads and verifies every page; %s)\n", restore.Round(time.Millisecond), mbps(restore), cps.Seconds()/restore.Seconds(), cache)
	fmt.Printf("  cp+sync     %6s  %6.0f MiB/s;  plain cp %s (%.0f MiB/s, page cache)\n", cps.Round(time.Millisecond), mbps(cps), cp.Round(time.Millisecond), mbps(cp))

	// The xl driver against the fake xl.
	fake, err := xentest.BuildFakeXL(dir)
	if err != nil {
		return err
	}
	state := filepath.Join(dir, "fakexl-state")
	env := []string{"FAKEXL_STATE=" + state, "FAKEXL_HOST=bench"}
	xl := &xen.XL{Path: fake, Env: env}
	small := filepath.Join(dir, "small.cfg")
	_ = os.WriteFile(small, []byte("name = \"small\"\nmemory = 4\n"), 0o644)
	if err := xl.Create(ctx, small); err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < calls; i++ {
		if _, err := xl.HostInfo(ctx); err != nil {
			return err
		}
	}
	driverInfo := time.Since(start) / time.Duration(calls)
	start = time.Now()
	for i := 0; i < calls; i++ {
		cmd := exec.Command(fake, "info")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Run(); err != nil {
			return err
		}
	}
	bareInfo := time.Since(start) / time.Duration(calls)
	start = time.Now()
	for i := 0; i < calls; i++ {
		if _, err := xl.List(ctx); err != nil {
			return err
		}
	}
	driverList := time.Since(start) / time.Duration(calls)
	fmt.Printf("xl driver against the fake xl, %d calls each:\n", calls)
	fmt.Printf("  HostInfo (xl info) %.2f ms per call; bare exec of `xl info` %.2f ms: the driver adds %.2f ms\n", ms(driverInfo), ms(bareInfo), ms(driverInfo-bareInfo))
	fmt.Printf("  List (xl list -l, then xl list) %.2f ms per call\n", ms(driverList))
	out, _ := json.Marshal(map[string]any{
		"save_vs_cp":          round2(cps.Seconds() / save.Seconds()),
		"restore_vs_cp":       round2(cps.Seconds() / restore.Seconds()),
		"xl_call_overhead_ms": round2(ms(driverInfo)),
		"xl_driver_added_ms":  round2(ms(driverInfo - bareInfo)),
		"save_mib_per_s":      int(mbps(save)),
		"restore_mib_per_s":   int(mbps(restore)),
		"cp_sync_mib_per_s":   int(mbps(cps)),
		"xl_list_ms":          round2(ms(driverList)),
		"domain_mib":          memMiB,
		"rounds":              rounds,
	})
	fmt.Println(string(out))
	return nil
}

// dropCaches empties the page cache (root only) so reads come from the disk.
func dropCaches() bool {
	if err := exec.Command("sync").Run(); err != nil {
		return false
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200) == nil
}

func timeShell(script string, args ...string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %v: %s", script, err, out)
	}
	return time.Since(start), nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func round2(f float64) float64   { return float64(int(f*100+0.5)) / 100 }
