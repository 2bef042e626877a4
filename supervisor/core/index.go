package core

import (
	"maps"
	"slices"
)

// index is derived from the maps so that an input touches only what it
// concerns: a heartbeat of a quiet cluster must not scan 10,000 VMs. It is
// never persisted; a State loaded from JSON (or built by hand) gets it rebuilt
// on its first Apply. Apply re-indexes every entry it touched (see
// machine.touch*), so an entry changed without being touched would leave the
// index stale: the property test compares the index with a rebuilt one after
// every step.
type index struct {
	// onHost: host -> VMs whose Host or Op.Host is that host.
	onHost map[string]map[string]struct{}
	vmKeys map[string][]string // VM -> the hosts it is listed under
	// busyHosts: hosts that are not healthy, or have a fence or cleanup op.
	busyHosts map[string]struct{}
	// busyGroups: groups with a rollback or drain.
	busyGroups map[string]struct{}
}

func (s *State) index() *index {
	if s.idx == nil {
		s.idx = &index{
			onHost:     map[string]map[string]struct{}{},
			vmKeys:     map[string][]string{},
			busyHosts:  map[string]struct{}{},
			busyGroups: map[string]struct{}{},
		}
		for name := range s.VMs {
			s.idx.vm(s, name)
		}
		for name := range s.Hosts {
			s.idx.host(s, name)
		}
		for name := range s.Groups {
			s.idx.group(s, name)
		}
	}
	return s.idx
}

// vm re-indexes VM name (present or deleted).
func (x *index) vm(s *State, name string) {
	for _, h := range x.vmKeys[name] {
		if set := x.onHost[h]; set != nil {
			delete(set, name)
			if len(set) == 0 {
				delete(x.onHost, h)
			}
		}
	}
	delete(x.vmKeys, name)
	v := s.VMs[name]
	if v == nil {
		return
	}
	var keys []string
	if v.Host != "" {
		keys = append(keys, v.Host)
	}
	if v.Op != nil && v.Op.Host != "" && v.Op.Host != v.Host {
		keys = append(keys, v.Op.Host)
	}
	for _, h := range keys {
		if x.onHost[h] == nil {
			x.onHost[h] = map[string]struct{}{}
		}
		x.onHost[h][name] = struct{}{}
	}
	if keys != nil {
		x.vmKeys[name] = keys
	}
}

func (x *index) host(s *State, name string) {
	h := s.Hosts[name]
	if h != nil && (h.State != HostHealthy || h.Fence != nil || len(h.Cleanup) > 0) {
		x.busyHosts[name] = struct{}{}
	} else {
		delete(x.busyHosts, name)
	}
}

func (x *index) group(s *State, name string) {
	g := s.Groups[name]
	if g != nil && (g.Rollback != nil || g.Drain != nil) {
		x.busyGroups[name] = struct{}{}
	} else {
		delete(x.busyGroups, name)
	}
}

// vmsOn returns the VMs on (or bound for) host, sorted.
func (x *index) vmsOn(host string) []string {
	return slices.Sorted(maps.Keys(x.onHost[host]))
}

// equal compares two indexes, for tests.
func (x *index) equal(y *index) bool {
	if len(x.onHost) != len(y.onHost) {
		return false
	}
	for h, set := range x.onHost {
		if !maps.Equal(set, y.onHost[h]) {
			return false
		}
	}
	return maps.Equal(x.busyHosts, y.busyHosts) && maps.Equal(x.busyGroups, y.busyGroups)
}
