package core

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Apply feeds one input to the state machine: it updates s in place and
// returns the actions the input calls for, in the order they were decided.
//
// It is deterministic (the same state and input give the same state and
// actions: every map is walked in sorted order, time comes from the input, and
// there is no randomness), it never blocks, and it must be called from the one
// goroutine that owns s.
//
// On error the input was ignored: s is unchanged and there are no actions
// (see the Err* variables). While s.Term is 0 (before the first Leader input)
// Apply updates s but returns no actions: a supervisor that does not lead
// decides nothing anyone hears of, and the operations it planned are sent when
// it becomes leader.
//
// After Apply the shell persists s (see Changes) and only then executes the
// actions: an action executed but not recorded could be executed twice by the
// next leader, while an action recorded but not executed is sent again, with a
// new epoch, when the next leader takes over.
func Apply(s *State, in Input) ([]Action, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: nil input", ErrInvalid)
	}
	m := newMachine(s, in.at())
	if err := m.handle(in); err != nil {
		return nil, err
	}
	m.step()
	m.finish()
	if s.Term == 0 {
		return nil, nil
	}
	return m.out, nil
}

// machine is the work space of one Apply.
type machine struct {
	s    *State
	p    *Policy
	now  time.Time
	meta Meta // s.Meta before the input, to detect a change
	out  []Action

	// touched entries, re-indexed by flush and reported by TakeChanges
	vms, hosts, groups map[string]struct{}
}

func newMachine(s *State, at time.Time) *machine {
	if s.Hosts == nil {
		s.Hosts = map[string]*Host{}
	}
	if s.VMs == nil {
		s.VMs = map[string]*VM{}
	}
	if s.Groups == nil {
		s.Groups = map[string]*Group{}
	}
	now := norm(at)
	if now.Before(s.Now) || now.IsZero() {
		now = s.Now
	}
	s.index()
	return &machine{s: s, p: &s.Policy, now: now, meta: s.Meta}
}

// norm drops the monotonic reading and the location, so that times compare
// and serialise the same before and after a JSON round trip.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Round(0).UTC()
}

// handle applies the input's own effect. Handlers validate before they change
// anything: an error leaves the state as it was.
func (m *machine) handle(in Input) error {
	switch in := in.(type) {
	case Tick:
		return nil
	case SetPolicy:
		return m.onSetPolicy(in)
	case Leader:
		return m.onLeader(in)
	case HostBeat:
		return m.onBeat(in)
	case HostLeaseRenewed:
		return m.onLease(in)
	case NodeSuspect:
		return m.onSuspect(in)
	case NodeFailed:
		return m.onFailed(in)
	case NodeRecovered:
		return m.onRecovered(in)
	case NodeFault:
		return m.onFault(in)
	case VMRegistered:
		return m.onRegistered(in)
	case VMUnregistered:
		return m.onUnregistered(in)
	case CheckpointCommitted:
		return m.onCommitted(in)
	case CheckpointDeleted:
		return m.onDeleted(in)
	case VMFailed:
		return m.onVMFailed(in)
	case Result:
		return m.onResult(in)
	case Maintenance:
		return m.onMaintenance(in)
	case RestartVM:
		return m.onRestart(in)
	case MoveVM:
		return m.onMove(in)
	case ReleaseQuarantine:
		return m.onRelease(in)
	case ResumeRestarts:
		return m.onResume()
	}
	return fmt.Errorf("%w: input type %T", ErrInvalid, in)
}

// step moves every recovery in progress as far as the state allows: fences,
// retries that are due, destroys, unpauses, placements. It runs after every
// input, so no input has to know what it unblocks.
func (m *machine) step() {
	m.s.Now = m.now
	m.stormCheck()
	m.stepHosts()
	m.stepGroups()
	m.place()
	m.stepRejoined()
}

// finish re-indexes what was touched and records what changed.
func (m *machine) finish() {
	m.flush()
	s := m.s
	for n := range m.vms {
		mark(&s.changed.vms, n)
	}
	for n := range m.hosts {
		mark(&s.changed.hosts, n)
	}
	for n := range m.groups {
		mark(&s.changed.groups, n)
	}
	if !sameMeta(m.meta, s.Meta) {
		s.changed.meta = true
	}
}

func sameMeta(a, b Meta) bool {
	a.Now, b.Now = time.Time{}, time.Time{}
	sa, sb := a.Storm, b.Storm
	a.Storm, b.Storm = nil, nil
	if (sa == nil) != (sb == nil) || (sa != nil && *sa != *sb) {
		return false
	}
	return a == b
}

// touchVM, touchHost and touchGroup must be called for every entry an Apply
// changes (before or after the change, in the same Apply).
func (m *machine) touchVM(name string) {
	if m.vms == nil {
		m.vms = map[string]struct{}{}
	}
	m.vms[name] = struct{}{}
}

func (m *machine) touchHost(name string) {
	if m.hosts == nil {
		m.hosts = map[string]struct{}{}
	}
	m.hosts[name] = struct{}{}
}

func (m *machine) touchGroup(name string) {
	if m.groups == nil {
		m.groups = map[string]struct{}{}
	}
	m.groups[name] = struct{}{}
}

// flush brings the index up to date with every touched entry; it runs before
// the index is read.
func (m *machine) flush() *index {
	x := m.s.index()
	for n := range m.vms {
		x.vm(m.s, n)
	}
	for n := range m.hosts {
		x.host(m.s, n)
	}
	for n := range m.groups {
		x.group(m.s, n)
	}
	return x
}

func (m *machine) emit(a Action) { m.out = append(m.out, a) }

func (m *machine) publish(e Event) { m.emit(Publish{Event: e}) }

// epoch issues the next epoch of this term.
func (m *machine) epoch() Epoch {
	m.s.OpSeq++
	return Epoch{Term: m.s.Term, Seq: m.s.OpSeq}
}

// due reports whether an op waiting for a retry may be sent now.
func (m *machine) due(op *Op) bool {
	return !op.Abandoned && !op.Due.IsZero() && !m.now.Before(op.Due)
}

// inFlight reports whether op was sent and its answer is awaited.
func inFlight(op *Op) bool { return op != nil && !op.Abandoned && op.Due.IsZero() }

// retryLater schedules op's next send after a failure.
func (m *machine) retryLater(op *Op) {
	op.Failures++
	op.Due = m.now.Add(m.p.backoff(op.Failures))
}

func (m *machine) onSetPolicy(in SetPolicy) error {
	if err := in.Policy.Validate("supervisor"); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	m.s.Policy = in.Policy
	return nil
}

// onLeader takes over: every command that was sent and not yet answered is
// sent again with an epoch of the new term; answers to the old sends are
// stale from now on.
func (m *machine) onLeader(in Leader) error {
	if in.Term <= m.s.Term {
		return fmt.Errorf("%w: term %d, state is at %d", ErrStaleTerm, in.Term, m.s.Term)
	}
	m.s.Term, m.s.OpSeq = in.Term, 0
	x := m.flush()
	for _, name := range slices.Sorted(maps.Keys(x.busyHosts)) {
		h := m.s.Hosts[name]
		if inFlight(h.Fence) {
			m.sendFence(h)
		}
		for _, vm := range slices.Sorted(maps.Keys(h.Cleanup)) {
			if inFlight(h.Cleanup[vm]) {
				m.sendCleanup(h, vm)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(x.busyGroups)) {
		g := m.s.Groups[name]
		if d := g.Drain; d != nil && inFlight(d.Op) {
			m.sendCheckpoint(g)
		}
		for _, vm := range g.Members {
			if v := m.s.VMs[vm]; inFlight(v.Op) {
				m.sendVMOp(v, false)
			}
		}
	}
	return nil
}
