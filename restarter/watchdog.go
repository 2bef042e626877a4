package restarter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// The hardware watchdog (fence.watchdog), the rule this file implements:
//
//  1. Run opens the device before anything else (the device's timer starts
//     at open) and fails if it cannot: a host configured for a watchdog does
//     not run its agent without one.
//  2. Every fence.watchdog_interval the agent writes one byte ('.') to it —
//     a pet — if, and only if, it may keep guest domains running: its lease
//     is fresh (the newest acknowledged renewal was sent less than
//     fence.self_timeout ago), or it self-fenced and the newest sweep listed
//     the host and found no guest left to act on (destroy: none but
//     Domain-0 and fence.spare; pause: none alive and unpaused). When it
//     can neither renew nor confirm the fence (xl destroy failing or
//     hanging, xl list failing) it stops petting, and the device resets the
//     host one device timeout after the last pet. A dead process (SIGKILL,
//     OOM, a panic) or a wedged one pets nothing either: the kernel keeps
//     the timer running when the device is closed without the magic
//     character.
//  3. A clean stop (Run's context ends) writes the magic close character
//     'V' and closes the device, which disarms it (Linux watchdog API,
//     unless the driver was loaded with nowayout): stopping the agent on
//     purpose does not reset the host — and leaves its guests running with
//     no fence at all. If at that moment the agent may not keep its guests
//     running (rule 2 fails) it closes without 'V': the reset it had
//     already chosen still comes.
//
// A pet is the last thing the agent did under rule 2, so the host is reset
// at the latest one device timeout after: the agent's death, or its last
// renewal + fence.self_timeout when the fence cannot complete.
// docs/fencing.md compares that with the supervisor's deadline.

// Pet and magic close bytes (Documentation/watchdog/watchdog-api.rst: any
// write pets; a 'V' among the bytes written before close disarms).
const (
	petByte   = '.'
	magicByte = 'V'
)

// watchdog is the open device and its pet interval.
type watchdog struct {
	f        *os.File
	path     string
	interval time.Duration
	timeout  time.Duration // the device's, 0 when it cannot be read
}

// openWatchdog opens the configured device and settles the pet interval.
// It never creates the path: a typo must fail, not pet a regular file.
func (r *Restarter) openWatchdog() (*watchdog, error) {
	f := r.cfg.Fence
	dev, err := os.OpenFile(f.Watchdog, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("fence.watchdog: open %s: %w", f.Watchdog, err)
	}
	w := &watchdog{f: dev, path: f.Watchdog, interval: f.WatchdogInterval}
	timeout, terr := deviceTimeout(dev)
	if terr == nil {
		w.timeout = timeout
	}
	switch {
	case w.interval == 0 && terr != nil:
		err = fmt.Errorf("fence.watchdog_interval: required, the timeout of %s cannot be read: %w", f.Watchdog, terr)
	case w.interval == 0 && timeout < 2*time.Second:
		err = fmt.Errorf("fence.watchdog_interval: required, the timeout of %s is %s, too short to derive an interval from", f.Watchdog, timeout)
	case w.interval == 0:
		w.interval = timeout / 4
	case terr == nil && w.interval > timeout/2:
		err = fmt.Errorf("fence.watchdog_interval: %s is more than half the timeout of %s (%s): a healthy host would be reset", w.interval, f.Watchdog, timeout)
	}
	if err != nil {
		// Opening armed the device; disarm it, since the agent will
		// not run.
		w.disarm()
		return nil, err
	}
	kv := []any{"device", w.path, "interval", w.interval}
	if w.timeout > 0 {
		kv = append(kv, "device_timeout", w.timeout)
	}
	if st, serr := dev.Stat(); serr == nil && st.Mode()&fs.ModeCharDevice == 0 {
		r.log.Warn("the watchdog is not a character device: pets reset nothing", "device", w.path, "mode", st.Mode().String())
	}
	r.log.Info("watchdog armed: this host is reset if the agent dies or can neither renew its lease nor complete its self-fence", kv...)
	return w, nil
}

func (w *watchdog) pet() error {
	_, err := w.f.Write([]byte{petByte})
	return err
}

// disarm writes the magic close character and closes the device.
func (w *watchdog) disarm() error {
	_, err := w.f.Write([]byte{magicByte})
	return errors.Join(err, w.f.Close())
}

// mayRun is rule 2: the agent may keep guest domains running.
func (r *Restarter) mayRun() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Unarmed (no renewal acknowledged yet), the agent keeps its guests
	// and the supervisor does not count on their end (fence.go, rule 0).
	return !r.fence.everRenewed || r.clock.Since(r.fence.lastOK) < r.cfg.Fence.SelfTimeout || (r.fence.fenced && r.fence.emptied)
}

// watchdogLoop pets w while the agent may keep its guests running, until ctx
// ends; then it disarms w if the agent still may (rule 3), else closes it
// armed. Run cancels ctx only after the fence loop ended, so that a
// self-fence carried past the stop is judged on its outcome.
func (r *Restarter) watchdogLoop(ctx context.Context, w *watchdog) {
	t := r.clock.NewTicker(w.interval)
	defer t.Stop()
	petting, failing := true, 0
	for {
		ok := r.mayRun()
		switch {
		case ok:
			if err := w.pet(); err != nil {
				if failing++; failing == 1 || failing%10 == 0 {
					r.log.Error("cannot pet the watchdog: the host will be reset", "device", w.path, "failed_pets", failing, "error", err)
				}
			} else {
				failing = 0
			}
			if !petting {
				r.log.Warn("watchdog pets resumed", "device", w.path)
			}
		case petting:
			r.log.Error("WATCHDOG: the lease is not renewed and the self-fence is not complete: pets stop, the device resets this host", "device", w.path, "device_timeout", w.timeout)
		}
		petting = ok
		r.watchdogRounds.Add(1)
		select {
		case <-ctx.Done():
			r.closeWatchdog(w)
			return
		case <-t.Chan():
		}
	}
}

func (r *Restarter) closeWatchdog(w *watchdog) {
	if !r.mayRun() {
		r.log.Error("WATCHDOG: stopped while the host may not keep its guests running: closed armed, the device resets this host", "device", w.path)
		if err := w.f.Close(); err != nil {
			r.log.Error("close the watchdog", "device", w.path, "error", err)
		}
		return
	}
	if err := w.disarm(); err != nil {
		r.log.Error("cannot disarm the watchdog: the device may reset this host", "device", w.path, "error", err)
		return
	}
	r.log.Warn("watchdog disarmed (agent stopped): this host's guests now run without any fence", "device", w.path)
}
