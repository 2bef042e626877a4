package restarter_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/xen"
)

// The tests stand a regular file or a FIFO in for /dev/watchdog and read
// what the agent wrote: '.' is a pet, 'V' the magic close.

const wdInterval = 50 * time.Millisecond

// watchdogFence is fastFence with a watchdog at path.
func watchdogFence(path string) restarter.FenceConfig {
	f := fastFence
	f.Watchdog, f.WatchdogInterval = path, wdInterval
	return f
}

// fileWatchdog is a regular file standing in for the device.
func fileWatchdog(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func written(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkDisarmed: pets, then one 'V' at the very end.
func checkDisarmed(t *testing.T, w string) {
	t.Helper()
	if !strings.HasSuffix(w, "V") || strings.Count(w, "V") != 1 || strings.Trim(w[:len(w)-1], ".") != "" {
		t.Fatalf("watchdog got %q, want pets then one 'V' (magic close) at the end", w)
	}
}

// expectNoPets: the watchdog loop goes round, and pets nothing. A round
// begun before the caller's condition held may still pet; rounds begun
// after it must not.
func (a *agent) expectNoPets(read func() string) {
	a.t.Helper()
	t := a.t
	r0 := a.r.WatchdogRounds()
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.WatchdogRounds() >= r0+2 }, "watchdog loop stalled")
	before := read()
	r1 := a.r.WatchdogRounds()
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.WatchdogRounds() >= r1+10 }, "watchdog loop stalled")
	if after := read(); after != before {
		t.Fatalf("pets went on while the agent may not keep its guests running: %q then %q", before, after)
	}
}

// fifoWatchdog is a FIFO standing in for the device, with a reader that
// stamps every byte as it arrives. Start it before the agent: the agent's
// open waits for the reader.
type fifoWatchdog struct {
	path  string
	mu    sync.Mutex
	bytes []byte
	at    []time.Time
	done  chan struct{} // closed when the agent closed its end
}

func newFIFOWatchdog(t *testing.T) *fifoWatchdog {
	t.Helper()
	w := &fifoWatchdog{path: filepath.Join(t.TempDir(), "watchdog"), done: make(chan struct{})}
	if err := syscall.Mkfifo(w.path, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *os.File, 1)
	go func() {
		defer close(w.done)
		f, err := os.Open(w.path) // until the agent opens its end
		if err != nil {
			opened <- nil
			return
		}
		opened <- f
		defer f.Close()
		buf := make([]byte, 64)
		for {
			n, err := f.Read(buf)
			now := time.Now()
			w.mu.Lock()
			for _, b := range buf[:n] {
				w.bytes = append(w.bytes, b)
				w.at = append(w.at, now)
			}
			w.mu.Unlock()
			if err != nil {
				return // io.EOF: the agent closed the device
			}
		}
	}()
	t.Cleanup(func() {
		// If the agent never opened its end, open one so the reader
		// returns; if it did, this is a no-op writer.
		select {
		case <-opened:
		default:
			if f, err := os.OpenFile(w.path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				_ = f.Close()
			}
		}
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
			t.Error("the watchdog FIFO was never closed")
		}
	})
	return w
}

func (w *fifoWatchdog) snapshot() (string, []time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.bytes), append([]time.Time(nil), w.at...)
}

// The watchdog rule, first half: an agent whose lease is fresh pets the
// device, and a clean stop writes the magic close 'V' so that stopping the
// agent on purpose does not reset the host.
func TestWatchdogIsPettedWhileTheLeaseIsFreshAndDisarmedOnCleanStop(t *testing.T) {
	e := newEnv(t)
	dev := fileWatchdog(t)
	a := e.agent("n1", agentOptions{fence: watchdogFence(dev)})
	a.waitRenewed()
	eventstest.Eventually(t, 5*time.Second, func() bool { return strings.Count(written(t, dev), ".") >= 5 }, "watchdog not petted: %q", written(t, dev))
	if w := written(t, dev); strings.Trim(w, ".") != "" {
		t.Fatalf("a running agent wrote %q, want pets only", w)
	}
	a.stop()
	checkDisarmed(t, written(t, dev))
}

// The watchdog rule, second half: an agent that can neither renew its
// lease nor complete its self-fence (xl destroy hangs or fails) stops
// petting once its last renewal is self_timeout old, so that the device
// resets the host; its guests are still running, and a stop then does not
// disarm the device.
func TestWatchdogPetsStopWhenTheLeaseIsStaleAndTheFenceCannotComplete(t *testing.T) {
	for _, broken := range []string{"hang", "fail"} {
		t.Run("destroy "+broken, func(t *testing.T) {
			e := newEnv(t)
			dev := newFIFOWatchdog(t)
			f := watchdogFence(dev.path)
			a := e.agent("n1", agentOptions{fence: f})
			if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
				t.Fatal(err)
			}
			a.hv.mu.Lock()
			a.hv.breakDestroy = broken
			a.hv.mu.Unlock()
			a.waitRenewed()

			e.srv.Stop() // the host loses the bus
			eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.FenceStatus().Fenced }, "no self-fence")
			last := a.r.LastRenewal()
			eventstest.Eventually(t, 5*time.Second, func() bool { return time.Since(last) > f.SelfTimeout }, "clock stuck")
			a.expectNoPets(func() string { w, _ := dev.snapshot(); return w })
			_, at := dev.snapshot()
			if _, ok := a.domains()["vm1"]; !ok {
				t.Fatal("vm1 is gone: the broken destroy is not broken")
			}
			// Pets went on while the fence could still complete: the
			// agent does not give up before self_timeout.
			fenceBegins := last.Add(f.SelfTimeout - f.ActionTimeout)
			if len(at) == 0 || !at[len(at)-1].After(fenceBegins) {
				t.Fatalf("no pet after the self-fence began (%d pets)", len(at))
			}
			if late := at[len(at)-1].Sub(last); late > f.SelfTimeout+250*time.Millisecond {
				t.Fatalf("last pet %s after the last renewal, want by self_timeout %s", late, f.SelfTimeout)
			}

			a.stop()
			<-dev.done
			if w, _ := dev.snapshot(); strings.Contains(w, "V") {
				t.Fatalf("a stop with the fence incomplete disarmed the watchdog: %q", w)
			}
		})
	}
}

// A completed self-fence (the host holds no guest) keeps the watchdog
// petted: the host is safe, and a reset would only stop Domain-0's
// services. A stop then disarms it.
func TestWatchdogPetsContinueAfterACompletedSelfFence(t *testing.T) {
	e := newEnv(t)
	dev := fileWatchdog(t)
	f := watchdogFence(dev)
	a := e.agent("n1", agentOptions{fence: f})
	for _, vm := range []string{"vm1", "vm2"} {
		if err := a.hv.Create(context.Background(), e.writeCfg(vm, 64)); err != nil {
			t.Fatal(err)
		}
	}
	a.waitRenewed()

	e.srv.Stop()
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.FenceStatus().Fenced && len(a.domains()) == 0 }, "no self-fence")
	last := a.r.LastRenewal()
	eventstest.Eventually(t, 5*time.Second, func() bool { return time.Since(last) > f.SelfTimeout }, "clock stuck")
	n := strings.Count(written(t, dev), ".")
	eventstest.Eventually(t, 5*time.Second, func() bool { return strings.Count(written(t, dev), ".") >= n+5 },
		"pets stopped after a completed self-fence: %q", written(t, dev))

	a.stop()
	checkDisarmed(t, written(t, dev))
}

// A domain that appears on a fenced host and cannot be destroyed makes the
// fence incomplete again: pets stop.
func TestWatchdogPetsStopWhenAStrayDomainSurvivesTheFence(t *testing.T) {
	e := newEnv(t)
	dev := fileWatchdog(t)
	f := watchdogFence(dev)
	a := e.agent("n1", agentOptions{fence: f})
	a.waitRenewed()
	e.srv.Stop()
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.FenceStatus().Fenced }, "no self-fence")
	last := a.r.LastRenewal()
	eventstest.Eventually(t, 5*time.Second, func() bool { return time.Since(last) > f.SelfTimeout }, "clock stuck")
	n := strings.Count(written(t, dev), ".")
	eventstest.Eventually(t, 5*time.Second, func() bool { return strings.Count(written(t, dev), ".") >= n+2 }, "no pets after a completed fence")

	a.hv.mu.Lock()
	a.hv.breakDestroy = "fail"
	a.hv.mu.Unlock()
	if err := a.hv.Create(context.Background(), e.writeCfg("stray", 64)); err != nil {
		t.Fatal(err)
	}
	// Once a second sweep tried to destroy it, the first has marked the
	// fence incomplete.
	eventstest.Eventually(t, 5*time.Second, func() bool {
		a.hv.mu.Lock()
		defer a.hv.mu.Unlock()
		return a.hv.brokenCalls >= 2
	}, "the fence never tried to destroy the stray domain")
	a.expectNoPets(func() string { return written(t, dev) })
	a.stop()
	if w := written(t, dev); strings.Contains(w, "V") {
		t.Fatalf("a stop with a domain surviving the fence disarmed the watchdog: %q", w)
	}
}

// fence.watchdog "" (the default): nothing is opened, nothing petted, even
// through a self-fence and a stop.
func TestNoWatchdogNoPets(t *testing.T) {
	e := newEnv(t)
	dev := fileWatchdog(t)
	f := fastFence
	f.WatchdogInterval = wdInterval // an interval alone does not enable it
	a := e.agent("n1", agentOptions{fence: f})
	if err := a.hv.Create(context.Background(), e.writeCfg("vm1", 64)); err != nil {
		t.Fatal(err)
	}
	a.waitRenewed()
	e.srv.Stop()
	eventstest.Eventually(t, 5*time.Second, func() bool { return a.r.FenceStatus().Fenced && len(a.domains()) == 0 }, "no self-fence")
	last := a.r.LastRenewal()
	eventstest.Eventually(t, 5*time.Second, func() bool { return time.Since(last) > f.SelfTimeout }, "clock stuck")
	a.stop()
	if w := written(t, dev); w != "" {
		t.Fatalf("watchdog off, yet %q was written", w)
	}
	if n := a.r.WatchdogRounds(); n != 0 {
		t.Fatalf("watchdog off, yet its loop ran %d rounds", n)
	}
}

// A configured watchdog that cannot be used stops the agent at once, with
// an error naming the key; a device it opened is disarmed first.
func TestRunRefusesAWatchdogItCannotUse(t *testing.T) {
	regular := fileWatchdog(t)
	for _, tc := range []struct {
		name     string
		path     string
		interval time.Duration
		want     string
		disarmed bool
	}{
		{"missing device", filepath.Join(t.TempDir(), "no-watchdog"), wdInterval, "fence.watchdog: open", false},
		{"unknown timeout, no interval", regular, 0, "fence.watchdog_interval: required", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t, agentOptions{})
			cfg.Fence.Watchdog, cfg.Fence.WatchdogInterval = tc.path, tc.interval
			r, err := restarter.New(restarter.Identity{Host: "n1", Incarnation: "i"}, &xen.Sim{Host: "n1"}, st, cfg,
				&events.EpochGuard{}, eventstest.Logger(t, hclog.Error))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = r.Run(ctx, nil)
			if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error naming %q", err, tc.want)
			}
			if tc.disarmed {
				checkDisarmed(t, written(t, tc.path))
			}
			if _, err := os.Stat(tc.path); tc.name == "missing device" && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Run created the missing device: %v", err)
			}
		})
	}
}
