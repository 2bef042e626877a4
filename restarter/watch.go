package restarter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/xen"
)

// The watcher finds VMs that die on a healthy host (DESIGN.md "vm.failed"):
// every watch_interval it lists the domains and compares with the previous
// listing. A domain seen alive (running, blocked or paused) that is now
// missing, crashed, shut down, dying, or alive under another domain id (a
// guest reboot or on_crash=restart: its memory state is lost) is reported
// once as vm.failed — unless a command of ours that may remove or replace
// it (a destroy, a restore, a cold start) was in flight or ran between the
// two listings, which the gen/replaced/replacing bookkeeping of begin/end
// proves. A domain held by a capture (Hold) or being unpaused is judged
// after that ends, against the copy seen before: those leave it alive. Domain-0 is never
// reported. Nothing is detected while the host is self-fenced; what the
// fence killed is reported by the fence (fence.go, step 4).

// WatchLister is a domain listing shared with the rest of the agent
// (xen/inventory's Lister): ListSince returns the domains of a listing
// begun at or after since.
type WatchLister interface {
	ListSince(ctx context.Context, since time.Time) ([]xen.Domain, error)
}

// WatchThrough makes the watcher list through l, which the agent's beacon
// shares, instead of running its own listing: on a real dom0 every listing
// is an exec that takes the toolstack's lock. Call it before Run. Only the
// watcher uses it: a command's own checks (restore and destroy
// verification, the fence's sweeps) list through the driver, fresh.
//
// A shared listing is safe for the watcher because it asks for one begun
// after it read the command generation: a command that ended before that
// read is in the listing, exactly as with a listing of its own.
func (r *Restarter) WatchThrough(l WatchLister) { r.watchList = l }

// pendingReport is a vm.failed waiting to be published.
type pendingReport struct {
	id      string
	at      time.Time
	payload events.VMFailed
}

// watcher is the watch loop's own state (only its goroutine touches it).
type watcher struct {
	// seen are the alive domains of the previous listing, by name.
	seen map[string]xen.Domain
	// gen is the restarter's gen read before that listing.
	gen uint64
	// failing counts consecutive failed listings, to log without flooding.
	failing int
}

// watchLoop watches until ctx ends, publishing queued reports after each
// round.
func (r *Restarter) watchLoop(ctx context.Context, pub Bus) {
	t := r.clock.NewTicker(r.cfg.WatchInterval)
	defer t.Stop()
	w := &watcher{seen: map[string]xen.Domain{}}
	for {
		r.watchOnce(ctx, w)
		r.flushReports(ctx, pub)
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
	}
}

func (r *Restarter) watchOnce(ctx context.Context, w *watcher) {
	r.mu.Lock()
	fenced, gen := r.fence.fenced, r.gen
	// After gen is read: the listing must show every command that ended
	// before, or a domain such a command removed would be taken for one
	// that vanished on its own.
	since := r.clock.Now()
	r.mu.Unlock()
	if fenced {
		clear(w.seen)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, r.cfg.ToolstackTimeout)
	doms, err := r.listForWatch(lctx, since)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			if w.failing++; w.failing == 1 || w.failing%60 == 0 {
				r.log.Warn("watcher cannot list domains", "failures", w.failing, "error", err)
			}
		}
		return // keep the previous listing: a change shows on the next one
	}
	w.failing = 0
	now := guestDomains(doms)
	r.mu.Lock()
	if r.fence.fenced { // fenced during the listing
		r.mu.Unlock()
		clear(w.seen)
		return
	}
	held := r.reportDeaths(w, now)
	r.mu.Unlock()
	w.remember(now, held, gen)
	r.watchRounds.Add(1)
}

// guestDomains are the listed domains worth watching, by name. An unnamed
// domain is one xl is building (a restore, a create) or tearing down (a
// destroy): no VM's death. Watched, it would be reported as "(null)"
// vanishing the moment it got its name, which real xl showed on every
// restore.
func guestDomains(doms []xen.Domain) map[string]xen.Domain {
	now := map[string]xen.Domain{}
	for _, d := range doms {
		if !isDom0(d) && d.Name != "" {
			now[d.Name] = d
		}
	}
	return now
}

// reportDeaths compares the previous listing with now and reports every
// domain gone, replaced or no longer alive without a command of ours; it
// returns the domains held by a capture or an unpause, judged once that
// ends. r.mu is held.
func (r *Restarter) reportDeaths(w *watcher, now map[string]xen.Domain) (held map[string]xen.Domain) {
	held = map[string]xen.Domain{}
	for name, was := range w.seen {
		d, ok := now[name]
		if ok && d.ID == was.ID && d.State.Alive() {
			continue
		}
		if r.replacing[name] > 0 || r.replaced[name] > w.gen {
			continue // a destroy, restore or cold start of ours: ours, or maybe ours
		}
		if r.busy[name] > 0 {
			// Held by a capture (its save suspends the guest) or being
			// unpaused: neither removes the domain, so the copy seen
			// before is judged once that ends, not forgotten.
			held[name] = was
			continue
		}
		group := ""
		if s, ok := r.started[name]; ok && s.domID == was.ID {
			group = s.group
			delete(r.started, name)
		}
		r.queueReport(name, group, was.ID, failure(r.id.Host, was, d, ok))
	}
	return held
}

// remember makes now's live domains, and the held ones not in it, what the
// next round compares with, as of the restarter's generation gen.
func (w *watcher) remember(now, held map[string]xen.Domain, gen uint64) {
	clear(w.seen)
	for name, d := range now {
		if d.State.Alive() {
			w.seen[name] = d
		}
	}
	for name, was := range held {
		if _, ok := w.seen[name]; !ok {
			w.seen[name] = was
		}
	}
	w.gen = gen
}

// listForWatch lists the domains for one watch round, in a listing begun
// at or after since.
func (r *Restarter) listForWatch(ctx context.Context, since time.Time) ([]xen.Domain, error) {
	if r.watchList == nil {
		return r.hv.List(ctx)
	}
	return r.watchList.ListSince(ctx, since)
}

// failure says what happened to a domain that was alive.
func failure(host string, was, now xen.Domain, listed bool) string {
	switch {
	case !listed:
		return fmt.Sprintf("domain %s (domid %d) vanished from %s without a command from xenft", was.Name, was.ID, host)
	case now.ID != was.ID:
		return fmt.Sprintf("domain %s restarted outside xenft on %s: domid %d is now %d (%s); its memory state is lost", was.Name, host, was.ID, now.ID, now.State)
	}
	return fmt.Sprintf("domain %s (domid %d) is %s (flags %s) on %s without a command from xenft", was.Name, was.ID, now.State, now.Flags, host)
}

// queueReport queues a vm.failed for domain domID of vm; r.mu is held. The
// id names the fact, so a report published twice (an ack lost, a retry) is
// stored once.
func (r *Restarter) queueReport(vm, group string, domID int, reason string) {
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	r.log.Warn("vm failed", "vm", vm, "domid", domID, "reason", reason)
	r.reports = append(r.reports, pendingReport{
		id: FailureID(r.id.Host, r.id.Incarnation, vm, domID), at: r.clock.Now(),
		payload: events.VMFailed{VM: vm, Group: group, Host: r.id.Host, Reason: reason},
	})
}

// FailureID is the deterministic event id of a vm.failed:
// vm.failed/<host>/<incarnation>/<vm>/<domid>. Domain ids are unique per
// host boot, the incarnation changes with every agent start (and so with
// every boot), so the id names one death of one domain. An id longer than
// the envelope allows is hashed.
func FailureID(host, incarnation, vm string, domID int) string {
	id := "vm.failed/" + host + "/" + incarnation + "/" + vm + "/" + strconv.Itoa(domID)
	if len(id) <= 256 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "vm.failed/" + hex.EncodeToString(sum[:])
}

// flushReports publishes the queued reports in order, stopping at the first
// failure (the rest wait for the next round). A fenced host that has not
// renewed its lease is cut off and publishes nothing.
func (r *Restarter) flushReports(ctx context.Context, pub Bus) {
	for {
		r.mu.Lock()
		if len(r.reports) == 0 || (r.fence.fenced && !r.fence.renewedSince) {
			r.mu.Unlock()
			return
		}
		p := r.reports[0]
		r.mu.Unlock()
		ev, err := events.New("xenft/agent/"+r.id.Host, p.at, p.payload)
		if err == nil {
			ev = ev.WithID(p.id)
			_, err = events.Encode(ev)
		}
		if err != nil {
			// It would never pass: drop it rather than block the others.
			r.log.Error("dropping an invalid vm.failed", "vm", p.payload.VM, "id", p.id, "error", err)
		} else {
			pctx, cancel := context.WithTimeout(ctx, r.cfg.Fence.RenewInterval+5*time.Second)
			err = pub.Publish(pctx, ev)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("cannot publish vm.failed; will retry", "vm", p.payload.VM, "id", p.id, "error", err)
				}
				return
			}
		}
		r.mu.Lock()
		r.reports = r.reports[1:]
		r.mu.Unlock()
	}
}
