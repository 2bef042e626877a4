package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/xenft/xenft/internal/clock"
)

// leaderKey is the one key of the xenft_leader bucket.
const leaderKey = "leader"

// Lease is a holder's claim to leadership as stored in the bucket.
type Lease struct {
	Holder string    `json:"holder"`
	Term   uint64    `json:"term"`
	Since  time.Time `json:"since"`
}

// Elector holds or waits for the supervisor leader lease in the xenft_leader
// bucket, whose TTL is the lease: the leader renews by compare-and-set every
// TTL/3; when it stops, the key expires and a waiting supervisor creates it.
//
// The term is the KV revision at which the holder created the key. Revisions
// are the bucket stream's sequence numbers, which only grow, so every new
// leader has a higher term than any before it without storing a counter that
// the TTL would expire. They only grow while the bus keeps what it
// acknowledged, though: a bus that lost its newest writes (a power loss with
// a lazy sync policy, a corrupted replica) hands out revisions again. So a
// term is never below the floor, the highest term this supervisor has seen
// in use (the leader it waited behind, its persisted state, the terms
// agents report having obeyed): a revision at or under it becomes floor+1.
type Elector struct {
	clock clock.Clock
	kv    jetstream.KeyValue
	id    string
	ttl   time.Duration
	log   hclog.Logger
	// heldUntil is when this holder's lease may have expired at the
	// earliest, by its own monotonic clock: the send time of the newest
	// successful write of the key plus two thirds of the TTL (the key
	// expires a TTL after the server stored it, which was later). Zero
	// when not leading. Lease grants to agents stop at it (grants.go), so
	// that every grant of an old leader precedes its successor's term.
	heldUntil atomic.Pointer[time.Time]
	// floor is the highest term known to have been used (RaiseFloor).
	floor atomic.Uint64
}

// RaiseFloor records that term has been used by some leader: every term this
// elector takes from now on is higher.
func (e *Elector) RaiseFloor(term uint64) {
	for {
		old := e.floor.Load()
		if term <= old || e.floor.CompareAndSwap(old, term) {
			return
		}
	}
}

// Floor is the highest term known to have been used.
func (e *Elector) Floor() uint64 { return e.floor.Load() }

// Holds reports whether this supervisor surely still holds the lease.
func (e *Elector) Holds(now time.Time) bool {
	t := e.heldUntil.Load()
	return t != nil && now.Before(*t)
}

func (e *Elector) held(sent time.Time) {
	until := sent.Add(e.ttl - e.ttl/3)
	e.heldUntil.Store(&until)
}

// NewElector competes as id in kv, whose bucket TTL is ttl, on the
// machine's clock.
func NewElector(kv jetstream.KeyValue, id string, ttl time.Duration, log hclog.Logger) *Elector {
	return NewElectorOn(clock.Real(), kv, id, ttl, log)
}

// NewElectorOn is NewElector on c: the renewals' pace, the send times that
// date the lease, and Holds' end all read c.
func NewElectorOn(c clock.Clock, kv jetstream.KeyValue, id string, ttl time.Duration, log hclog.Logger) *Elector {
	return &Elector{clock: c, kv: kv, id: id, ttl: ttl, log: log.Named("lease")}
}

// Run competes for the lease until ctx ends. Each time this supervisor wins,
// lead is called with a context that ends when the lease is lost (a renewal
// failed or found another holder) or ctx ends, and with the term; Run waits
// for lead to return before competing again. A lead that returns on its own
// (it cannot lead: its decision core stopped) gives the lease up at once,
// and this supervisor waits a TTL before competing again, so another may
// take over. Run returns when ctx ends.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, term uint64)) {
	retry := e.ttl / 3
	for ctx.Err() == nil {
		term, rev, err := e.acquire(ctx)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				e.observeHolder(ctx)
			} else if ctx.Err() == nil {
				e.log.Warn("cannot reach the lease bucket", "error", err)
			}
			clock.Sleep(ctx, e.clock, retry)
			continue
		}
		e.log.Info("became leader", "id", e.id, "term", term)
		lctx, lose := context.WithCancel(ctx)
		done := make(chan struct{})
		var gaveUp bool
		go func() {
			defer close(done)
			lead(lctx, term)
			// Renewing a lease nobody uses would keep every other
			// supervisor from leading (seen in e2e: a leader whose state
			// bucket was unreachable stepped down and renewed for good).
			gaveUp = lctx.Err() == nil
			lose()
		}()
		e.renew(lctx, term, rev)
		e.heldUntil.Store(nil)
		lose()
		<-done
		e.log.Info("leadership ended", "id", e.id, "term", term)
		e.release(context.WithoutCancel(ctx), term)
		if gaveUp {
			clock.Sleep(ctx, e.clock, e.ttl) // a few of the others' tries: one of them gets it
		}
	}
}

// acquire creates the key; it fails with ErrKeyExists while another holds it.
func (e *Elector) acquire(ctx context.Context) (term, rev uint64, err error) {
	cctx, cancel := clock.WithTimeout(ctx, e.clock, e.ttl/3)
	defer cancel()
	sent := e.clock.Now()
	// The term is known only after Create returns its revision; the value is
	// rewritten with it at once (the first renewal).
	rev, err = e.kv.Create(cctx, leaderKey, e.value(0))
	if err != nil {
		return 0, 0, err
	}
	term = rev
	if floor := e.floor.Load(); term <= floor {
		e.log.Warn("the lease bucket's revision is not above a term already used: the bus lost acknowledged writes; taking the next term instead",
			"revision", rev, "highest_term_used", floor, "term", floor+1)
		term = floor + 1
	}
	rev2, err := e.kv.Update(cctx, leaderKey, e.value(term), rev)
	if err != nil {
		return 0, 0, err
	}
	e.RaiseFloor(term)
	e.held(sent)
	return term, rev2, nil
}

// observeHolder raises the floor to the term of the leader holding the key,
// so that this supervisor's next term is above it even if the bus hands out
// its revision again.
func (e *Elector) observeHolder(ctx context.Context) {
	gctx, cancel := clock.WithTimeout(ctx, e.clock, e.ttl/3)
	defer cancel()
	entry, err := e.kv.Get(gctx, leaderKey)
	if err != nil {
		return // the next try looks again
	}
	var l Lease
	if json.Unmarshal(entry.Value(), &l) == nil {
		e.RaiseFloor(l.Term)
	}
}

func (e *Elector) value(term uint64) []byte {
	b, _ := json.Marshal(Lease{Holder: e.id, Term: term, Since: e.clock.Now().UTC()})
	return b
}

// renew keeps the lease until ctx ends, another holder has it, or it may
// have expired: better no leader for a moment than two.
//
// A renewal that is only slow (a JetStream leader election, a busy disk, a
// starved process) is tried again for as long as the lease surely holds
// (Holds), not given up after one TTL/3 attempt: in make e2e beside a CPU
// hog (TTL 3 s) single slow updates made the supervisors step down every
// few seconds (terms 1, 7, 31, 70 in 90 s), and every checkpoint in flight
// was aborted with its coordinator. Stepping down at Holds' end is as safe
// as before: the old rule ended leadership at most two thirds of the TTL
// after the newest successful write was sent, and so does this one.
func (e *Elector) renew(ctx context.Context, term, rev uint64) {
	t := e.clock.NewTicker(e.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		next, err := e.renewOnce(ctx, term, rev)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("lease renewal failed; stepping down", "term", term, "error", err)
			}
			return
		}
		rev = next
	}
}

// renewOnce writes the lease again, retrying a write that timed out or
// failed for want of a stream leader while the lease surely holds.
func (e *Elector) renewOnce(ctx context.Context, term, rev uint64) (uint64, error) {
	for attempt := 1; ; attempt++ {
		until := e.heldUntil.Load()
		if until == nil || !e.clock.Now().Before(*until) {
			return 0, fmt.Errorf("no renewal acknowledged before the lease may have expired (attempt %d)", attempt)
		}
		rctx, cancel := clock.WithDeadline(ctx, e.clock, *until)
		sent := e.clock.Now()
		next, err := e.kv.Update(rctx, leaderKey, e.value(term), rev)
		cancel()
		switch {
		case err == nil:
			e.held(sent)
			return next, nil
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) ||
			errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			// Another holder, or the key expired: not ours any more.
			return 0, err
		}
		if attempt == 1 {
			e.log.Warn("lease renewal slow or failed; trying again while the lease holds", "term", term, "error", err)
		}
		clock.Sleep(ctx, e.clock, min(e.ttl/10, e.clock.Until(*until)))
	}
}

// release deletes the key if we still hold it, so a successor need not wait
// for the TTL after a clean stop.
func (e *Elector) release(ctx context.Context, term uint64) {
	ctx, cancel := clock.WithTimeout(ctx, e.clock, e.ttl/3)
	defer cancel()
	entry, err := e.kv.Get(ctx, leaderKey)
	if err != nil {
		return
	}
	var l Lease
	if json.Unmarshal(entry.Value(), &l) != nil || l.Holder != e.id || l.Term != term {
		return
	}
	_ = e.kv.Delete(ctx, leaderKey, jetstream.LastRevision(entry.Revision()))
}

// Current reads the lease, for status displays.
func Current(ctx context.Context, kv jetstream.KeyValue) (Lease, error) {
	entry, err := kv.Get(ctx, leaderKey)
	if err != nil {
		return Lease{}, fmt.Errorf("leader lease: %w", err)
	}
	var l Lease
	if err := json.Unmarshal(entry.Value(), &l); err != nil {
		return Lease{}, fmt.Errorf("leader lease: %w", err)
	}
	return l, nil
}
