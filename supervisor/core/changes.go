package core

import (
	"maps"
	"slices"
)

// Changes names what Apply changed since the last TakeChanges, so that the
// shell can persist one key per changed host, VM and group (the whole state of
// a 10,000-VM cluster is megabytes; one Apply changes a handful of entries).
// A name listed but absent from the State was deleted. Meta is set when any
// field of Meta but Now changed; Now alone is not worth a write, since the next
// input moves it forward again.
type Changes struct {
	Meta   bool     `json:"meta,omitempty"`
	Hosts  []string `json:"hosts,omitempty"`
	VMs    []string `json:"vms,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Empty reports whether nothing needs persisting.
func (c Changes) Empty() bool {
	return !c.Meta && len(c.Hosts) == 0 && len(c.VMs) == 0 && len(c.Groups) == 0
}

type changeSet struct {
	meta               bool
	hosts, vms, groups map[string]struct{}
}

// TakeChanges returns what changed since the previous call (or since the state
// was built) and forgets it. Names are sorted.
func (s *State) TakeChanges() Changes {
	c := Changes{
		Meta:   s.changed.meta,
		Hosts:  slices.Sorted(maps.Keys(s.changed.hosts)),
		VMs:    slices.Sorted(maps.Keys(s.changed.vms)),
		Groups: slices.Sorted(maps.Keys(s.changed.groups)),
	}
	s.changed = changeSet{}
	return c
}

func mark(set *map[string]struct{}, name string) {
	if *set == nil {
		*set = map[string]struct{}{}
	}
	(*set)[name] = struct{}{}
}
