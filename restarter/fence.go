package restarter

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/xen"
)

// Self-fencing (DESIGN.md "Safety first"), the rule this file implements:
//
//  0. Arming. The fence is armed by the first renewal of this incarnation
//     that the bus acknowledges. Until then failing renewals are no
//     evidence that the host is cut off (a JetStream cluster still
//     forming, a bucket being created, leaders being elected), so the
//     agent does not fence; it takes no restore, cold start or unpause
//     (not_ready), and every beat says fence_unarmed, so that the
//     supervisor never counts a silent unarmed host as self-fenced: its
//     VMs wait for a fence command or its return (supervisor/core,
//     Host.FenceUnarmed). Arming is for good: once armed, the clock of
//     rule 2 runs for the rest of the incarnation.
//  1. Lease. Every fence.renew_interval the agent puts its HostLease under
//     key <host> in the xenft_hosts bucket (up to three puts in flight, each
//     allowed until the fence would begin). A renewal counts from the moment
//     it was sent (before the server stored it), on the monotonic clock, and
//     only once the server acknowledged it. In a JetStream cluster an
//     acknowledged put means the agent reaches the bucket's quorum. The
//     server stores every put after it was sent, so the server time of the
//     key's newest revision is never earlier than the agent's last renewal:
//     a supervisor may count its deadline from that revision.
//  2. Deadline. When no renewal sent in the last fence.self_timeout −
//     fence.action_timeout has been acknowledged, the agent self-fences: it
//     refuses every new vm.restore, vm.coldstart and vm.unpause, cancels
//     those in flight and waits for them, then destroys (or pauses, with
//     fence.action pause) every guest domain except fence.spare, each xl
//     call bounded by last renewal + fence.self_timeout. So every guest is
//     gone strictly within self_timeout of the last successful renewal, as
//     the supervisor assumes when it restarts the host's VMs elsewhere after
//     last beat + self_timeout + margin. It publishes nothing while cut off;
//     it logs at error level.
//  3. Latch. The fence does not end when the bus comes back. Until it ends,
//     the agent destroys (pauses) every guest that appears, once per renew
//     interval, and keeps refusing restores, cold starts and unpauses with
//     not_ready (later, and no fault of the VM: fencedError). It ends when
//     both hold: (a) a renewal sent after the fence began was acknowledged,
//     and the lease is fresh; and (b) after (a) the agent answered a
//     vm.list carrying a leader's epoch that the shared epoch guard
//     admitted. (b) is the supervisor's reconciliation of a returning
//     host: a leader that lists the host knows it came back empty.
//     Commands sent before the fence cannot end it: restores are not a
//     vm.list, a leader's messages reach the agent in the order it sent
//     them (one connection), so a restore it sent before the partition and
//     delivered late arrives before its vm.list and is refused, and an
//     older leader's late command is refused by the guard once the newer
//     leader's vm.list was admitted. The host never
//     resurrects anything on its own: it never restores or unpauses except
//     on a command, and it takes none before the reconciliation.
//  4. Reports. The domains the fence killed are reported as vm.failed
//     (reason "self-fenced") once the lease is renewed: if the supervisor
//     already restarted them elsewhere, it ignores reports from a host the
//     VM no longer runs on; if it never noticed the outage (beats kept
//     flowing while JetStream was down) they are how it learns.
//
// A bus outage longer than self_timeout therefore kills every guest of every
// host: run NATS as a cluster.

// fenceState is the self-fence part of the restarter's state (under mu).
type fenceState struct {
	// lastOK is when the newest acknowledged renewal was sent (monotonic);
	// zero before the first one.
	lastOK time.Time
	// everRenewed: a renewal was acknowledged, the fence is armed (rule 0).
	everRenewed bool
	// lastGrant is when the newest request the leader granted was sent.
	lastGrant time.Time
	// silentFor is how long no renewal had been acknowledged when the
	// fence began: the log line and the VMs' reasons say the same.
	silentFor    time.Duration
	fenced       bool
	generation   uint64
	fencedAt     time.Time
	renewedSince bool
	// emptied: while fenced, the newest sweep listed the domains and found
	// none left to act on — the fence is complete (watchdog.go pets on it).
	emptied bool
}

// Bus is what Run needs of the bus; *events.Bus is one.
type Bus interface {
	KV(ctx context.Context, bucket string) (jetstream.KeyValue, error)
	Names() events.Names
	Subjects() events.Subjects
	Conn() *nats.Conn
	Publish(ctx context.Context, ev events.Event) error
}

var _ Bus = (*events.Bus)(nil)

// maxRenewals bounds the renewals in flight: a slow put (a JetStream leader
// election) must not hold up the next ones, and a dead bus must not pile
// them up.
const maxRenewals = 3

// renewLoop starts a renewal every renew interval until ctx ends, waking
// the fence loop after each acknowledged one. A renewal may take until the
// fence would begin: a slow acknowledgement still proves the agent reached
// the bucket when it sent the renewal.
func (r *Restarter) renewLoop(ctx context.Context, bus Bus, renewed chan<- struct{}) {
	kv := &leaseBucket{bus: bus}
	r.paced(ctx, "host lease", r.log.Warn, func(ctx context.Context) error { return r.renewOnce(ctx, kv) }, renewed)
}

// paced runs renew every renew interval, up to maxRenewals at a time, until
// ctx ends, and wakes the fence loop after each success. what names the
// path in the lines logf writes of its failures (the first, then every
// tenth in a row) and of its return.
func (r *Restarter) paced(ctx context.Context, what string, logf func(string, ...any), renew func(context.Context) error, renewed chan<- struct{}) {
	t := r.clock.NewTicker(r.cfg.Fence.RenewInterval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxRenewals)
	var failing atomic.Int64
	for {
		select {
		case slots <- struct{}{}:
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				err := renew(ctx)
				switch {
				case ctx.Err() != nil:
				case err == nil:
					if n := failing.Swap(0); n > 0 {
						logf(what+" renewed again", "failed_renewals", n)
					}
					select {
					case renewed <- struct{}{}:
					default:
					}
				default:
					if n := failing.Add(1); n == 1 || n%10 == 0 {
						logf("cannot renew the "+what, "failed_renewals", n, "error", err)
					}
				}
			}()
		default: // maxRenewals still in flight: the bus is that slow
		}
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
	}
}

// leaseBucket opens the xenft_hosts bucket once, when it first can.
type leaseBucket struct {
	bus Bus
	mu  sync.Mutex
	kv  jetstream.KeyValue
}

func (b *leaseBucket) get(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv == nil {
		kv, err := b.bus.KV(ctx, b.bus.Names().Hosts())
		if err != nil {
			return nil, err
		}
		b.kv = kv
	}
	return b.kv, nil
}

func (r *Restarter) renewOnce(ctx context.Context, bucket *leaseBucket) error {
	sent := r.clock.Now()
	ctx, cancel := r.withTimeout(ctx, r.cfg.Fence.fenceStartsAfter())
	defer cancel()
	kv, err := bucket.get(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	lease := HostLease{
		Host: r.id.Host, Incarnation: r.id.Incarnation, RenewedAt: sent.UTC(),
		RenewIntervalMs: ms(r.cfg.Fence.RenewInterval), SelfTimeoutMs: ms(r.cfg.Fence.SelfTimeout),
		FenceGeneration: r.fence.generation, AwaitingReconcile: r.fence.fenced,
		ObeyedTerm: r.guard.Term(),
	}
	r.mu.Unlock()
	val, _ := json.Marshal(lease)
	if _, err := kv.Put(ctx, r.id.Host, val); err != nil {
		return fmt.Errorf("put %s in %s: %w", r.id.Host, kv.Bucket(), err)
	}
	r.acknowledged(sent, "the host lease was acknowledged", false)
	return nil
}

// acknowledged records a renewal sent at sent and acknowledged (by the
// bucket, or granted by the leader: grant.go); how says which, for the
// line that tells the fence armed.
func (r *Restarter) acknowledged(sent time.Time, how string, grant bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if grant && sent.After(r.fence.lastGrant) {
		r.fence.lastGrant = sent
	}
	if sent.After(r.fence.lastOK) {
		r.fence.lastOK = sent
	}
	if !r.fence.everRenewed {
		r.fence.everRenewed = true
		r.armed.Store(true)
		r.log.Info("self-fence armed: "+how, "fence_starts_after", r.cfg.Fence.fenceStartsAfter())
	}
	if r.fence.fenced && !r.fence.renewedSince && sent.After(r.fence.fencedAt) {
		r.fence.renewedSince = true
		r.log.Warn("host lease renewed after the self-fence; restores stay refused until the supervisor reconciles this host with vm.list",
			"generation", r.fence.generation)
	}
}

// fenceLoop self-fences when the lease is due and, while fenced, sweeps the
// host every renew interval.
func (r *Restarter) fenceLoop(ctx context.Context, renewed <-chan struct{}) {
	timer := r.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		fenced, armed, lastOK := r.fence.fenced, r.fence.everRenewed, r.fence.lastOK
		r.mu.Unlock()
		wait := r.cfg.Fence.RenewInterval
		switch {
		case !armed:
			// Rule 0: no clock runs before the first acknowledged
			// renewal; wait for it.
			select {
			case <-ctx.Done():
				return
			case <-renewed:
			}
			continue
		case !fenced:
			wait = r.clock.Until(lastOK.Add(r.cfg.Fence.fenceStartsAfter()))
			if wait <= 0 {
				r.selfFence(ctx)
				continue
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-renewed:
			// Go 1.23 timers: after Stop no stale tick is delivered.
			timer.Stop()
		case <-timer.Chan():
			if fenced {
				sctx, cancel := r.withTimeout(ctx, r.cfg.Fence.ActionTimeout)
				r.sweep(sctx)
				cancel()
			}
		}
	}
}

// selfFence is step 2 of the rule. It completes even if ctx ends meanwhile:
// a fence begun is a promise the supervisor relies on.
func (r *Restarter) selfFence(ctx context.Context) {
	r.mu.Lock()
	if r.fence.fenced {
		r.mu.Unlock()
		return
	}
	now, lastOK := r.clock.Now(), r.fence.lastOK
	deadline := lastOK.Add(r.cfg.Fence.SelfTimeout)
	r.fence.fenced, r.fence.fencedAt, r.fence.renewedSince, r.fence.emptied = true, now, false, false
	r.fence.silentFor = now.Sub(lastOK).Round(time.Millisecond)
	why := r.fenceWhy()
	r.fence.generation++
	var inflight []*op
	for o := range r.ops {
		if o.verb != VerbDestroy {
			o.cancel()
			inflight = append(inflight, o)
		}
	}
	gen := r.fence.generation
	r.mu.Unlock()
	r.log.Error("SELF-FENCE: "+why+"; this host is presumed dead and its VMs restarted elsewhere: "+r.cfg.Fence.Action+" every guest domain now",
		"last_renewal_ago", now.Sub(lastOK).Round(time.Millisecond), "fence_starts_after", r.cfg.Fence.fenceStartsAfter(),
		"self_timeout", r.cfg.Fence.SelfTimeout, "generation", gen, "cancelled_commands", len(inflight))
	// Late (the agent was stopped or starved past its deadline): the
	// promise is already broken, and destroying now is still the best left.
	// A call still running at the deadline is cut off there; the sweeps
	// that follow while fenced try again.
	actionDeadline := deadline
	if now.After(deadline) {
		actionDeadline = now.Add(r.cfg.Fence.ActionTimeout)
		r.log.Error("SELF-FENCE is late: the deadline passed before the agent could act", "late_by", now.Sub(deadline).Round(time.Millisecond))
	}
	fctx, cancel := r.withTimeout(context.WithoutCancel(ctx), r.clock.Until(actionDeadline))
	defer cancel()
	for _, o := range inflight {
		select {
		case <-o.done:
		case <-fctx.Done():
		}
	}
	n := r.sweep(fctx)
	// A second pass lists again: it confirms the host is empty (the
	// watchdog's condition) or acts once more on what is left.
	if fctx.Err() == nil {
		n += r.sweep(fctx)
	}
	r.mu.Lock()
	emptied := r.fence.emptied
	r.mu.Unlock()
	r.log.Error("SELF-FENCE done", "action", r.cfg.Fence.Action, "domains", n, "confirmed", emptied,
		"before_deadline", r.clock.Until(deadline).Round(time.Millisecond), "generation", gen)
}

// sweep applies the fence action to every guest domain while the host is
// fenced, in parallel, and returns how many it acted on. A listing with
// nothing left to act on marks the fence complete (emptied); anything else
// (a failed listing, a domain to act on) unmarks it until a later sweep
// finds the host empty.
func (r *Restarter) sweep(ctx context.Context) int {
	doms, err := r.hv.List(ctx)
	if err != nil {
		r.setEmptied(false)
		r.log.Error("SELF-FENCE: cannot list domains", "error", err)
		return 0
	}
	pending := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for _, d := range doms {
		if isDom0(d) || r.spare[d.Name] {
			continue
		}
		r.mu.Lock()
		// A dead domain cannot be paused, and needs not be: it cannot run.
		skip := !r.fence.fenced || (r.cfg.Fence.Action == FencePause && (r.fencedPaused[d.Name] == d.ID || !d.State.Alive()))
		r.mu.Unlock()
		if skip {
			continue
		}
		pending++
		wg.Add(1)
		go func(d xen.Domain) {
			defer wg.Done()
			if r.fenceOne(ctx, d) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}(d)
	}
	wg.Wait()
	r.setEmptied(pending == 0)
	return n
}

// setEmptied records whether the newest sweep found the fenced host empty.
func (r *Restarter) setEmptied(empty bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fence.emptied = empty && r.fence.fenced
}

// fenceOne destroys (or pauses) one domain and queues its report. A domain
// without a name (xl is building or tearing it down: xen.Domain.Name) is
// destroyed by its id whatever the action, and not reported: it is no VM
// yet, or any more, and a half-built restore holds no state to keep.
func (r *Restarter) fenceOne(ctx context.Context, d xen.Domain) bool {
	if d.Name == "" {
		err := r.hv.Destroy(ctx, strconv.Itoa(d.ID))
		if err != nil && !isNotFound(err) {
			r.log.Error("SELF-FENCE: cannot destroy an unnamed domain", "domid", d.ID, "error", err)
			return false
		}
		r.log.Error("SELF-FENCE: destroyed an unnamed domain", "domid", d.ID, "was", d.State)
		return true
	}
	var err error
	if r.cfg.Fence.Action == FencePause {
		if err = r.hv.Pause(ctx, d.Name); err == nil {
			r.mu.Lock()
			r.fencedPaused[d.Name] = d.ID
			r.mu.Unlock()
		}
	} else {
		err = r.hv.Destroy(ctx, d.Name)
	}
	if err != nil && !isNotFound(err) {
		r.log.Error("SELF-FENCE: cannot "+r.cfg.Fence.Action+" domain", "vm", d.Name, "domid", d.ID, "error", err)
		return false
	}
	r.log.Error("SELF-FENCE: "+r.cfg.Fence.Action+"ed domain", "vm", d.Name, "domid", d.ID, "was", d.State)
	r.mu.Lock()
	defer r.mu.Unlock()
	group := ""
	if s, ok := r.started[d.Name]; ok && s.domID == d.ID {
		group = s.group
		if r.cfg.Fence.Action == FenceDestroy {
			delete(r.started, d.Name)
		}
	}
	r.queueReport(d.Name, group, d.ID, fmt.Sprintf("self-fenced: %s had %s, its agent %sed domain %s (domid %d, was %s)",
		r.id.Host, r.fenceWhy(), r.cfg.Fence.Action, d.Name, d.ID, d.State))
	return true
}

// reconcile is step 3(b): a vm.list with an admitted epoch. It reports
// whether the fence ended.
func (r *Restarter) reconcile(e events.Epoch) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := &r.fence
	fresh := r.clock.Since(f.lastOK) < r.cfg.Fence.fenceStartsAfter()
	if !f.fenced || !f.renewedSince || !fresh {
		return false
	}
	f.fenced, f.renewedSince, f.emptied = false, false, false
	r.log.Warn("self-fence ended: the supervisor reconciled this host", "epoch", epochString(e), "generation", f.generation)
	return true
}

// fenceWhy says, with the numbers of the newest self-fence, why it began;
// r.mu is held. The log line and every VM's reason quote it.
func (r *Restarter) fenceWhy() string {
	f := r.cfg.Fence
	return fmt.Sprintf("no lease renewal acknowledged for %s (the fence begins %s after the last one: fence.self_timeout %s − fence.action_timeout %s)",
		r.fence.silentFor, f.fenceStartsAfter(), f.SelfTimeout, f.ActionTimeout)
}

// notReady refuses what (a restore, cold start or unpause) while the host
// is fenced or its fence is not armed yet (rule 0); r.mu is held. nil: go.
func (r *Restarter) notReady(what string) error {
	switch {
	case r.fence.fenced:
		return r.fencedError(what)
	case !r.fence.everRenewed:
		return command.NewError(command.CodeNotReady, fmt.Errorf(
			"%s refused: %s's agent has had no lease renewal acknowledged since it started, so its self-fence is not armed", what, r.id.Host))
	}
	return nil
}

// fencedError refuses what (a command) on a fenced host; r.mu is held. Its
// code is not_ready: the latch ends as soon as the leader has reconciled the
// host, seconds after its lease is renewed, and the refusal says nothing
// about the VM or its image. A permanent refusal made the supervisor count a
// failed attempt and try the next host at once; a plain retryable one still
// counted attempts: after a bus outage that fenced every host, every host
// refuses, and every VM used up its attempts and was declared unrecoverable
// before any host was reconciled (seen in e2e/, bus outage). With not_ready
// the supervisor counts no attempt and places the VM elsewhere meanwhile
// (supervisor/core/ready.go).
func (r *Restarter) fencedError(what string) error {
	f := r.fence
	why := "its lease is not renewed yet"
	if f.renewedSince {
		why = "the supervisor has not reconciled it with vm.list yet"
	}
	return command.NewError(command.CodeNotReady, fmt.Errorf("%s refused: %s self-fenced at %s (generation %d) and %s",
		what, r.id.Host, f.fencedAt.UTC().Format(time.RFC3339Nano), f.generation, why))
}

// FenceStatus reports the self-fence state.
func (r *Restarter) FenceStatus() Fence {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.fence
	st := Fence{Fenced: f.fenced, Generation: f.generation, FencedAt: utcOrZero(f.fencedAt), RenewedSinceFence: f.renewedSince}
	if f.everRenewed {
		st.LastRenewal = f.lastOK.UTC()
	}
	st.LastGrant = utcOrZero(f.lastGrant)
	return st
}

// FenceArmed reports whether the self-fence is armed: a lease renewal of
// this incarnation was acknowledged (rule 0). The beacon says so in beats.
//
// Lock-free: the beacon asks before every beat, and r.mu may be held
// across a slow toolstack call; a beat must never wait for one (with the
// mutex, make e2e saw beats stop at seq 3 on a loaded machine and the
// detectors fail healthy hosts).
func (r *Restarter) FenceArmed() bool { return r.armed.Load() }

// LastRenewal is when the newest acknowledged renewal was sent, with its
// monotonic reading (for tests that measure the fence deadline).
func (r *Restarter) LastRenewal() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fence.lastOK
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func isDom0(d xen.Domain) bool { return d.ID == 0 || d.Name == "Domain-0" }
