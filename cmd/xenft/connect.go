package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/xenft/xenft/events"
)

// connectWithRetry connects a long-running role to the bus and creates the
// stream and buckets, retrying with backoff until ctx ends: a daemon started
// before its NATS servers waits for them instead of failing.
func connectWithRetry(ctx context.Context, cfg events.BusConfig, name string, a *app, opts ...events.ConnectOption) (*events.Bus, error) {
	return connectRetrying(ctx, cfg, name, a, true, opts...)
}

// connectRetrying is connectWithRetry; ensure says whether to create the
// stream and buckets (a role's second connection does not: its first did,
// and each EnsureResources is a round of stream updates a cluster that is
// still forming must agree on).
func connectRetrying(ctx context.Context, cfg events.BusConfig, name string, a *app, ensure bool, opts ...events.ConnectOption) (*events.Bus, error) {
	cfg.ClientName = name
	var bus *events.Bus
	last := ""
	op := func() error {
		b, err := events.Connect(cfg, a.log, opts...)
		if err == nil && ensure {
			if err = b.EnsureResources(ctx); err != nil {
				b.Close()
			}
		}
		if err != nil {
			if err.Error() != last {
				a.log.Warn("bus not reachable yet, retrying", "error", err)
				last = err.Error()
			}
			return err
		}
		bus = b
		return nil
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 250*time.Millisecond, 5*time.Second, 0
	if err := backoff.Retry(op, backoff.WithContext(bo, ctx)); err != nil {
		return nil, fmt.Errorf("connect to the bus: %w", err)
	}
	return bus, nil
}
