package core

import (
	"fmt"
	"slices"
)

// This file is the VM inventory (register, unregister) and the agents' vm.failed
// reports.

func (m *machine) vm(name string) (*VM, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty VM name", ErrInvalid)
	}
	v := m.s.VMs[name]
	if v == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownVM, name)
	}
	return v, nil
}

func (m *machine) onRegistered(in VMRegistered) error {
	c := in.Config
	if c.Policy == "" {
		c.Policy = PolicyRestore
	}
	if err := m.checkRegistration(c, in.Host); err != nil {
		return err
	}
	gname := groupOf(c)
	v := m.s.VMs[c.Name]
	if v != nil && groupOf(v.VMConfig) != gname {
		if old := m.s.Groups[groupOf(v.VMConfig)]; busyGroup(old) {
			return fmt.Errorf("%w: group %s of VM %s is being rolled back", ErrBusy, old.Name, c.Name)
		}
		m.leaveGroup(v)
	}
	if v == nil {
		v = &VM{State: VMUnplaced}
		m.s.VMs[c.Name] = v
	}
	m.touchVM(c.Name)
	v.VMConfig = c
	if in.Host != "" && v.Host == "" && (v.State == VMUnplaced || v.State == VMUnrecoverable) {
		v.Host, v.State, v.Reason = in.Host, VMRunning, ""
	}
	g := m.group(gname)
	if !slices.Contains(g.Members, c.Name) {
		m.touchGroup(gname)
		g.Members = append(g.Members, c.Name)
		slices.Sort(g.Members)
	}
	return nil
}

// checkRegistration refuses a VM configuration c (registered as running on
// host, if set) that is invalid, whose name or group clashes, or whose group
// is busy rolling back.
func (m *machine) checkRegistration(c VMConfig, host string) error {
	switch {
	case c.Name == "":
		return fmt.Errorf("%w: VM without a name", ErrInvalid)
	case c.MemoryMiB <= 0:
		return fmt.Errorf("%w: VM %s memory_mib %d", ErrInvalid, c.Name, c.MemoryMiB)
	case c.Policy != PolicyRestore && c.Policy != PolicyRestoreOrCold && c.Policy != PolicyNone:
		return fmt.Errorf("%w: VM %s policy %q", ErrInvalid, c.Name, c.Policy)
	}
	gname := groupOf(c)
	// A VM without a group is the group named after it: a group of that
	// name must not have other members, nor may a lone VM be named after a
	// group.
	if g := m.s.Groups[gname]; g != nil {
		for _, other := range g.Members {
			if o := m.s.VMs[other]; other != c.Name && (o.Group == "" || c.Group == "") {
				return fmt.Errorf("%w: VM %s in group %q: the name is taken by VM %s", ErrInvalid, c.Name, gname, other)
			}
		}
	}
	if o := m.s.VMs[c.Group]; c.Group != "" && o != nil && o.Group == "" {
		return fmt.Errorf("%w: group %q of VM %s is the name of a VM without a group", ErrInvalid, c.Group, c.Name)
	}
	if host != "" {
		if _, err := m.host(host); err != nil {
			return err
		}
	}
	if g := m.s.Groups[gname]; busyGroup(g) {
		return fmt.Errorf("%w: group %s is being rolled back", ErrBusy, gname)
	}
	return nil
}

// busyGroup reports whether g (nil: no such group) is rolling back or
// draining: its membership must not change meanwhile.
func busyGroup(g *Group) bool { return g != nil && (g.Rollback != nil || g.Drain != nil) }

// group returns the group named name, creating it.
func (m *machine) group(name string) *Group {
	g := m.s.Groups[name]
	if g == nil {
		m.touchGroup(name)
		g = &Group{Name: name}
		m.s.Groups[name] = g
	}
	return g
}

// leaveGroup removes v from its group; a group left with no member and no
// checkpoint is forgotten.
func (m *machine) leaveGroup(v *VM) {
	name := groupOf(v.VMConfig)
	g := m.s.Groups[name]
	m.touchGroup(name)
	g.Members = slices.DeleteFunc(g.Members, func(s string) bool { return s == v.Name })
	if len(g.Members) == 0 && len(g.Checkpoints) == 0 {
		delete(m.s.Groups, name)
	}
}

func (m *machine) onUnregistered(in VMUnregistered) error {
	v, err := m.vm(in.VM)
	if err != nil {
		return err
	}
	if g := m.s.Groups[groupOf(v.VMConfig)]; g.Rollback != nil || g.Drain != nil {
		return fmt.Errorf("%w: group %s of VM %s is being rolled back", ErrBusy, g.Name, v.Name)
	}
	m.touchVM(v.Name)
	m.leaveGroup(v)
	delete(m.s.VMs, v.Name)
	// Stale copies of it are no longer ours to destroy, nor its memory
	// ours to reserve.
	for name, h := range m.s.Hosts {
		if h.Cleanup[v.Name] != nil || h.Reserved[v.Name] != 0 {
			m.touchHost(name)
			delete(h.Cleanup, v.Name)
			delete(h.Reserved, v.Name)
		}
	}
	return nil
}

// onVMFailed: a domain died on a host without our command. The VM's group is
// rolled back as if its host were lost, but the host, which reported it, is
// not fenced.
func (m *machine) onVMFailed(in VMFailed) error {
	v, err := m.vm(in.VM)
	if err != nil {
		return err
	}
	if _, err := m.host(in.Host); err != nil {
		return err
	}
	if v.Host != in.Host {
		return fmt.Errorf("%w: vm.failed of %s on %s, believed on %q", ErrStale, v.Name, in.Host, v.Host)
	}
	switch v.State {
	case VMRunning, VMRestored, VMUnpausing:
		if v.Op != nil { // an unpause in flight: its answer no longer matters
			v.Op = nil
		}
		// The crashed domain may linger: keep Host so that it is
		// destroyed before the VM is restored anywhere.
		m.lost(v, fmt.Sprintf("vm %s failed on %s: %s", v.Name, in.Host, in.Reason), true)
	}
	return nil
}
