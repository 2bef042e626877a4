package core

import (
	"fmt"
	"maps"
	"slices"
)

// This file is what operators ask for: maintenance (with a drain), moving a
// VM, restarting one, releasing a quarantined host, resuming after a storm.

func (m *machine) onMaintenance(in Maintenance) error {
	h, err := m.host(in.Host)
	if err != nil {
		return err
	}
	m.touchHost(h.Name)
	h.Maintenance = in.On
	m.publish(Event{Type: EventNodeMaintenance, Host: h.Name, Enabled: in.On, Reason: in.Reason, By: in.By})
	if in.On && in.Drain {
		m.drainHost(h, "maintenance of "+h.Name)
	}
	if !in.On {
		// Back in service: drains not yet rolled back are moot.
		for _, name := range slices.Sorted(maps.Keys(m.flush().busyGroups)) {
			if g := m.s.Groups[name]; g.Drain != nil && g.Drain.Host == h.Name {
				m.touchGroup(name)
				g.Drain = nil
			}
		}
	}
	return nil
}

// drainHost asks for a fresh checkpoint of every group running on h; each is
// then rolled back onto other hosts (h is out of placement), so that the
// move costs the work since that checkpoint only.
func (m *machine) drainHost(h *Host, reason string) {
	for _, name := range m.flush().vmsOn(h.Name) {
		v := m.s.VMs[name]
		if v.Host != h.Name || v.State != VMRunning {
			continue
		}
		m.drain(m.s.Groups[groupOf(v.VMConfig)], reason, h.Name, nil)
	}
}

// drain starts waiting for a checkpoint of g newer than the latest; groups
// busy already, or with a member that must not be restarted, are left alone.
func (m *machine) drain(g *Group, reason, host string, pins map[string]string) bool {
	if g.Rollback != nil || g.Drain != nil {
		return false
	}
	for _, name := range g.Members {
		if v := m.s.VMs[name]; v.Policy == PolicyNone || v.State != VMRunning {
			return false
		}
	}
	var after uint64
	if len(g.Checkpoints) > 0 {
		after = g.Checkpoints[0].Seq
	}
	m.touchGroup(g.Name)
	g.Drain = &Drain{Reason: reason, Host: host, After: after, Pins: pins}
	return true
}

// stepDrain sends a drain's checkpoint request and its retries.
func (m *machine) stepDrain(g *Group) {
	d := g.Drain
	if d == nil {
		return
	}
	if d.Op == nil {
		d.Op = &Op{Kind: OpCheckpoint}
		m.sendCheckpoint(g)
	} else if m.due(d.Op) {
		m.sendCheckpoint(g)
	}
}

func (m *machine) onMove(in MoveVM) error {
	v, err := m.vm(in.VM)
	if err != nil {
		return err
	}
	h, err := m.host(in.Host)
	if err != nil {
		return err
	}
	if !h.placeable() {
		return fmt.Errorf("%w: host %s is %s and takes no work", ErrInvalid, h.Name, h.status())
	}
	if v.Host == h.Name {
		return nil
	}
	if !m.drain(m.s.Groups[groupOf(v.VMConfig)], "move of "+v.Name+" to "+h.Name, "", map[string]string{v.Name: h.Name}) {
		return fmt.Errorf("%w: VM %s (%s) or its group cannot move now", ErrBusy, v.Name, v.State)
	}
	return nil
}

func (m *machine) onRestart(in RestartVM) error {
	v, err := m.vm(in.VM)
	if err != nil {
		return err
	}
	g := m.s.Groups[groupOf(v.VMConfig)]
	if g.Rollback != nil {
		return fmt.Errorf("%w: group %s is being rolled back", ErrBusy, g.Name)
	}
	for _, name := range g.Members {
		if m.s.VMs[name].Policy == PolicyNone {
			return fmt.Errorf("%w: restart policy of %s is none", ErrInvalid, name)
		}
	}
	m.touchGroup(g.Name)
	g.Drain = nil
	m.startRollback(g, "operator restart of "+v.Name, true, nil)
	return nil
}

func (m *machine) onRelease(in ReleaseQuarantine) error {
	h, err := m.host(in.Host)
	if err != nil {
		return err
	}
	m.touchHost(h.Name)
	h.Quarantined, h.Failures = false, nil
	return nil
}

func (m *machine) onResume() error {
	m.s.StormResumed = m.now
	if m.s.Storm != nil {
		m.s.Storm = nil
		m.publish(Event{Type: EventRestartsResumed, Reason: "resumed by an operator"})
	}
	return nil
}

// status is a host's state with its flags, for messages.
func (h *Host) status() string {
	s := string(h.State)
	if h.Maintenance {
		s += ",maintenance"
	}
	if h.Quarantined {
		s += ",quarantined"
	}
	if h.Fault != "" {
		s += ",fault=" + string(h.Fault)
	}
	return s
}
