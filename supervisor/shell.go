package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/supervisor/core"
)

// stateKey is the key of the core state in the xenft_state bucket.
const stateKey = "core"

// beatPersistEvery bounds how stale a persisted heartbeat may be. A new leader
// computes self-fence deadlines from persisted last beats, so this must stay
// well under the core's fence_margin (5 s by default).
const beatPersistEvery = 500 * time.Millisecond

// item is one input for the shell's loop; done receives the outcome once the
// input is applied and the state persisted (sources that must ack wait on it).
type item struct {
	in   core.Input
	done chan outcome
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
	lastSaved time.Time
	dirty     bool
	view      atomic.Pointer[view]
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

func newShell(s *Supervisor, term uint64, stateKV jetstream.KeyValue) *shell {
	sh := &shell{s: s, term: term, log: s.log.Named("shell"), stateKV: stateKV, inputs: make(chan item, 1024)}
	sh.disp = newDispatcher(sh)
	return sh
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
	e, err := sh.stateKV.Get(ctx, stateKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		sh.state = core.NewState(sh.s.cfg.Policy)
		sh.log.Info("no persisted state: starting fresh")
		return nil
	case err != nil:
		return fmt.Errorf("load supervisor state: %w", err)
	}
	var st core.State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return fmt.Errorf("persisted supervisor state is unreadable: %w", err)
	}
	if err := st.Check(); err != nil {
		return fmt.Errorf("persisted supervisor state is inconsistent: %w", err)
	}
	sh.state = &st
	sh.log.Info("resuming persisted state", "hosts", len(st.Hosts), "vms", len(st.VMs), "groups", len(st.Groups))
	return nil
}

// persist stores the whole state. The state is small (a JSON document of a
// few hundred bytes per VM); core.TakeChanges allows per-key writes when it
// outgrows one message.
func (sh *shell) persist(ctx context.Context) error {
	b, err := json.Marshal(sh.state)
	if err != nil {
		return fmt.Errorf("encode supervisor state: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, sh.s.bus.RequestTimeout())
	defer cancel()
	if _, err := sh.stateKV.Put(pctx, stateKey, b); err != nil {
		return fmt.Errorf("persist supervisor state: %w", err)
	}
	sh.lastSaved, sh.dirty = time.Now(), false
	_ = sh.state.TakeChanges()
	return nil
}

// run is the loop; it returns when ctx ends, after the dispatcher's work.
func (sh *shell) run(ctx context.Context) error {
	if err := sh.load(ctx); err != nil {
		return err
	}
	now := time.Now()
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
	if err := sh.persist(ctx); err != nil {
		return err
	}
	sh.publishView()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sh.disp.wait()
	sh.disp.start(ctx)
	sh.disp.run(ctx, acts)
	// The sources' first inputs (inventory, catalog) wait until they are
	// applied, which the loop below does: start them beside it.
	wg.Add(1)
	go func() { defer wg.Done(); sh.startSources(ctx, &wg) }()

	flush := time.NewTicker(beatPersistEvery)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			if sh.dirty {
				_ = sh.persist(context.WithoutCancel(ctx))
			}
			return nil
		case <-flush.C:
			if sh.dirty && time.Since(sh.lastSaved) >= beatPersistEvery {
				if err := sh.persist(ctx); err != nil {
					sh.log.Warn("persist failed", "error", err)
				}
			}
		case it := <-sh.inputs:
			acts, err := core.Apply(sh.state, it.in)
			if err != nil {
				sh.log.Debug("input ignored", "input", fmt.Sprintf("%T", it.in), "error", err)
			}
			perr := sh.save(ctx, it.in, len(acts) > 0)
			if it.done != nil {
				it.done <- outcome{apply: err, persist: perr}
			}
			if perr != nil {
				// Not recorded: act on nothing. The source's input is
				// redelivered (durable events) or repeated (beats, ticks).
				sh.log.Warn("persist failed; actions withheld", "error", perr)
				continue
			}
			sh.publishView()
			sh.disp.run(ctx, acts)
		}
	}
}

// save persists after an Apply: at once when anything but a heartbeat or
// tick changed (or actions follow), at most every beatPersistEvery otherwise.
func (sh *shell) save(ctx context.Context, in core.Input, acting bool) error {
	ch := sh.state.TakeChanges()
	changed := len(ch.Hosts)+len(ch.VMs)+len(ch.Groups) > 0 || ch.Meta
	if !changed && !acting {
		return nil
	}
	switch in.(type) {
	case core.HostBeat, core.Tick:
		if !acting && time.Since(sh.lastSaved) < beatPersistEvery {
			sh.dirty = true
			return nil
		}
	}
	return sh.persist(ctx)
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
