package xen

import (
	"fmt"
	"time"
)

// SimState is a Sim's domains as plain data. The fake xl keeps it in its
// state directory between invocations (each `xl` call is a new process), so
// it loads a Sim, runs one verb and stores the Sim back; the workload's
// semantics are then exactly the in-process sim's.
type SimState struct {
	NextID  int              `json:"next_id"`
	Domains []SimDomainState `json:"domains"`
}

// SimDomainState is one domain of a SimState.
type SimDomainState struct {
	Name      string        `json:"name"`
	UUID      string        `json:"uuid"`
	ID        int           `json:"id"`
	Config    string        `json:"config"` // xl syntax
	MemoryMiB uint64        `json:"memory_mib"`
	VCPUs     int           `json:"vcpus"`
	Seed      uint64        `json:"seed"`
	Pauses    int           `json:"pauses"`
	Crashed   bool          `json:"crashed,omitempty"`
	Suspended bool          `json:"suspended,omitempty"`
	Base      uint64        `json:"base"`  // progress at create or restore
	Ran       time.Duration `json:"ran"`   // running time since then
	Since     time.Time     `json:"since"` // when Ran was last brought up to date
}

// Export returns the Sim's state, each domain settled to now.
func (s *Sim) Export() SimState {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := SimState{NextID: s.nextID, Domains: []SimDomainState{}}
	for _, d := range s.doms {
		d.settle(now)
		st.Domains = append(st.Domains, SimDomainState{
			Name: d.name, UUID: d.uuid, ID: d.id, Config: string(d.cfg.Marshal()),
			MemoryMiB: d.memMiB, VCPUs: d.vcpus, Seed: d.seed, Pauses: d.pauses,
			Crashed: d.crashed, Suspended: d.suspended, Base: d.base, Ran: d.ran, Since: d.since,
		})
	}
	return st
}

// Import replaces the Sim's domains with st. A domain that was running when
// exported has been running since: its clock continues from Since.
func (s *Sim) Import(st SimState) error {
	doms := make(map[string]*simDomain, len(st.Domains))
	for _, ds := range st.Domains {
		cfg, err := ParseConfig([]byte(ds.Config))
		if err != nil {
			return fmt.Errorf("sim import %s: %w", ds.Name, err)
		}
		if _, dup := doms[ds.Name]; dup || ds.Name == "" {
			return fmt.Errorf("sim import: duplicate or empty domain name %q", ds.Name)
		}
		doms[ds.Name] = &simDomain{
			name: ds.Name, uuid: ds.UUID, id: ds.ID, cfg: cfg, memMiB: ds.MemoryMiB, vcpus: ds.VCPUs,
			seed: ds.Seed, pauses: ds.Pauses, crashed: ds.Crashed, suspended: ds.Suspended,
			base: ds.Base, ran: ds.Ran, since: ds.Since,
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID, s.doms = st.NextID, doms
	return nil
}

// Config returns a copy of a domain's xl config (the fake xl prints it in
// `xl list -l`).
func (s *Sim) Config(dom string) (*Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.get("config", dom)
	if err != nil {
		return nil, err
	}
	return ParseConfig(d.cfg.Marshal())
}
