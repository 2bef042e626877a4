package core

import "fmt"

// This file takes command results back in. A result counts only if it answers
// the latest send of an op still awaited (same kind, target and epoch);
// anything else is stale: a retry, a new leader or a cancellation superseded it.

func (m *machine) onResult(r Result) error {
	switch r.Outcome {
	case OutcomeOK, OutcomeRetryable, OutcomeHostNotReady, OutcomePermanent, OutcomeImageCorrupt:
	default:
		return fmt.Errorf("%w: outcome %q", ErrInvalid, r.Outcome)
	}
	switch r.Kind {
	case OpFence:
		return m.onFenceResult(r)
	case OpDestroy:
		return m.onDestroyResult(r)
	case OpRestore, OpColdStart, OpUnpause:
		return m.onVMResult(r)
	case OpCheckpoint:
		return m.onCheckpointResult(r)
	}
	return fmt.Errorf("%w: result kind %q", ErrInvalid, r.Kind)
}

// awaits reports whether r answers op: the latest send of an op still in
// flight, of the same kind and epoch, on the same host when r names one.
func awaits(op *Op, r Result) bool {
	return inFlight(op) && op.Kind == r.Kind && op.Epoch == r.Epoch && (r.Host == "" || op.Host == r.Host)
}

func staleResult(r Result) error {
	return fmt.Errorf("%w: %s result for host %q vm %q group %q epoch %s", ErrStale, r.Kind, r.Host, r.VM, r.Group, r.Epoch)
}

func (m *machine) onFenceResult(r Result) error {
	h, err := m.host(r.Host)
	if err != nil {
		return err
	}
	if !awaits(h.Fence, r) {
		return staleResult(r)
	}
	m.fenceResult(h, r)
	return nil
}

// onDestroyResult answers a VM's own destroy, or a host's cleanup of a copy
// that must not run there.
func (m *machine) onDestroyResult(r Result) error {
	if v := m.s.VMs[r.VM]; v != nil && awaits(v.Op, r) {
		m.destroyResult(v, r)
		return nil
	}
	h := m.s.Hosts[r.Host]
	if h == nil || !awaits(h.Cleanup[r.VM], r) {
		return staleResult(r)
	}
	m.touchHost(h.Name)
	if r.Outcome != OutcomeOK {
		m.retryLater(h.Cleanup[r.VM])
		return nil
	}
	delete(h.Cleanup, r.VM)
	if v := m.s.VMs[r.VM]; v != nil && v.Host == h.Name {
		// A copy believed there (only the fence of a fatal fault
		// destroys such: fault.go) is gone.
		m.gone(v)
	}
	return nil
}

func (m *machine) onVMResult(r Result) error {
	v := m.s.VMs[r.VM]
	if v == nil {
		return fmt.Errorf("%w: %q", ErrUnknownVM, r.VM)
	}
	if !awaits(v.Op, r) {
		return staleResult(r)
	}
	if r.Kind == OpUnpause {
		m.unpauseResult(v, r)
	} else {
		m.restoreResult(v, r)
	}
	return nil
}

func (m *machine) onCheckpointResult(r Result) error {
	g := m.s.Groups[r.Group]
	if g == nil {
		return fmt.Errorf("%w: %q", ErrUnknownGroup, r.Group)
	}
	if g.Drain == nil || g.Drain.Accepted || !awaits(g.Drain.Op, r) {
		return staleResult(r)
	}
	m.checkpointResult(g, r)
	return nil
}

func (m *machine) fenceResult(h *Host, r Result) {
	m.touchHost(h.Name)
	if r.Outcome == OutcomeOK {
		m.fenced(h, FenceMethodCommand, r.Epoch)
		return
	}
	// Without a fence command, or if it fails, a silent host is fenced by
	// its deadline, a host with a fatal fault by its agent if it can;
	// retrying helps a transient failure of the command only.
	m.retryLater(h.Fence)
	h.Fence.Abandoned = !retryable(r.Outcome)
	// The error says what fences the host instead (fault.go fenceOutlook).
	m.publish(Event{Type: EventFenceFailed, Host: h.Name, Epoch: r.Epoch, Error: joinText(r.Error, m.fenceOutlook(h)),
		Attempt: h.Fence.Failures, Retryable: retryable(r.Outcome)})
}

// retryable reports whether trying the same command again may succeed.
func retryable(o Outcome) bool { return o == OutcomeRetryable || o == OutcomeHostNotReady }

func (m *machine) destroyResult(v *VM, r Result) {
	m.touchVM(v.Name)
	if r.Outcome != OutcomeOK {
		// The copy may still run: retry, however long it takes (the
		// backoff is capped); if the host dies meanwhile, fencing ends it.
		m.retryLater(v.Op)
		return
	}
	host := v.Op.Host
	v.Op = nil
	if v.Host == host {
		m.gone(v)
	}
	if h := m.s.Hosts[host]; h != nil && h.Reserved[v.Name] != 0 {
		m.touchHost(host)
		delete(h.Reserved, v.Name)
	}
}

func (m *machine) restoreResult(v *VM, r Result) {
	m.touchVM(v.Name)
	g := m.s.Groups[groupOf(v.VMConfig)]
	op := v.Op
	h := m.s.Hosts[op.Host]
	if r.Outcome == OutcomeOK {
		v.Op, v.Host, v.Seq, v.State, v.HostFailures, v.Missing = nil, op.Host, op.Seq, VMRestored, 0, 0
		m.readyAgain(h)
		return
	}
	m.s.Counters.RestoreFails++
	m.publish(Event{Type: EventVMRestartFailed, VM: v.Name, Group: v.Group, Host: op.Host, Attempt: v.Attempts,
		Error: r.Error, Retryable: retryable(r.Outcome), Epoch: r.Epoch})
	if r.Outcome == OutcomeHostNotReady {
		// The host awaits reconciliation (ready.go): not v's attempt,
		// counted when it was sent, nor a failure of v on that host.
		// v is placed again, elsewhere while the host is held out; the
		// host destroys whatever the refused command may have left.
		v.Attempts = max(v.Attempts-1, 0)
		m.notReady(h)
		m.release(h, v.Name)
		v.Op, v.State = nil, VMPending
		m.cleanup(h, v.Name, "cleanup")
		return
	}
	if r.Outcome == OutcomeImageCorrupt && op.Kind == OpRestore {
		m.release(h, v.Name)
		v.Op, v.State = nil, VMPending
		m.retarget(g, op.Seq)
		return
	}
	if v.Attempts >= m.p.MaxAttempts {
		m.release(h, v.Name)
		v.Op = nil
		m.cleanup(h, v.Name, "cleanup")
		m.failRollback(g, fmt.Sprintf("vm %s: %d restore attempts failed, last on %s: %s", v.Name, v.Attempts, op.Host, r.Error))
		return
	}
	v.HostFailures++
	if r.Outcome == OutcomePermanent || r.Outcome == OutcomeImageCorrupt || v.HostFailures >= m.p.RestoreAttemptsPerHost {
		// Another host: leftovers of the failed restore are destroyed,
		// and the host is not used for v again until that is done.
		m.release(h, v.Name)
		v.Tried = append(v.Tried, op.Host)
		v.Op, v.State, v.HostFailures = nil, VMPending, 0
		m.cleanup(h, v.Name, "cleanup")
		return
	}
	m.retryLater(op)
}

func (m *machine) release(h *Host, vm string) {
	if h != nil && h.Reserved[vm] != 0 {
		m.touchHost(h.Name)
		delete(h.Reserved, vm)
	}
}

func (m *machine) unpauseResult(v *VM, r Result) {
	m.touchVM(v.Name)
	g := m.s.Groups[groupOf(v.VMConfig)]
	h := m.s.Hosts[v.Op.Host]
	if r.Outcome == OutcomeOK {
		m.readyAgain(h)
		m.unpaused(g, v)
		return
	}
	if r.Outcome == OutcomeHostNotReady {
		// The host fenced itself after v was restored there: its fence
		// destroyed that copy, or paused it for good. The group goes back
		// to its checkpoint, as after any unpause that cannot succeed,
		// but v is not at fault: no attempt of v's is counted.
		m.notReady(h)
		m.restartRollback(g, fmt.Sprintf("unpause of %s on %s refused: %s", v.Name, v.Op.Host, r.Error))
		return
	}
	m.retryLater(v.Op)
	if r.Outcome == OutcomeRetryable && v.Op.Failures < m.p.RestoreAttemptsPerHost {
		return
	}
	// This copy will not run: the others may, so the whole group goes
	// back to the checkpoint, and this counts as an attempt of v's.
	v.Attempts++
	if v.Attempts >= m.p.MaxAttempts {
		m.failRollback(g, fmt.Sprintf("vm %s: unpause on %s failed: %s", v.Name, v.Op.Host, r.Error))
		return
	}
	m.restartRollback(g, fmt.Sprintf("unpause of %s on %s failed: %s", v.Name, v.Op.Host, r.Error))
}

func (m *machine) checkpointResult(g *Group, r Result) {
	m.touchGroup(g.Name)
	d := g.Drain
	if r.Outcome == OutcomeOK {
		d.Accepted = true
		return
	}
	m.retryLater(d.Op)
	if d.Op.Failures >= m.p.MaxAttempts {
		g.Drain = nil
		m.publish(Event{Type: EventDrainFailed, Group: g.Name, Host: d.Host, Error: r.Error,
			Reason: fmt.Sprintf("%s: %d checkpoint requests failed", d.Reason, d.Op.Failures)})
	}
}
