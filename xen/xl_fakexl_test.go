package xen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xenft/xenft/events/eventstest"
)

// These tests run the production xl driver against the fake xl program:
// real exec, real arguments, real output parsing, real exit statuses.

func findDomain(t testing.TB, x *XL, name string) (Domain, bool) {
	t.Helper()
	doms, err := x.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		if d.Name == name {
			return d, true
		}
	}
	return Domain{}, false
}

func mustState(t testing.TB, x *XL, name string, want State) Domain {
	t.Helper()
	d, ok := findDomain(t, x, name)
	if !ok {
		t.Fatalf("%s not listed", name)
	}
	if d.State != want {
		t.Fatalf("%s is %s (%s), want %s", name, d.State, d.Flags, want)
	}
	return d
}

func TestXLFakeEveryVerb(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFakeHost(t)
	x := h.XL
	hi, err := x.HostInfo(ctx)
	if err != nil || hi.TotalMemoryMiB != 4096 || hi.FreeMemoryMiB != 4096-1536 || hi.XenVersion != "4.17.7" {
		t.Fatalf("HostInfo = %+v, %v", hi, err)
	}
	if err := x.Create(ctx, writeCfg(t, h.Dir, "tiny", 16)); err != nil {
		t.Fatal(err)
	}
	d := mustState(t, x, "tiny", StateRunning)
	if d.ID != 1 || d.MemoryMiB != 16 || d.VCPUs != 1 || d.Type != "pv" || len(d.UUID) != 36 {
		t.Fatalf("listed %+v", d)
	}
	if hi, _ := x.HostInfo(ctx); hi.FreeMemoryMiB != 4096-1536-16 {
		t.Fatalf("free memory %d after a 16 MiB create", hi.FreeMemoryMiB)
	}

	// Pause twice, unpause once: running (the driver does not stack pauses).
	for i := 0; i < 2; i++ {
		if err := x.Pause(ctx, "tiny"); err != nil {
			t.Fatal(err)
		}
	}
	p := h.progress(t, "tiny")
	mustState(t, x, "tiny", StatePaused)
	if err := x.Unpause(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	mustState(t, x, "tiny", StateRunning)
	if err := x.Unpause(ctx, "tiny"); err != nil { // running: nothing to do
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return h.progress(t, "tiny") > p }, "progress past the pause")

	// save -c: image written, domain keeps running.
	chk := filepath.Join(h.Dir, "chk.img")
	if err := x.Save(ctx, "tiny", chk, SaveOptions{Mode: SaveKeepRunning}); err != nil {
		t.Fatal(err)
	}
	mustState(t, x, "tiny", StateRunning)
	if hdr, err := ReadImageHeader(chk); err != nil || hdr.Name != "tiny" || hdr.MemoryBytes != 16<<20 {
		t.Fatalf("checkpoint header %+v, %v", hdr, err)
	}

	// save -p: image at progress P, domain paused at P.
	pimg := filepath.Join(h.Dir, "p.img")
	if err := x.Save(ctx, "tiny", pimg, SaveOptions{Mode: SaveLeavePaused, ConfigPath: writeCfg(t, h.Dir, "tiny", 16)}); err != nil {
		t.Fatal(err)
	}
	mustState(t, x, "tiny", StatePaused)
	hdr, err := ReadImageHeader(pimg)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.progress(t, "tiny"); got != hdr.Progress {
		t.Fatalf("paused at %d, image holds %d", got, hdr.Progress)
	}
	// A paused domain cannot be saved; the driver says so at once.
	start := time.Now()
	err = x.Save(ctx, "tiny", filepath.Join(h.Dir, "x.img"), SaveOptions{Mode: SaveKeepRunning})
	if !errors.Is(err, ErrGuestUnresponsive) || time.Since(start) > 5*time.Second {
		t.Fatalf("save of a paused domain: %v after %v", err, time.Since(start))
	}

	// restore -p under another name while tiny exists: exactly progress P.
	if err := x.Restore(ctx, pimg, RestoreOptions{Paused: true, ConfigPath: writeCfg(t, h.Dir, "tiny2", 16)}); err != nil {
		t.Fatal(err)
	}
	d2 := mustState(t, x, "tiny2", StatePaused)
	if d2.ID != 2 || d2.UUID == d.UUID {
		t.Fatalf("restored %+v: want a new id and uuid", d2)
	}
	if got := h.progress(t, "tiny2"); got != hdr.Progress {
		t.Fatalf("restored at %d, want exactly %d", got, hdr.Progress)
	}
	if err := x.Unpause(ctx, "tiny2"); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 5*time.Second, func() bool { return h.progress(t, "tiny2") > hdr.Progress }, "tiny2 progressing")
	if err := x.Destroy(ctx, "tiny2"); err != nil {
		t.Fatal(err)
	}

	// Plain save stops the domain; restore brings it back with a new id.
	if err := x.Unpause(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(h.Dir, "tiny.img")
	if err := x.Save(ctx, "tiny", img, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := findDomain(t, x, "tiny"); ok {
		t.Fatal("tiny still listed after a plain save")
	}
	saved, _ := ReadImageHeader(img)
	if err := x.Restore(ctx, img, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	d3 := mustState(t, x, "tiny", StateRunning)
	if d3.ID != 3 || d3.UUID != d.UUID {
		t.Fatalf("restored %+v: want id 3 and the saved uuid %s", d3, d.UUID)
	}
	if got := h.progress(t, "tiny"); got < saved.Progress {
		t.Fatalf("restored progress %d below the saved %d", got, saved.Progress)
	}
	if err := x.Destroy(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	if doms, err := x.List(ctx); err != nil || len(doms) != 0 {
		t.Fatalf("List after destroy = %+v, %v", doms, err)
	}
}

func TestXLFakeErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFakeHost(t)
	x := h.XL
	img := filepath.Join(h.Dir, "x.img")
	for name, call := range map[string]func(string) error{
		"pause":   func(d string) error { return x.Pause(ctx, d) },
		"unpause": func(d string) error { return x.Unpause(ctx, d) },
		"destroy": func(d string) error { return x.Destroy(ctx, d) },
		"save":    func(d string) error { return x.Save(ctx, d, img, SaveOptions{}) },
	} {
		for _, dom := range []string{"nosuch", "99"} {
			err := call(dom)
			if !errors.Is(err, ErrDomainNotFound) || !strings.Contains(err.Error(), dom) {
				t.Errorf("%s %s: %v, want ErrDomainNotFound naming the domain", name, dom, err)
			}
		}
	}
	var te *ToolstackError
	err := x.Destroy(ctx, "nosuch")
	if !errors.As(err, &te) || te.ExitCode != 1 || te.Verb != "destroy" ||
		te.Stderr != "nosuch is an invalid domain identifier (rc=-6)\n" {
		t.Errorf("destroy nosuch: %#v", te)
	}

	cfg := writeCfg(t, h.Dir, "a", 8)
	if err := x.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	err = x.Create(ctx, cfg)
	if !errors.Is(err, ErrDomainExists) || !errors.As(err, &te) || te.ExitCode != 3 {
		t.Errorf("second create: %v, want ErrDomainExists with exit status 3", err)
	}
	chk := filepath.Join(h.Dir, "a.img")
	if err := x.Save(ctx, "a", chk, SaveOptions{Mode: SaveKeepRunning}); err != nil {
		t.Fatal(err)
	}
	err = x.Restore(ctx, chk, RestoreOptions{})
	if !errors.Is(err, ErrDomainExists) || !errors.As(err, &te) || te.ExitCode != 1 {
		t.Errorf("restore over a running domain: %v, want ErrDomainExists with exit status 1", err)
	}
	if err := x.Restore(ctx, filepath.Join(h.Dir, "missing.img"), RestoreOptions{}); !errors.Is(err, ErrBadImage) {
		t.Errorf("restore of a missing file: %v", err)
	}
	for _, junk := range []string{"garbage\n", strings.Repeat("not an image ", 10)} {
		os.WriteFile(img, []byte(junk), 0o644)
		if err := x.Restore(ctx, img, RestoreOptions{}); !errors.Is(err, ErrBadImage) {
			t.Errorf("restore of %q: %v", junk[:8], err)
		}
	}
	err = x.Save(ctx, "a", "/nonexistent-dir/a.img", SaveOptions{Mode: SaveKeepRunning})
	if !errors.As(err, &te) || te.Kind != nil || !strings.Contains(te.Stderr, "Failed to open temp file") {
		t.Errorf("save into a missing directory: %v", err)
	}
	if err := x.Create(ctx, filepath.Join(h.Dir, "missing.cfg")); err == nil {
		t.Error("create from a missing config succeeded")
	}
	// Arguments xl would read as options never reach it.
	for _, err := range []error{
		x.Pause(ctx, "-p"), x.Save(ctx, "a", "-c", SaveOptions{}), x.Restore(ctx, "", RestoreOptions{}),
		x.Restore(ctx, chk, RestoreOptions{ConfigPath: "-e"}), x.Create(ctx, "-q"), x.Destroy(ctx, ""),
	} {
		if !errors.Is(err, ErrBadArgument) {
			t.Errorf("got %v, want ErrBadArgument", err)
		}
	}
	// xl pause and unpause fail with exit status 0; only the check with
	// xl list finds out.
	h.fault(t, "pause", "fail")
	err = x.Pause(ctx, "a")
	if !errors.As(err, &te) || te.ExitCode != 0 || !strings.Contains(te.Stderr, "Pausing domain") {
		t.Errorf("pause that xl failed silently: %v", err)
	}
	mustState(t, x, "a", StateRunning)
	// A crashed domain is not paused or unpaused at all.
	if _, _, code := h.raw(t, "sim-crash", "a"); code != 0 {
		t.Fatal("sim-crash failed")
	}
	for _, err := range []error{x.Pause(ctx, "a"), x.Unpause(ctx, "a")} {
		if !errors.Is(err, ErrDomainNotAlive) || !strings.Contains(err.Error(), "crashed") {
			t.Errorf("pause/unpause of a crashed domain: %v, want ErrDomainNotAlive", err)
		}
	}
}

// Xen counts toolstack pauses: Unpause undoes as many as there are.
func TestXLFakeNestedPauses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFakeHost(t)
	h.XL.Create(ctx, writeCfg(t, h.Dir, "a", 8))
	for i := 0; i < 3; i++ {
		if _, e, code := h.raw(t, "pause", "a"); code != 0 || e != "" {
			t.Fatalf("xl pause: %d %q", code, e)
		}
	}
	h.raw(t, "unpause", "a")
	mustState(t, h.XL, "a", StatePaused)
	h.fault(t, "unpause", "fail") // one silent failure on the way is retried
	if err := h.XL.Unpause(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	mustState(t, h.XL, "a", StateRunning)
	// Paused more often than Unpause will undo: someone else holds it.
	for i := 0; i < maxUnpauses+1; i++ {
		h.raw(t, "pause", "a")
	}
	var te *ToolstackError
	if err := h.XL.Unpause(ctx, "a"); !errors.As(err, &te) || !strings.Contains(err.Error(), "still paused") {
		t.Fatalf("Unpause of a domain paused %d times: %v", maxUnpauses+1, err)
	}
}

// A hung xl is killed with its whole process group when the deadline
// passes, and the next call works (the fake's lock died with it).
func TestXLFakeTimeoutKillsChild(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	h.XL.Create(context.Background(), writeCfg(t, h.Dir, "a", 8))
	h.fault(t, "save", "hang")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.XL.Save(ctx, "a", filepath.Join(h.Dir, "a.img"), SaveOptions{Mode: SaveKeepRunning})
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung save: %v, want ErrTimeout and DeadlineExceeded", err)
	}
	var te *ToolstackError
	if !errors.As(err, &te) || te.Verb != "save" || te.Domain != "a" {
		t.Fatalf("hung save: %#v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Save returned %v after its 500 ms deadline", el)
	}
	data, err := os.ReadFile(filepath.Join(h.State, "hang.pids"))
	if err != nil {
		t.Fatal(err)
	}
	pids := strings.Fields(string(data))
	if len(pids) != 2 {
		t.Fatalf("hang.pids = %q, want the fake xl and its child", data)
	}
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		eventstest.Eventually(t, 5*time.Second, func() bool { return processGone(pid) }, "pid %s to die", p)
	}
	// Like a real save killed half way, the guest is left suspended, and
	// the next calls (the fake's lock died with it) see it so.
	d := mustState(t, h.XL, "a", StateShutdown)
	if d.Flags != "---ss-" {
		t.Fatalf("after the killed save: %+v, want ---ss-", d)
	}
	if err := h.XL.Unpause(context.Background(), "a"); !errors.Is(err, ErrDomainNotAlive) {
		t.Fatalf("Unpause of the suspended guest: %v, want ErrDomainNotAlive", err)
	}
	if err := h.XL.Destroy(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
}

// A cancelled context is reported as such, not as a timeout.
func TestXLFakeCancel(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	h.fault(t, "info", "hang")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // cancel once the fake xl hangs (or after 10 s at worst)
		defer cancel()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); <-tick.C {
			if _, err := os.Stat(filepath.Join(h.State, "hang.pids")); err == nil {
				return
			}
		}
	}()
	_, err := h.XL.HostInfo(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("cancelled info: %v", err)
	}
}

// An image cut short on disk is found on restore, and no domain is built.
func TestXLFakeTruncatedImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFakeHost(t)
	h.XL.Create(ctx, writeCfg(t, h.Dir, "a", 8))
	h.fault(t, "save", "truncate")
	img := filepath.Join(h.Dir, "a.img")
	if err := h.XL.Save(ctx, "a", img, SaveOptions{Mode: SaveKeepRunning}); err != nil {
		t.Fatalf("the truncating save reports success like a lying disk: %v", err)
	}
	err := h.XL.Restore(ctx, img, RestoreOptions{ConfigPath: writeCfg(t, h.Dir, "b", 8)})
	if !errors.Is(err, ErrBadImage) {
		t.Fatalf("restore of a truncated image: %v, want ErrBadImage", err)
	}
	if _, ok := findDomain(t, h.XL, "b"); ok {
		t.Fatal("a domain was built from a truncated image")
	}
}

// A save that fails mid-stream (the real ENOSPC failure) leaves the domain
// running and a partial image, which restore refuses.
func TestXLFakeSaveAndRestoreFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFakeHost(t)
	h.XL.Create(ctx, writeCfg(t, h.Dir, "a", 8))
	h.fault(t, "save", "fail")
	img := filepath.Join(h.Dir, "a.img")
	err := h.XL.Save(ctx, "a", img, SaveOptions{})
	var te *ToolstackError
	if !errors.As(err, &te) || te.ExitCode != 1 || !strings.Contains(te.Stderr, "No space left on device") {
		t.Fatalf("failing save: %v", err)
	}
	mustState(t, h.XL, "a", StateRunning)
	if err := h.XL.Restore(ctx, img, RestoreOptions{ConfigPath: writeCfg(t, h.Dir, "b", 8)}); !errors.Is(err, ErrBadImage) {
		t.Fatalf("restore of the partial image: %v", err)
	}
	if err := h.XL.Save(ctx, "a", img, SaveOptions{Mode: SaveKeepRunning}); err != nil {
		t.Fatal(err)
	}
	h.fault(t, "restore", "fail")
	if err := h.XL.Restore(ctx, img, RestoreOptions{ConfigPath: writeCfg(t, h.Dir, "b", 8)}); !errors.Is(err, ErrBadImage) {
		t.Fatalf("failing restore: %v", err)
	}
	if err := h.XL.Restore(ctx, img, RestoreOptions{ConfigPath: writeCfg(t, h.Dir, "b", 8)}); err != nil {
		t.Fatalf("restore after the fault was used up: %v", err)
	}
}

// Concurrent xl calls on one host are serialised by the fake's lock and
// all succeed.
func TestXLFakeConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFakeHost(t)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			if err := h.XL.Create(ctx, writeCfg(t, h.Dir, name, 4)); err != nil {
				t.Error(err)
				return
			}
			if err := h.XL.Pause(ctx, name); err != nil {
				t.Error(err)
			}
			if err := h.XL.Unpause(ctx, name); err != nil {
				t.Error(err)
			}
			if _, err := h.XL.List(ctx); err != nil {
				t.Error(err)
			}
		}("vm" + strconv.Itoa(i))
	}
	wg.Wait()
	doms, err := h.XL.List(ctx)
	if err != nil || len(doms) != 6 {
		t.Fatalf("List = %d domains, %v", len(doms), err)
	}
	seen := map[int]bool{}
	for _, d := range doms {
		if seen[d.ID] {
			t.Errorf("domain id %d given twice", d.ID)
		}
		seen[d.ID] = true
	}
}

// Output beyond the cap is an error, not a silently cut listing.
func TestXLOutputCap(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	x := *h.XL
	x.MaxOutput = 100
	if _, err := x.List(context.Background()); err == nil || !strings.Contains(err.Error(), "exceeds 100 bytes") {
		t.Fatalf("List with a 100-byte cap: %v", err)
	}
	if _, err := (&XL{Path: filepath.Join(h.Dir, "no-such-xl")}).List(context.Background()); err == nil {
		t.Fatal("List with a missing xl binary succeeded")
	}
}

// A host without room for the domain: ErrNoMemory from create and restore.
func TestXLFakeNoMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newFakeHost(t)
	h.XL.Env = append(h.XL.Env, "FAKEXL_TOTAL_MEMORY=1600") // 64 MiB beside dom0's 1536
	if err := h.XL.Create(ctx, writeCfg(t, h.Dir, "a", 48)); err != nil {
		t.Fatal(err)
	}
	if err := h.XL.Create(ctx, writeCfg(t, h.Dir, "b", 48)); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("create beyond free memory: %v, want ErrNoMemory", err)
	}
	img := filepath.Join(h.Dir, "a.img")
	if err := h.XL.Save(ctx, "a", img, SaveOptions{Mode: SaveKeepRunning}); err != nil {
		t.Fatal(err)
	}
	if err := h.XL.Restore(ctx, img, RestoreOptions{ConfigPath: writeCfg(t, h.Dir, "b", 48)}); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("restore beyond free memory: %v, want ErrNoMemory", err)
	}
}
