package restarter

import (
	"context"
	"errors"
	"sync"
)

// Run renews the host lease, self-fences when it cannot (fence.go), pets
// the hardware watchdog if one is configured (watchdog.go), and watches the
// domains for failures (watch.go) until ctx ends; it returns when every
// goroutine it started has ended. Call it once, beside
// bus.ServeCommands(ctx, host, r.Handlers(), n). A self-fence already begun
// when ctx ends is carried to its end first, and the watchdog is disarmed
// last, if the agent may still keep its guests running. If the configured
// watchdog cannot be opened, Run returns the error at once.
func (r *Restarter) Run(ctx context.Context, bus Bus) error {
	if !r.ran.CompareAndSwap(false, true) {
		return errors.New("restarter: Run called twice")
	}
	if w := r.cfg.Fence.Window(); w < ShortFenceWindow {
		r.log.Warn("short self-fence window: a slow bus acknowledgement may fence this healthy host",
			"window", w, "self_timeout", r.cfg.Fence.SelfTimeout, "action_timeout", r.cfg.Fence.ActionTimeout, "advised_at_least", ShortFenceWindow)
	}
	var wd *watchdog
	if r.cfg.Fence.Watchdog != "" {
		var err error
		if wd, err = r.openWatchdog(); err != nil {
			return err
		}
	}
	// The self-fence is armed by the first acknowledged renewal (fence.go,
	// rule 0): until then the lease has no clock to run out.
	// The watchdog outlives the other loops: a self-fence carried past
	// ctx is still petted for, and judged by its outcome when it stops.
	wdCtx, wdStop := context.WithCancel(context.WithoutCancel(ctx))
	wdDone := make(chan struct{})
	if wd != nil {
		go func() { defer close(wdDone); r.watchdogLoop(wdCtx, wd) }()
	} else {
		close(wdDone)
	}
	renewed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); r.renewLoop(ctx, bus, renewed) }()
	go func() { defer wg.Done(); r.grantLoop(ctx, bus, renewed) }()
	go func() { defer wg.Done(); r.fenceLoop(ctx, renewed) }()
	go func() { defer wg.Done(); r.watchLoop(ctx, bus) }()
	wg.Wait()
	wdStop()
	<-wdDone
	return ctx.Err()
}
