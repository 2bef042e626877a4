package supervisor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/xenft/xenft/checkpointer"
)

// scheduler runs each group's checkpoints on its interval and on demand,
// never two of one group at once. Its state is owned by mu; run's loop and
// on-demand requests both go through start.
type scheduler struct {
	s *Supervisor

	mu      sync.Mutex
	last    map[string]time.Time // when the group's last checkpoint began
	running map[string]bool
	waiters map[string][]chan result
	wg      *sync.WaitGroup
	ctx     context.Context
}

type result struct {
	rec checkpointer.Record
	err error
}

// newScheduler's checkpoints run under ctx, each counted in wg.
func newScheduler(ctx context.Context, wg *sync.WaitGroup, s *Supervisor) *scheduler {
	return &scheduler{s: s, ctx: ctx, wg: wg, last: map[string]time.Time{}, running: map[string]bool{}, waiters: map[string][]chan result{}}
}

// pollInterval is how often the schedule and inventory are looked at.
const pollInterval = time.Second

// run checks every pollInterval which groups are due, until ctx ends. A
// group's first checkpoint under a new leader is due one interval after its
// latest committed one, so a leader change does not checkpoint everything at
// once.
func (sc *scheduler) run(ctx context.Context) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		specs, settings, err := sc.s.inventory.CheckpointSpecs(ctx)
		if err != nil && ctx.Err() == nil {
			sc.s.log.Warn("inventory incomplete", "error", err)
		}
		now := time.Now()
		for _, g := range specs {
			interval := sc.s.cfg.CheckpointInterval
			if st, ok := settings[g.Name]; ok {
				interval = time.Duration(st.CheckpointInterval)
			}
			if interval <= 0 {
				continue
			}
			sc.mu.Lock()
			last, known := sc.last[g.Name]
			sc.mu.Unlock()
			if !known {
				last = now.Add(-interval) // due now unless the catalog says otherwise
				if rec, err := sc.s.catalog.Latest(ctx, g.Name); err == nil {
					last = rec.Created
				}
				sc.mu.Lock()
				sc.last[g.Name] = last
				sc.mu.Unlock()
			}
			if now.Sub(last) >= interval {
				sc.start(g)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// now starts a checkpoint of group at once (or joins the one running) and
// returns a channel that receives its result.
func (sc *scheduler) now(ctx context.Context, group string) (<-chan result, error) {
	specs, _, err := sc.s.inventory.CheckpointSpecs(ctx)
	if err != nil && len(specs) == 0 {
		return nil, err
	}
	for _, g := range specs {
		if g.Name == group {
			ch := make(chan result, 1)
			sc.mu.Lock()
			sc.waiters[group] = append(sc.waiters[group], ch)
			sc.mu.Unlock()
			sc.start(g)
			return ch, nil
		}
	}
	return nil, fmt.Errorf("group %q has no running VM with a restart policy", group)
}

// start runs a checkpoint of g in the background unless one is running.
func (sc *scheduler) start(g checkpointer.GroupSpec) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.running[g.Name] || sc.ctx.Err() != nil {
		return
	}
	sc.running[g.Name] = true
	sc.last[g.Name] = time.Now()
	ctx := sc.ctx
	sc.wg.Add(1)
	go func() {
		defer sc.wg.Done()
		rec, err := sc.s.coord.Checkpoint(ctx, g, sc.s.epoch())
		if err != nil && ctx.Err() == nil {
			sc.s.log.Warn("checkpoint failed", "group", g.Name, "error", err)
		}
		sc.mu.Lock()
		sc.running[g.Name] = false
		ws := sc.waiters[g.Name]
		delete(sc.waiters, g.Name)
		sc.mu.Unlock()
		for _, w := range ws {
			w <- result{rec, err}
		}
	}()
}
