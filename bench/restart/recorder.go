package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xenft/xenft/events"
)

// recorder follows the event stream and keeps, per entity, when each event
// type was seen. Every time is the event's own time (all publishers are in
// this process, on one clock): node.failed and vm.failed are stamped by the
// bench when it publishes them, vm.restarting by the supervisor when it
// dispatches a restore, group.rolled_back when the group runs again.
type recorder struct {
	mu      sync.Mutex
	seen    []record
	changed chan struct{} // closed and replaced on every record
}

type record struct {
	typ     events.Type
	id      string // VM, host or group
	host    string // vm.restarted: where it runs now
	attempt int    // vm.restarting
	err     string // vm.restart_failed
	at      time.Time
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// follow tails every event from since until ctx ends.
func (r *recorder) follow(ctx context.Context, bus *events.Bus, since time.Time) error {
	err := bus.Tail(ctx, events.TailConfig{Since: since}, func(_ context.Context, ev events.Event, _ events.Meta) error {
		p, err := ev.Payload()
		if err != nil {
			return nil
		}
		rec := record{typ: ev.Type, id: ev.EntityID(), at: ev.Time}
		switch d := p.(type) {
		case *events.VMRestarting:
			rec.attempt = d.Attempt
		case *events.VMRestarted:
			rec.host = d.Host
		case *events.VMRestartFailed:
			rec.host, rec.err = d.Host, d.Error
		}
		r.mu.Lock()
		r.seen = append(r.seen, rec)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		return nil
	})
	if errors.Is(err, events.ErrStopped) || ctx.Err() != nil {
		return nil
	}
	return err
}

// first returns the first event of typ about id at or after since.
func (r *recorder) first(typ events.Type, id string, since time.Time) (record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.seen {
		if rec.typ == typ && rec.id == id && !rec.at.Before(since) {
			return rec, true
		}
	}
	return record{}, false
}

// count returns how many events of typ about any of ids came at or after since.
func (r *recorder) count(typ events.Type, ids map[string]bool, since time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.seen {
		if rec.typ == typ && ids[rec.id] && !rec.at.Before(since) {
			n++
		}
	}
	return n
}

// waitFor waits until done() holds, re-checking after every event, at most
// timeout.
func (r *recorder) waitFor(ctx context.Context, timeout time.Duration, what string, done func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if done() {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("%s: not within %s", what, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// summary counts the events of each type seen at or after since, for an
// error message.
func (r *recorder) summary(since time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[events.Type]int{}
	for _, rec := range r.seen {
		if !rec.at.Before(since) {
			n[rec.typ]++
		}
	}
	return fmt.Sprint(n)
}

// span is the first and last time of events of typ at or after since, as
// offsets from since; n is how many.
func (r *recorder) span(typ events.Type, since time.Time) (first, last time.Duration, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.seen {
		if rec.typ != typ || rec.at.Before(since) {
			continue
		}
		d := rec.at.Sub(since)
		if n == 0 || d < first {
			first = d
		}
		last = max(last, d)
		n++
	}
	return first, last, n
}

// errors returns up to n distinct errors of vm.restart_failed about ids at
// or after since, with how often each came.
func (r *recorder) errors(ids map[string]bool, since time.Time, n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	count := map[string]int{}
	var order []string
	for _, rec := range r.seen {
		if rec.typ != events.TypeVMRestartFailed || !ids[rec.id] || rec.at.Before(since) {
			continue
		}
		if count[rec.err] == 0 {
			order = append(order, rec.err)
		}
		count[rec.err]++
	}
	var out []string
	for _, e := range order[:min(n, len(order))] {
		out = append(out, fmt.Sprintf("%dx %s", count[e], e))
	}
	return out
}
