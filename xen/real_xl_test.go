package xen

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRealXL drives a real Xen toolstack through the production xl driver,
// every verb and the errors the supervisor depends on. It needs dom0 of a
// Xen host and two configs of one small PV guest under different names, so
// it is skipped unless XENFT_REAL_XL=1; xen/lab/xen-e2e.sh runs it in the
// nested Xen lab. Settings (environment):
//
//	XENFT_REAL_XL=1     run at all
//	XENFT_XL            xl binary (default "xl")
//	XENFT_CFG           guest config (default /etc/xen/tiny.cfg)
//	XENFT_CFG2          same guest, another name (default /etc/xen/tiny2.cfg)
//	XENFT_IMAGES        directory for images (default /var/lib/xen/images)
//
// It leaves no domain behind when it passes. Each step logs its wall time.
func TestRealXL(t *testing.T) {
	if os.Getenv("XENFT_REAL_XL") != "1" {
		t.Skip("XENFT_REAL_XL=1 not set: no real Xen toolstack here (xen/lab/xen-e2e.sh runs this in dom0)")
	}
	x := &XL{Path: envOr("XENFT_XL", "xl")}
	cfgPath := envOr("XENFT_CFG", "/etc/xen/tiny.cfg")
	cfg2Path := envOr("XENFT_CFG2", "/etc/xen/tiny2.cfg")
	images := envOr("XENFT_IMAGES", "/var/lib/xen/images")
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, err := LoadConfig(cfg2Path)
	if err != nil {
		t.Fatal(err)
	}
	name, name2 := cfg.Name, cfg2.Name
	if name == name2 || cfg.MemoryMiB == 0 || cfg.MemoryMiB != cfg2.MemoryMiB {
		t.Fatalf("%s and %s must name two domains of one memory size", cfgPath, cfg2Path)
	}

	// step runs one check with its own deadline and logs how long it took.
	step := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		if err := f(ctx); err != nil {
			t.Fatalf("STEP %s: FAILED after %.2fs: %v", what, time.Since(start).Seconds(), err)
		}
		t.Logf("STEP %-58s ok %6.2fs", what, time.Since(start).Seconds())
	}
	want := func(err, target error) error {
		if !errors.Is(err, target) {
			return errors.New("got " + errString(err) + ", want " + target.Error())
		}
		t.Logf("     got as expected: %v", err)
		return nil
	}
	bg := context.Background()
	t.Cleanup(func() { // leave dom0 as found even when a step failed
		x.Destroy(bg, name2)
		x.Destroy(bg, name)
	})
	x.Destroy(bg, name2)
	x.Destroy(bg, name)

	var before HostInfo
	step("xl info", func(ctx context.Context) (err error) {
		before, err = x.HostInfo(ctx)
		t.Logf("     host %q, Xen %s, %d CPUs, memory %d MiB total, %d MiB free",
			before.Host, before.XenVersion, before.NrCPUs, before.TotalMemoryMiB, before.FreeMemoryMiB)
		if err == nil && (before.TotalMemoryMiB == 0 || before.FreeMemoryMiB < cfg.MemoryMiB) {
			err = errors.New("implausible host memory")
		}
		return err
	})
	var d1 Domain
	step("xl create "+cfgPath, func(ctx context.Context) error { return x.Create(ctx, cfgPath) })
	step("xl list -l + xl list: "+name+" alive, with uuid and memory", func(ctx context.Context) (err error) {
		d1, err = listed(ctx, x, name)
		if err == nil && (!d1.State.Alive() || d1.UUID == "" || d1.MemoryMiB != cfg.MemoryMiB || d1.Type != "pv") {
			err = errors.New("listed as " + describe(d1))
		}
		t.Logf("     %s", describe(d1))
		return err
	})
	step("xl info: free memory fell by the guest's", func(ctx context.Context) error {
		after, err := x.HostInfo(ctx)
		if err == nil && before.FreeMemoryMiB-after.FreeMemoryMiB < cfg.MemoryMiB {
			err = errors.New("free memory " + strconv.FormatUint(before.FreeMemoryMiB, 10) + " -> " + strconv.FormatUint(after.FreeMemoryMiB, 10))
		}
		return err
	})
	step("guest booted (xenstore control/feature-suspend)", func(ctx context.Context) error {
		return waitSuspendReady(ctx, d1.ID)
	})
	step("create again: ErrDomainExists", func(ctx context.Context) error {
		return want(x.Create(ctx, cfgPath), ErrDomainExists)
	})
	step("pause: state paused", func(ctx context.Context) error { return pauseCheck(ctx, x, name, true) })
	step("pause again: one pause only (one unpause runs it)", func(ctx context.Context) error {
		if err := x.Pause(ctx, name); err != nil {
			return err
		}
		res, err := x.run(ctx, "unpause", name, name) // a single raw xl unpause
		if err == nil && res.ExitCode != 0 {
			err = errors.New("xl unpause exit " + strconv.Itoa(res.ExitCode))
		}
		if err != nil {
			return err
		}
		return expectState(ctx, x, name, false)
	})
	step("unpause of a running domain: no-op", func(ctx context.Context) error { return pauseCheck(ctx, x, name, false) })
	step("unknown domains: ErrDomainNotFound", func(ctx context.Context) error {
		for _, err := range []error{x.Pause(ctx, "xenft-nosuch"), x.Unpause(ctx, "99"), x.Destroy(ctx, "xenft-nosuch"),
			x.Destroy(ctx, "99"), x.Save(ctx, "xenft-nosuch", filepath.Join(images, "x.img"), SaveOptions{})} {
			if err := want(err, ErrDomainNotFound); err != nil {
				return err
			}
		}
		return nil
	})
	chk := filepath.Join(images, "xenft-chk.img")
	chk2 := filepath.Join(images, "xenft-chk2.img")
	pimg := filepath.Join(images, "xenft-p.img")
	img := filepath.Join(images, "xenft-stop.img")
	killed := filepath.Join(images, "xenft-killed.img")
	// Each image is the guest's memory: left behind by a failed run they
	// would fill dom0's in-memory root file system for the lab's next steps.
	t.Cleanup(func() {
		for _, f := range []string{chk, chk2, pimg, img, killed} {
			os.Remove(f)
		}
	})
	// fastestSave is the shortest of the saves below, xl alone: under
	// emulation one save can take three times as long as the next.
	var fastestSave time.Duration
	timedSave := func(ctx context.Context, path string, opts SaveOptions) error {
		start := time.Now()
		err := x.Save(ctx, name, path, opts)
		if took := time.Since(start); err == nil && (fastestSave == 0 || took < fastestSave) {
			fastestSave = took
		}
		return err
	}
	step("xl save -c: domain keeps running", func(ctx context.Context) error {
		if err := timedSave(ctx, chk, SaveOptions{Mode: SaveKeepRunning}); err != nil {
			return err
		}
		return imageAndState(ctx, x, name, chk, cfg.MemoryMiB, false)
	})
	step("xl save -c again (a second checkpoint)", func(ctx context.Context) error {
		return timedSave(ctx, chk2, SaveOptions{Mode: SaveKeepRunning})
	})
	step("xl save -p: domain left paused", func(ctx context.Context) error {
		if err := timedSave(ctx, pimg, SaveOptions{Mode: SaveLeavePaused}); err != nil {
			return err
		}
		return imageAndState(ctx, x, name, pimg, cfg.MemoryMiB, true)
	})
	step("save of a paused domain: ErrGuestUnresponsive at once", func(ctx context.Context) error {
		return want(x.Save(ctx, name, filepath.Join(images, "x.img"), SaveOptions{Mode: SaveKeepRunning}), ErrGuestUnresponsive)
	})
	step("xl restore -p "+cfg2Path+": "+name2+" paused, new id", func(ctx context.Context) error {
		if err := x.Restore(ctx, chk, RestoreOptions{ConfigPath: cfg2Path, Paused: true}); err != nil {
			return err
		}
		d2, err := listed(ctx, x, name2)
		t.Logf("     %s", describe(d2))
		if err == nil && (d2.State != StatePaused || d2.ID == d1.ID) {
			err = errors.New("restored as " + describe(d2))
		}
		return err
	})
	step("unpause "+name2+": running", func(ctx context.Context) error { return pauseCheck(ctx, x, name2, false) })
	step("xl destroy "+name2, func(ctx context.Context) error {
		if err := x.Destroy(ctx, name2); err != nil {
			return err
		}
		return gone(ctx, x, name2)
	})
	step("restore without config while "+name+" exists: ErrDomainExists", func(ctx context.Context) error {
		return want(x.Restore(ctx, pimg, RestoreOptions{}), ErrDomainExists)
	})
	step("restore of a missing image: ErrBadImage", func(ctx context.Context) error {
		return want(x.Restore(ctx, filepath.Join(images, "xenft-missing.img"), RestoreOptions{}), ErrBadImage)
	})
	step("restore of a truncated image: ErrBadImage, no domain", func(ctx context.Context) error {
		cut := filepath.Join(images, "xenft-cut.img")
		if err := copyPrefix(chk, cut, 1<<20); err != nil {
			return err
		}
		defer os.Remove(cut)
		if err := want(x.Restore(ctx, cut, RestoreOptions{ConfigPath: cfg2Path, Paused: true}), ErrBadImage); err != nil {
			return err
		}
		return gone(ctx, x, name2)
	})
	step("save into a missing directory: *ToolstackError", func(ctx context.Context) error {
		x.Unpause(ctx, name)
		var te *ToolstackError
		err := x.Save(ctx, name, "/nonexistent-dir/x.img", SaveOptions{Mode: SaveKeepRunning})
		if !errors.As(err, &te) || te.ExitCode != 1 {
			return errors.New("got " + errString(err))
		}
		t.Logf("     got as expected: %v", err)
		return nil
	})
	step("xl save (plain): domain gone", func(ctx context.Context) error {
		if err := x.Save(ctx, name, img, SaveOptions{}); err != nil {
			return err
		}
		return gone(ctx, x, name)
	})
	step("xl restore: back, running, new id, same uuid", func(ctx context.Context) error {
		if err := x.Restore(ctx, img, RestoreOptions{}); err != nil {
			return err
		}
		d, err := listed(ctx, x, name)
		t.Logf("     %s", describe(d))
		if err == nil && (!d.State.Alive() || d.State == StatePaused || d.ID == d1.ID || d.UUID != d1.UUID) {
			err = errors.New("restored as " + describe(d))
		}
		return err
	})
	step("expired deadline: ErrTimeout", func(ctx context.Context) error {
		short, cancel := context.WithTimeout(ctx, time.Nanosecond)
		defer cancel()
		<-short.Done()
		_, err := x.List(short)
		return want(err, ErrTimeout)
	})
	step("xl save -c killed half way by its deadline: ErrTimeout", func(ctx context.Context) error {
		// Straight to xl save (Save's xl list check would use up the
		// deadline under emulation), with a deadline at a quarter of the
		// fastest save, so that the kill hits a running save. (A third of
		// the first save step, 6.2 s in one lab run, let this 1.2 s save
		// finish before its deadline.)
		short, cancel := context.WithTimeout(ctx, fastestSave/4)
		defer cancel()
		start := time.Now()
		_, err := x.run(short, "save", name, "-c", name, killed)
		t.Logf("     returned after %.2fs", time.Since(start).Seconds())
		if err := want(err, ErrTimeout); err != nil {
			return err
		}
		if fi, err := os.Stat(killed); err == nil {
			t.Logf("     the killed save left %d bytes at %s", fi.Size(), killed)
		}
		os.Remove(killed)
		// Killed before xl suspended the guest, the guest runs on; killed
		// after, it is left suspended ("---ss-") and cannot be unpaused.
		d, err := listed(ctx, x, name)
		t.Logf("     after the kill: %s", describe(d))
		switch {
		case err != nil:
			return err
		case d.Flags == "---ss-":
			return want(x.Unpause(ctx, name), ErrDomainNotAlive)
		case !d.State.Alive() || d.State == StatePaused:
			return errors.New("after the killed save: " + describe(d))
		}
		return nil
	})
	step("xl destroy "+name+": host as before", func(ctx context.Context) error {
		if err := x.Destroy(ctx, name); err != nil {
			return err
		}
		if err := gone(ctx, x, name); err != nil {
			return err
		}
		doms, err := x.List(ctx)
		if err == nil && len(doms) != 0 {
			err = errors.New("domains left: " + describe(doms[0]))
		}
		return err
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func errString(err error) string {
	if err == nil {
		return "success"
	}
	return err.Error()
}

func describe(d Domain) string {
	return d.Name + " id " + strconv.Itoa(d.ID) + " " + string(d.State) + " (" + d.Flags + ") " +
		strconv.FormatUint(d.MemoryMiB, 10) + " MiB " + d.Type + " uuid " + d.UUID + " cpu " + d.CPUTime.String()
}

func listed(ctx context.Context, x *XL, name string) (Domain, error) {
	doms, err := x.List(ctx)
	if err != nil {
		return Domain{}, err
	}
	for _, d := range doms {
		if d.Name == name {
			return d, nil
		}
	}
	return Domain{}, errors.New(name + " not listed")
}

func gone(ctx context.Context, x *XL, name string) error {
	if d, err := listed(ctx, x, name); err == nil {
		return errors.New("still listed: " + describe(d))
	}
	return nil
}

func expectState(ctx context.Context, x *XL, name string, paused bool) error {
	d, err := listed(ctx, x, name)
	if err == nil && (d.State == StatePaused) != paused {
		err = errors.New("state " + describe(d))
	}
	return err
}

func pauseCheck(ctx context.Context, x *XL, name string, pause bool) error {
	op := x.Unpause
	if pause {
		op = x.Pause
	}
	if err := op(ctx, name); err != nil {
		return err
	}
	return expectState(ctx, x, name, pause)
}

func imageAndState(ctx context.Context, x *XL, name, path string, memMiB uint64, paused bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if uint64(fi.Size()) < memMiB<<20 {
		return errors.New("image of " + strconv.FormatInt(fi.Size(), 10) + " bytes is smaller than the guest's memory")
	}
	return expectState(ctx, x, name, paused)
}

func copyPrefix(src, dst string, n int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, _ := f.Read(buf)
	return os.WriteFile(dst, buf[:m], 0o600)
}

// waitSuspendReady waits until the guest kernel has registered its
// suspend handler: Linux writes control/feature-suspend to xenstore once
// xenbus is up. Saving earlier makes xl wait 60 s for an acknowledgement
// that cannot come.
func waitSuspendReady(ctx context.Context, domid int) error {
	key := "/local/domain/" + strconv.Itoa(domid) + "/control/feature-suspend"
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := exec.CommandContext(ctx, "xenstore-read", key).Output()
		if err == nil && strings.TrimSpace(string(out)) == "1" {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("guest never wrote " + key)
		case <-tick.C:
		}
	}
}
