package supervisor_test

import (
	"context"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
)

// runSupervisor starts supervisor s1 (no checkpoint schedule) on bus,
// running until ctx ends; wg counts it.
func runSupervisor(t *testing.T, ctx context.Context, wg *sync.WaitGroup, bus *events.Bus, st store.ImageStore) *supervisor.Supervisor {
	t.Helper()
	cfg := supervisor.DefaultConfig()
	cfg.ID = "s1"
	cfg.CheckpointInterval = 0
	sup, err := supervisor.New(ctx, bus, st, cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = sup.Run(ctx) }()
	return sup
}
