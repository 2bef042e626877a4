package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/supervisor"
)

// scenario is one fresh cluster measured with one sim restore cost.
type scenario struct {
	name    string
	cost    time.Duration
	shape   shape
	fail    int // hosts that fail at once
	singles int // single-VM failures, one after the other
}

// result is what one scenario measured.
type result struct {
	setup, checkpoint time.Duration

	burstVMs        int
	decideBurst     time.Duration   // first node.failed -> last first-vm.restarting
	decidePerVM     []time.Duration // its host's node.failed -> its first vm.restarting
	recoverBurst    time.Duration   // first node.failed -> last vm.restarted
	burstRetries    int             // vm.restarting with attempt > 1
	burstFailures   int             // vm.restart_failed
	runningAfter    int             // unpaused domains on live hosts after the burst
	vmsAfter        int             // distinct VMs on live hosts
	duplicates      int             // VMs with more than one copy
	singleDecide    []time.Duration // vm.failed -> first vm.restarting
	singleRecover   []time.Duration // vm.failed -> vm.restarted
	singleSkipped   int
	unrecoverable   int
	singleFirstFail string
	failureErrors   []string // distinct vm.restart_failed errors of the burst
	spurious        int      // vm.failed while checkpointing, nothing having died
	stateBytes      int      // the supervisor's persisted state after the burst
	timeline        []string // the burst's events, from the first node.failed
}

// run builds the cluster, checkpoints the VMs that will fail, fails sc.fail
// hosts at once, then runs the single-VM failures.
func (sc scenario) run(ctx context.Context, dir string, logf func(string, ...any)) (res result, err error) {
	start := time.Now()
	rec := newRecorder()
	c, err := newCluster(ctx, dir, sc.shape, sc.cost, benchLog)
	if err != nil {
		return res, err
	}
	defer c.close()
	tctx, stopTail := context.WithCancel(ctx)
	tailDone := make(chan error, 1)
	go func() { tailDone <- rec.follow(tctx, c.bus, start) }()
	defer func() { stopTail(); <-tailDone }()

	// The victims: sc.fail hosts spread over the cluster.
	var victims []*simHost
	burst := map[string]bool{}
	for k := 0; k < sc.fail; k++ {
		h := c.hosts[k*len(c.hosts)/sc.fail]
		victims = append(victims, h)
		doms, err := h.sim.List(ctx)
		if err != nil {
			return res, err
		}
		for _, d := range doms {
			burst[d.Name] = true
		}
	}
	res.burstVMs = len(burst)
	res.setup = time.Since(start)
	logf("  cluster up in %s (%d hosts x %d VMs of %d MiB, supervisor leading soon)", res.setup.Round(time.Millisecond), sc.shape.hosts, sc.shape.vmsPerHost, sc.shape.vmMiB)

	// A restore needs a committed checkpoint: take one of every VM that
	// will fail (each VM is its own group). The first requests also wait
	// for the leader and for the core to see the VMs running (beats).
	t := time.Now()
	names := sortedKeys(burst)
	if err := forEach(ctx, len(names), 8, func(ctx context.Context, k int) error {
		return checkpoint(ctx, c.bus, names[k])
	}); err != nil {
		return res, err
	}
	res.checkpoint = time.Since(t)
	_, _, res.spurious = rec.span(events.TypeVMFailed, t)
	logf("  %d checkpoints committed in %s", len(names), res.checkpoint.Round(time.Millisecond))
	// The core learns of each commit from the event stream; give its
	// durable consumer time to apply them (it is not observable from here).
	if err := sleep(ctx, 2*time.Second); err != nil {
		return res, err
	}

	// The burst: the hosts lose power, then node.failed for each, as the
	// detector would publish it.
	for _, h := range victims {
		if err := c.crash(ctx, h); err != nil {
			return res, err
		}
	}
	failedAt := map[string]time.Time{}
	t0 := time.Now()
	for _, h := range victims {
		now := time.Now()
		ev, err := events.New("xenft/bench/restart", now, events.NodeFailed{Host: h.name, Incarnation: h.incarnation, Phi: 99,
			LastBeat: now.UTC(), Detector: "bench", Reason: events.FailedBySilence})
		if err != nil {
			return res, err
		}
		if err := c.bus.Publish(ctx, ev); err != nil {
			return res, err
		}
		failedAt[h.name] = now
	}
	hostOf := func(vm string) string { return vm[:len("h000")] }
	err = rec.waitFor(ctx, 60*time.Second+4*sc.cost, "every VM of the failed hosts running again", func() bool {
		for vm := range burst {
			if _, ok := rec.first(events.TypeVMRestarted, vm, t0); !ok {
				if _, bad := rec.first(events.TypeVMUnrecoverable, vm, t0); bad {
					return true
				}
				return false
			}
		}
		return true
	})
	if err != nil {
		return res, fmt.Errorf("%w (events since the failure: %s)", err, rec.summary(t0))
	}
	for vm := range burst {
		if _, bad := rec.first(events.TypeVMUnrecoverable, vm, t0); bad {
			res.unrecoverable++
			continue
		}
		rs, ok := rec.first(events.TypeVMRestarting, vm, t0)
		if !ok {
			return res, fmt.Errorf("vm %s rolled back without vm.restarting", vm)
		}
		rb, _ := rec.first(events.TypeVMRestarted, vm, t0)
		res.decidePerVM = append(res.decidePerVM, rs.at.Sub(failedAt[hostOf(vm)]))
		res.decideBurst = max(res.decideBurst, rs.at.Sub(t0))
		res.recoverBurst = max(res.recoverBurst, rb.at.Sub(t0))
	}
	for _, typ := range []events.Type{events.TypeNodeFailed, events.TypeNodeFenced, events.TypeVMRestarting, events.TypeVMRestarted} {
		f, l, n := rec.span(typ, t0)
		res.timeline = append(res.timeline, fmt.Sprintf("%-18s x%-4d first %8.1f ms, last %8.1f ms", typ[len("xenft."):], n, ms(f), ms(l)))
	}
	res.burstRetries = countIf(rec, events.TypeVMRestarting, burst, t0, func(r record) bool { return r.attempt > 1 })
	res.burstFailures = rec.count(events.TypeVMRestartFailed, burst, t0)
	res.failureErrors = rec.errors(burst, t0, 3)
	if res.unrecoverable > 0 {
		return res, fmt.Errorf("%d VMs of the failed hosts reported vm.unrecoverable", res.unrecoverable)
	}
	copies, running, err := c.census(ctx)
	if err != nil {
		return res, err
	}
	res.runningAfter, res.vmsAfter = running, len(copies)
	// The supervisor persists its state per entry (supervisor/persist.go):
	// the total size of the entries says how big the state is, not what a
	// write costs (only changed entries are written).
	if kv, err := c.bus.KV(ctx, c.bus.Names().State()); err == nil {
		if st, err := supervisor.LoadState(ctx, kv); err == nil && st != nil {
			b, _ := json.Marshal(st)
			res.stateBytes = len(b)
		}
	}
	for _, n := range copies {
		if n > 1 {
			res.duplicates++
		}
	}

	// Single-VM failures, one at a time, each on a healthy host: the VM's
	// domain dies and vm.failed is published (with the restarter watcher's
	// own deterministic id, so the watcher's report of the same death is
	// the same event). The VMs used are the burst's, now running elsewhere
	// with their committed checkpoint.
	for k := 0; k < sc.singles && ctx.Err() == nil; k++ {
		vm := names[k%len(names)]
		d, r, err := singleFailure(ctx, c, rec, vm, 30*time.Second+4*sc.cost)
		if err != nil {
			res.singleSkipped++
			if res.singleFirstFail == "" {
				res.singleFirstFail = err.Error()
			}
			continue
		}
		res.singleDecide = append(res.singleDecide, d)
		res.singleRecover = append(res.singleRecover, r)
	}
	return res, nil
}

// singleFailure kills vm's domain where it runs now and waits until it runs
// again.
func singleFailure(ctx context.Context, c *cluster, rec *recorder, vm string, timeout time.Duration) (decide, recover time.Duration, err error) {
	h, domID, err := locate(ctx, c, vm)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := h.sim.Destroy(ctx, vm); err != nil {
		return 0, 0, err
	}
	ev, err := events.New("xenft/bench/restart", time.Now(), events.VMFailed{VM: vm, Host: h.name, Reason: "bench: domain destroyed"})
	if err != nil {
		return 0, 0, err
	}
	if err := c.bus.Publish(ctx, ev.WithID(restarter.FailureID(h.name, h.incarnation, vm, domID))); err != nil {
		return 0, 0, err
	}
	var failed, restarting, back record
	err = rec.waitFor(ctx, timeout, "vm "+vm+" running again", func() bool {
		var ok bool
		if failed, ok = rec.first(events.TypeVMFailed, vm, start); !ok {
			return false
		}
		if restarting, ok = rec.first(events.TypeVMRestarting, vm, start); !ok {
			return false
		}
		back, ok = rec.first(events.TypeVMRestarted, vm, start)
		return ok
	})
	if err != nil {
		return 0, 0, err
	}
	return restarting.at.Sub(failed.at), back.at.Sub(failed.at), nil
}

// locate finds the live host running vm and its domain id.
func locate(ctx context.Context, c *cluster, vm string) (*simHost, int, error) {
	for _, h := range c.hosts {
		if h.down {
			continue
		}
		doms, err := h.sim.List(ctx)
		if err != nil {
			return nil, 0, err
		}
		for _, d := range doms {
			if d.Name == vm {
				return h, d.ID, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("vm %s runs on no live host", vm)
}

// checkpoint asks the supervisor for a committed checkpoint of group,
// retrying while it is not leading yet or does not see every member running.
func checkpoint(ctx context.Context, bus *events.Bus, group string) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := supervisor.RequestCheckpoint(ctx, bus, group, true, 60*time.Second)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("checkpoint of %s: %w", group, err)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func countIf(r *recorder, typ events.Type, ids map[string]bool, since time.Time, f func(record) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.seen {
		if rec.typ == typ && ids[rec.id] && !rec.at.Before(since) && f(rec) {
			n++
		}
	}
	return n
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
