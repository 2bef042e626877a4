package supervisor

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor/core"
)

// beatPersistEvery bounds how stale a persisted heartbeat may be. A new leader
// computes self-fence deadlines from persisted last beats, so this must stay
// well under the core's fence_margin (5 s by default).
const beatPersistEvery = 500 * time.Millisecond

// item is one input for the shell's loop; done receives the outcome once the
// input is applied and the state persisted (sources that must ack wait on it).
type item struct {
	in   core.Input
	done chan outcome
	// about names where the input came from (an event's id and source),
	// for the line that tells it was ignored.
	about []any
}

// outcome of one input: apply is the core's refusal (an invalid or stale
// input, never worth redelivering); persist is a failure to record the state
// (worth redelivering: nothing was acted on).
type outcome struct {
	apply, persist error
}

// shell is one term of leadership of the decision core. Its loop is the one
// goroutine that owns the core state (etcd/raft's node.run): it applies the
// inputs the sources send, persists the state, and only then hands the
// actions to the dispatcher and acknowledges the input.
type shell struct {
	s       *Supervisor
	term    uint64
	log     hclog.Logger
	stateKV jetstream.KeyValue
	inputs  chan item
	disp    *dispatcher

	state     *core.State
	pending   *pending
	outbox    outbox
	lastSaved time.Time
	dirty     bool
	view      atomic.Pointer[view]
	leases    *leaseBook
	gate      *grantGate // lease grants to agents (grants.go)
	// stepDown ends this term's leadership (lead's context).
	stepDown context.CancelFunc
}

// view is what other goroutines (the checkpoint scheduler, status) may read
// of the state: plain values copied after each Apply, sharing nothing.
type view struct {
	vms map[string]vmView
}

type vmView struct {
	Group  string
	Host   string
	State  core.VMState
	Policy core.RestartPolicy
}

func newShell(s *Supervisor, term uint64, stateKV jetstream.KeyValue, stepDown context.CancelFunc) *shell {
	sh := &shell{s: s, term: term, log: s.log.Named("shell"), stateKV: stateKV, inputs: make(chan item, 1024), pending: newPending(), leases: newLeaseBook(),
		stepDown: stepDown}
	sh.outbox.term = term
	sh.disp = newDispatcher(sh)
	sh.gate = newGrantGate(sh.leases, sh.s.clock.Now()) // the term's floor (grants.go)
	return sh
}

// obeyed handles an agent's word on the newest leader term it has obeyed
// (in its host lease, or in its refusal of a command as stale): no term
// this supervisor takes is at or below it, and if this term already is,
// another leader has acted since, or the bus handed this term out twice
// after losing acknowledged writes. Either way this supervisor must not
// lead under it: it steps down, and comes back, if it wins again, with a
// higher term.
func (sh *shell) obeyed(host string, term uint64) {
	sh.s.elector.RaiseFloor(term)
	if term > sh.term {
		sh.log.Warn("an agent obeyed a newer leader term than this one: stepping down", "host", host, "term", sh.term, "obeyed_term", term)
		sh.stepDown()
	}
}

// feed sends an input to the loop and, if wait, waits until it is applied and
// persisted, returning a failure to persist (sources redeliver on it).
func (sh *shell) feed(ctx context.Context, in core.Input, wait bool) error {
	if !wait {
		select {
		case sh.inputs <- item{in: in}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	o := sh.apply(ctx, in)
	return o.persist
}

// apply sends an input to the loop and waits for its outcome.
func (sh *shell) apply(ctx context.Context, in core.Input) outcome {
	it := item{in: in, done: make(chan outcome, 1)}
	select {
	case sh.inputs <- it:
	case <-ctx.Done():
		return outcome{persist: ctx.Err()}
	}
	select {
	case o := <-it.done:
		return o
	case <-ctx.Done():
		return outcome{persist: ctx.Err()}
	}
}

// load reads the persisted state, or starts a new one.
func (sh *shell) load(ctx context.Context) error {
	st, err := LoadState(ctx, sh.stateKV)
	if err != nil {
		return err
	}
	if st == nil {
		sh.state = core.NewState(sh.s.cfg.Policy)
		sh.log.Info("no persisted state: starting fresh")
		return nil
	}
	if err := st.Check(); err != nil {
		return fmt.Errorf("persisted supervisor state is inconsistent: %w", err)
	}
	sh.state = st
	sh.log.Info("resuming persisted state", "hosts", len(st.Hosts), "vms", len(st.VMs), "groups", len(st.Groups))
	return nil
}

// persist writes the entries changed since the last write, and the events
// staged with them, returning the outbox parts written, for announce.
func (sh *shell) persist(ctx context.Context) ([]outboxPart, error) {
	sh.pending.add(sh.state.TakeChanges())
	pctx, cancel := context.WithTimeout(ctx, sh.s.bus.RequestTimeout())
	defer cancel()
	written, err := sh.pending.write(pctx, sh.stateKV, sh.state)
	if err != nil {
		return nil, fmt.Errorf("persist supervisor state: %w", err)
	}
	sh.lastSaved, sh.dirty = sh.s.clock.Now(), false
	return written, nil
}

// stage turns the events among acts into outbox parts, to be written by the
// next persist. The event is stamped when the core decided, not when it is
// published: its time says when it happened.
func (sh *shell) stage(acts []core.Action) {
	var evs []events.Event
	for _, a := range acts {
		pub, ok := a.(core.Publish)
		if !ok {
			continue
		}
		p := eventPayload(sh.s.cfg.ID, pub.Event)
		if p == nil {
			continue
		}
		ev, err := events.New("xenft/supervisor/"+sh.s.cfg.ID, sh.s.clock.Now(), p)
		if err != nil {
			sh.log.Warn("cannot build event", "type", p.EventType(), "error", err)
			continue
		}
		evs = append(evs, ev)
	}
	parts := sh.outbox.stage(evs, func(ev events.Event, err error) {
		sh.log.Warn("cannot encode event", "type", ev.Type.Short(), "error", err)
	})
	sh.pending.outbox = append(sh.pending.outbox, parts...)
}

// run is the loop; it returns when ctx ends, after the dispatcher's work.
func (sh *shell) run(ctx context.Context) error {
	if err := sh.load(ctx); err != nil {
		return err
	}
	// Events an earlier leader persisted but may not have published go out
	// first, before anything this term decides.
	leftover, err := loadOutbox(ctx, sh.stateKV, func(key string, err error) {
		sh.log.Error("unreadable outbox entry dropped", "key", key, "error", err)
	})
	if err != nil {
		return err
	}
	if len(leftover) > 0 {
		sh.log.Info("publishing events an earlier leader left in the outbox", "entries", len(leftover))
	}
	// A persisted term at or above ours means the leader bucket handed out
	// a revision again (it lost acknowledged writes): Leader below refuses
	// the term, this supervisor steps down, and its next term is above.
	sh.s.elector.RaiseFloor(sh.state.Term)
	now := sh.s.clock.Now()
	// The policy is applied at the state's own last time, so no time passes
	// before the new term begins: a deadline that passed during the handover
	// must fire under this term (its commands and events then go out), not
	// inside SetPolicy under the old term, whose actions a new leader must
	// not send.
	policyAt := sh.state.Now
	if policyAt.IsZero() {
		policyAt = now
	}
	if acts, err := core.Apply(sh.state, core.SetPolicy{At: policyAt, Policy: sh.s.cfg.Policy}); err != nil {
		return fmt.Errorf("policy: %w", err)
	} else if len(acts) > 0 {
		sh.log.Warn("actions under the old term dropped at takeover; the new term re-sends what is in flight", "actions", len(acts))
	}
	// Leading starts here: every command in flight under an older term is
	// sent again with this term's epochs.
	acts, err := core.Apply(sh.state, core.Leader{At: now, Term: sh.term})
	if err != nil {
		return fmt.Errorf("leader term %d: %w", sh.term, err)
	}
	sh.stage(acts)
	// A new term writes every entry once: the store then holds exactly this
	// state, whatever an earlier version or a crash left there.
	sh.pending.all(sh.state)
	written, err := sh.persist(ctx)
	if err != nil {
		return err
	}
	_ = sh.stateKV.Delete(ctx, legacyKey)
	sh.publishView()
	sh.gate.refresh(sh.state)
	defer sh.serveGrants()()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sh.disp.wait()
	sh.disp.start(ctx)
	sh.disp.announce(ctx, leftover)
	sh.disp.announce(ctx, written)
	sh.disp.run(ctx, acts)
	// The sources' first inputs (inventory, catalog) wait until they are
	// applied, which the loop below does: start them beside it.
	wg.Add(1)
	go func() { defer wg.Done(); sh.startSources(ctx, &wg) }()

	flush := sh.s.clock.NewTicker(beatPersistEvery)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			if sh.dirty {
				// Events written here are published by the next leader.
				_, _ = sh.persist(context.WithoutCancel(ctx))
			}
			return nil
		case <-flush.Chan():
			if sh.dirty && sh.s.clock.Since(sh.lastSaved) >= beatPersistEvery {
				written, err := sh.persist(ctx)
				if err != nil {
					sh.log.Warn("persist failed", "error", err)
				}
				sh.disp.announce(ctx, written)
			}
		case it := <-sh.inputs:
			sh.step(ctx, sh.batch(it))
		}
	}
}

// maxBatch bounds the inputs applied before one persist.
const maxBatch = 512

// batch is it and whatever else is already queued (up to maxBatch): a burst
// of failures is decided in one pass and persisted once, instead of each
// node.failed waiting behind the previous host's writes.
func (sh *shell) batch(it item) []item {
	b := []item{it}
	for len(b) < maxBatch {
		select {
		case more := <-sh.inputs:
			b = append(b, more)
		default:
			return b
		}
	}
	return b
}

// step applies a batch in order, persists the state once, and only then
// answers the inputs and hands the actions to the dispatcher: nothing is
// acted on (or acknowledged) before it is recorded.
func (sh *shell) step(ctx context.Context, batch []item) {
	var acts []core.Action
	errs := make([]error, len(batch))
	inputs := make([]core.Input, len(batch))
	for i, it := range batch {
		a, err := sh.gate.apply(sh.state, it.in)
		if err != nil {
			sh.ignore(it, err)
		}
		errs[i], inputs[i] = err, it.in
		acts = append(acts, a...)
	}
	sh.gate.refresh(sh.state)
	sh.stage(acts)
	written, perr := sh.save(ctx, inputs, len(acts) > 0)
	for i, it := range batch {
		if it.done != nil {
			it.done <- outcome{apply: errs[i], persist: perr}
		}
	}
	if perr != nil {
		// Not recorded: act on nothing. The sources redeliver (durable
		// events) or repeat (beats, ticks, results are re-sent by the core
		// after its backoff).
		// The events stay staged and go out after the next persist.
		sh.log.Warn("persist failed; actions withheld", "error", perr)
		return
	}
	sh.publishView()
	sh.disp.announce(ctx, written)
	sh.disp.run(ctx, acts)
}

// save persists after a batch: at once when anything but heartbeats and
// ticks changed the state (or actions follow), at most every
// beatPersistEvery otherwise.
func (sh *shell) save(ctx context.Context, inputs []core.Input, acting bool) ([]outboxPart, error) {
	sh.pending.add(sh.state.TakeChanges())
	if sh.pending.empty() && !acting {
		return nil, nil
	}
	if !acting && sh.s.clock.Since(sh.lastSaved) < beatPersistEvery && onlyBeatsAndTicks(inputs) {
		sh.dirty = true
		return nil, nil
	}
	return sh.persist(ctx)
}

func onlyBeatsAndTicks(inputs []core.Input) bool {
	for _, in := range inputs {
		switch in.(type) {
		case core.HostBeat, core.Tick:
		default:
			return false
		}
	}
	return true
}

// groupSpec is what the coordinator needs of a group whose members all run:
// a group in recovery is not checkpointed (its members are being replaced).
func (sh *shell) groupSpec(group string) (checkpointer.GroupSpec, bool) {
	v := sh.view.Load()
	if v == nil {
		return checkpointer.GroupSpec{}, false
	}
	g := checkpointer.GroupSpec{Name: group}
	for name, vm := range v.vms {
		if vm.Group != group {
			continue
		}
		if vm.State != core.VMRunning || vm.Host == "" {
			return checkpointer.GroupSpec{}, false
		}
		g.Members = append(g.Members, checkpointer.Member{VM: name, Host: vm.Host})
	}
	sort.Slice(g.Members, func(i, j int) bool { return g.Members[i].VM < g.Members[j].VM })
	return g, len(g.Members) > 0
}

func (sh *shell) publishView() {
	v := &view{vms: make(map[string]vmView, len(sh.state.VMs))}
	for name, vm := range sh.state.VMs {
		g := vm.Group
		if g == "" {
			g = name
		}
		v.vms[name] = vmView{Group: g, Host: vm.Host, State: vm.State, Policy: vm.Policy}
	}
	sh.view.Store(v)
}
