package core

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Check verifies the state's internal consistency: what a shell should run on
// a state loaded from storage before applying anything to it, and what the
// tests run after every step. It returns every problem found.
func (s *State) Check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := s.Policy.Validate("policy"); err != nil {
		bad("%w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Hosts)) {
		h := s.Hosts[name]
		if h == nil || h.Name != name {
			bad("host %s: missing or misnamed", name)
			continue
		}
		switch h.State {
		case HostHealthy, HostSuspect, HostFenced, HostRejoining:
			if h.Fence != nil {
				bad("host %s: %s with a fence op", name, h.State)
			}
		case HostFailed:
		default:
			bad("host %s: unknown state %q", name, h.State)
		}
		if (h.State == HostFailed && h.FailedBy == FailedBySilence && !h.FenceUnarmed) != !h.FenceDeadline.IsZero() {
			bad("host %s: %s by %q with fence deadline %v", name, h.State, h.FailedBy, h.FenceDeadline)
		}
		for vm, op := range h.Cleanup {
			if op == nil || op.Kind != OpDestroy || op.Host != name {
				bad("host %s: bad cleanup op for %s", name, vm)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.VMs)) {
		if err := s.checkVM(name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Groups)) {
		if err := s.checkGroup(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *State) checkVM(name string) error {
	v := s.VMs[name]
	if v == nil || v.Name != name {
		return fmt.Errorf("vm %s: missing or misnamed", name)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("vm %s (%s on %q, op %+v): "+format, append([]any{name, v.State, v.Host, v.Op}, args...)...)
	}
	g := s.Groups[groupOf(v.VMConfig)]
	if g == nil || !slices.Contains(g.Members, name) {
		return bad("not a member of its group %q", groupOf(v.VMConfig))
	}
	if v.Host != "" && s.Hosts[v.Host] == nil {
		return bad("unknown host")
	}
	if v.Op != nil && s.Hosts[v.Op.Host] == nil {
		return bad("op on unknown host")
	}
	if v.inRollback() && g.Rollback == nil {
		return bad("recovering without a rollback of its group")
	}
	if msg := v.stateViolation(); msg != "" {
		return bad("%s", msg)
	}
	return nil
}

// stateViolation says what in v contradicts its state (a host, an op), or
// "" if nothing does.
func (v *VM) stateViolation() string {
	kind := OpKind("")
	if v.Op != nil {
		kind = v.Op.Kind
	}
	switch v.State {
	case VMUnplaced:
		if v.Host != "" || v.Op != nil {
			return "unplaced with a host or an op"
		}
	case VMRunning, VMRestored:
		if v.Host == "" || v.Op != nil {
			return "without a host or with an op"
		}
	case VMStopping:
		if kind != "" && (kind != OpDestroy || v.Op.Host != v.Host) {
			return "stopping with a foreign op"
		}
	case VMPending:
		if v.Host != "" || v.Op != nil {
			return "pending with a host or an op"
		}
	case VMRestoring:
		// Never two copies: a restore goes out only once no copy is
		// believed to exist anywhere.
		if (kind != OpRestore && kind != OpColdStart) || v.Host != "" {
			return "restoring without a restore op, or while a copy may exist"
		}
	case VMUnpausing:
		if kind != OpUnpause || v.Op.Host != v.Host {
			return "unpausing without an unpause op on its host"
		}
	case VMUnrecoverable:
		if v.Op != nil {
			return "unrecoverable with an op"
		}
	default:
		return "unknown state"
	}
	return ""
}

func (s *State) checkGroup(name string) error {
	g := s.Groups[name]
	if g == nil || g.Name != name {
		return fmt.Errorf("group %s: missing or misnamed", name)
	}
	if !slices.IsSorted(g.Members) || len(slices.Compact(slices.Clone(g.Members))) != len(g.Members) {
		return fmt.Errorf("group %s: members not sorted and unique: %v", name, g.Members)
	}
	for _, m := range g.Members {
		if v := s.VMs[m]; v == nil || groupOf(v.VMConfig) != name {
			return fmt.Errorf("group %s: member %s missing or in another group", name, m)
		}
	}
	for i := 1; i < len(g.Checkpoints); i++ {
		if g.Checkpoints[i].Seq >= g.Checkpoints[i-1].Seq {
			return fmt.Errorf("group %s: checkpoints not newest first", name)
		}
	}
	rb := g.Rollback
	if rb == nil {
		return nil
	}
	if rb.Unpausing {
		// The group is unpaused only when every member was restored
		// from the one checkpoint.
		for _, m := range g.Members {
			v := s.VMs[m]
			if (v.State != VMUnpausing && v.State != VMRunning) || v.Seq != rb.Seq {
				return fmt.Errorf("group %s: unpausing while %s is %s from checkpoint %d, not %d", name, m, v.State, v.Seq, rb.Seq)
			}
		}
	}
	return nil
}
