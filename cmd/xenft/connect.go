package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/xenft/xenft/events"
)

// resources is what a long-running role does about the stream and buckets
// once connected: create them (ensure: supervisors) or wait for them and
// the buckets it uses (every other role, whose credential may not create
// them; await).
type resources func(ctx context.Context, b *events.Bus) error

func ensure(ctx context.Context, b *events.Bus) error { return b.EnsureResources(ctx) }

func await(buckets ...string) resources {
	return func(ctx context.Context, b *events.Bus) error { return b.AwaitResources(ctx, buckets...) }
}

// connectWithRetry connects a long-running role to the bus and prepares the
// stream and buckets with res, retrying with backoff until ctx ends: a
// daemon started before its NATS servers, or before the supervisor or
// server that creates the stream, waits for them instead of failing. A
// refusal of the server's permissions is not retried: the configuration
// must change.
func connectWithRetry(ctx context.Context, cfg events.BusConfig, name string, a *app, res resources, opts ...events.ConnectOption) (*events.Bus, error) {
	cfg.ClientName = name
	var bus *events.Bus
	last := ""
	op := func() error {
		b, err := events.Connect(cfg, a.log, opts...)
		if err == nil && res != nil {
			if err = res(ctx, b); err != nil {
				b.Close()
			}
		}
		if errors.Is(err, events.ErrPermissionDenied) {
			return backoff.Permanent(err)
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
