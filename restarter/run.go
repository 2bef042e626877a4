package restarter

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Run renews the host lease, self-fences when it cannot (fence.go), and
// watches the domains for failures (watch.go) until ctx ends; it returns
// when every goroutine it started has ended. Call it once, beside
// bus.ServeCommands(ctx, host, r.Handlers(), n). A self-fence already begun
// when ctx ends is carried to its end first.
func (r *Restarter) Run(ctx context.Context, bus Bus) error {
	if !r.ran.CompareAndSwap(false, true) {
		return errors.New("restarter: Run called twice")
	}
	// Until its first renewal the agent has not proven it reaches the
	// bus: the self-fence clock runs from now.
	r.mu.Lock()
	r.fence.lastOK = time.Now()
	r.mu.Unlock()
	renewed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); r.renewLoop(ctx, bus, renewed) }()
	go func() { defer wg.Done(); r.fenceLoop(ctx, renewed) }()
	go func() { defer wg.Done(); r.watchLoop(ctx, bus) }()
	wg.Wait()
	return ctx.Err()
}
