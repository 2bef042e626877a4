package supervisor

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/supervisor/core"
)

// scheduler runs each group's checkpoints on its interval and on demand,
// never two of one group at once. Its state is owned by mu; run's loop and
// on-demand requests both go through start.
type scheduler struct {
	s  *Supervisor
	sh *shell

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
func newScheduler(ctx context.Context, wg *sync.WaitGroup, s *Supervisor, sh *shell) *scheduler {
	return &scheduler{s: s, sh: sh, ctx: ctx, wg: wg, last: map[string]time.Time{}, running: map[string]bool{}, waiters: map[string][]chan result{}}
}

// pollInterval is how often the schedule and inventory are looked at.
const pollInterval = time.Second

// run checks every pollInterval which groups are due, until ctx ends. A
// group's first checkpoint under a new leader is due one interval after its
// latest committed one, so a leader change does not checkpoint everything at
// once.
func (sc *scheduler) run(ctx context.Context) {
	t := sc.s.clock.NewTicker(pollInterval)
	defer t.Stop()
	for {
		specs := sc.specs()
		settings, err := sc.s.inventory.Groups(ctx)
		if err != nil && ctx.Err() == nil {
			sc.s.log.Warn("group settings incomplete", "error", err)
		}
		now := sc.s.clock.Now()
		for _, g := range specs {
			interval := sc.s.cfg.CheckpointInterval
			if st, ok := settings[g.Name]; ok {
				interval = time.Duration(st.CheckpointInterval)
				g.ResumeEarly, g.Retain = st.ResumeEarly, st.Retain
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
		case <-t.Chan():
		}
	}
}

// now starts a checkpoint of group at once (or joins the one running) and
// returns a channel that receives its result.
func (sc *scheduler) now(ctx context.Context, group string) (<-chan result, error) {
	g, ok := sc.sh.groupSpec(group)
	if !ok {
		return nil, fmt.Errorf("group %q is unknown, or not every member is running (a recovery may be in progress)", group)
	}
	ch := make(chan result, 1)
	sc.mu.Lock()
	sc.waiters[group] = append(sc.waiters[group], ch)
	sc.mu.Unlock()
	sc.start(g)
	return ch, nil
}

// specs are the groups whose members all run, as the decision core sees
// them (it moves VMs; the inventory only says where they were registered).
// VMs with policy none are not checkpointed.
func (sc *scheduler) specs() []checkpointer.GroupSpec {
	v := sc.sh.view.Load()
	if v == nil {
		return nil
	}
	names := map[string]bool{}
	for _, vm := range v.vms {
		if vm.Policy != core.PolicyNone {
			names[vm.Group] = true
		}
	}
	var out []checkpointer.GroupSpec
	for name := range names {
		if g, ok := sc.sh.groupSpec(name); ok {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// start runs a checkpoint of g in the background unless one is running.
func (sc *scheduler) start(g checkpointer.GroupSpec) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.running[g.Name] || sc.ctx.Err() != nil {
		return
	}
	sc.running[g.Name] = true
	sc.last[g.Name] = sc.s.clock.Now()
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
