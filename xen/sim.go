package xen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"
)

// Sim is a simulated hypervisor: one value per simulated host. Its domains
// live in memory and run the deterministic workload of sim_workload.go; its
// save images are real files of the domains' full memory size. The zero
// value is ready for use; the exported fields may be set before first use
// and not changed afterwards. Methods are safe for concurrent use, and a
// long Save or Restore blocks no other call.
//
// Sim follows real Xen where it matters to a supervisor: a restored domain
// gets a new id, names are unique per host, memory is accounted, toolstack
// pauses nest, and a paused domain cannot be saved (its guest cannot
// acknowledge the suspend request).
type Sim struct {
	Host string           // reported by HostInfo; "sim" when empty
	Now  func() time.Time // the clock; time.Now when nil
	// Rate is the workload's progress in units per second of running time;
	// 1000 when zero.
	Rate uint64
	// TotalMemoryMiB is the host's memory; 4096 when zero. Dom0MemoryMiB is
	// kept back for dom0; 1536 when zero (as in the nested Xen lab).
	TotalMemoryMiB uint64
	Dom0MemoryMiB  uint64

	mu     sync.Mutex
	nextID int
	doms   map[string]*simDomain
}

var _ Hypervisor = (*Sim)(nil)

// simDomain is one simulated domain. Its counter is base plus the units
// earned by ran, its running time since it was created or restored; every
// state change first adds the time run since `since` to ran (settle), so a
// pause freezes the counter exactly and nothing is lost to rounding.
type simDomain struct {
	name, uuid string
	id         int
	cfg        *Config
	memMiB     uint64
	vcpus      int
	seed       uint64
	pauses     int  // toolstack pauses; Xen counts them
	suspended  bool // a save is in progress
	crashed    bool
	base       uint64
	ran        time.Duration
	since      time.Time
}

func (d *simDomain) running() bool {
	return d.pauses == 0 && !d.suspended && !d.crashed
}

// settle adds the running time since the last settle to ran.
func (d *simDomain) settle(now time.Time) {
	if d.running() && now.After(d.since) {
		d.ran += now.Sub(d.since)
	}
	d.since = now
}

func (d *simDomain) progress(rate uint64) uint64 { return d.base + unitsFor(d.ran, rate) }

func (d *simDomain) flags() string {
	switch {
	case d.crashed:
		return "---sc-"
	case d.suspended: // shut down, reason "suspend", as xl shows it
		return "---ss-"
	case d.pauses > 0:
		return "--p---"
	}
	return "r-----"
}

func (s *Sim) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Sim) rate() uint64 {
	if s.Rate == 0 {
		return 1000
	}
	return s.Rate
}

func (s *Sim) totalMiB() uint64 {
	if s.TotalMemoryMiB == 0 {
		return 4096
	}
	return s.TotalMemoryMiB
}

func (s *Sim) dom0MiB() uint64 {
	if s.Dom0MemoryMiB == 0 {
		return 1536
	}
	return s.Dom0MemoryMiB
}

// get finds a domain by name or numeric id; s.mu must be held.
func (s *Sim) get(verb, dom string) (*simDomain, error) {
	if d, ok := s.doms[dom]; ok {
		return d, nil
	}
	for _, d := range s.doms {
		if fmt.Sprint(d.id) == dom {
			return d, nil
		}
	}
	return nil, fmt.Errorf("sim %s %s: %w", verb, dom, ErrDomainNotFound)
}

// usedMiB is the memory of all domains; s.mu must be held.
func (s *Sim) usedMiB() uint64 {
	var used uint64
	for _, d := range s.doms {
		used += d.memMiB
	}
	return used
}

func (s *Sim) freeMiB() uint64 {
	used := s.dom0MiB() + s.usedMiB()
	if used > s.totalMiB() {
		return 0
	}
	return s.totalMiB() - used
}

func (s *Sim) domain(d *simDomain) Domain {
	typ := d.cfg.Type
	if typ == "" {
		typ = "pv"
	}
	return Domain{
		Name: d.name, ID: d.id, UUID: d.uuid, Type: typ,
		State: StateFromFlags(d.flags()), Flags: d.flags(),
		MemoryMiB: d.memMiB, VCPUs: d.vcpus, CPUTime: d.ran, Progress: d.progress(s.rate()),
	}
}

// List returns the domains, each settled to now, ordered by id.
func (s *Sim) List(ctx context.Context) ([]Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, simCtxErr("list", "", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]Domain, 0, len(s.doms))
	for _, d := range s.doms {
		d.settle(now)
		out = append(out, s.domain(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Progress returns a domain's workload counter now.
func (s *Sim) Progress(dom string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.get("progress", dom)
	if err != nil {
		return 0, err
	}
	d.settle(s.now())
	return d.progress(s.rate()), nil
}

// Pause pauses a domain; a paused domain stays paused once (the interface's
// idempotent contract; XLPause is xl's nesting one).
func (s *Sim) Pause(ctx context.Context, dom string) error {
	return s.update(ctx, "pause", dom, func(d *simDomain) error {
		if d.crashed || d.suspended {
			return fmt.Errorf("sim pause %s: domain is %s: %w", d.name, StateFromFlags(d.flags()), ErrDomainNotAlive)
		}
		if d.pauses == 0 {
			d.pauses = 1
		}
		return nil
	})
}

// Unpause undoes all pauses of a domain.
func (s *Sim) Unpause(ctx context.Context, dom string) error {
	return s.update(ctx, "unpause", dom, func(d *simDomain) error {
		if d.crashed || d.suspended {
			return fmt.Errorf("sim unpause %s: domain is %s: %w", d.name, StateFromFlags(d.flags()), ErrDomainNotAlive)
		}
		d.pauses = 0
		return nil
	})
}

// ErrNotPaused is what XLUnpause reports for a domain that is not paused;
// real xl prints an error for it and still exits 0.
var ErrNotPaused = errors.New("domain is not paused")

// XLPause pauses a domain as `xl pause` does: pauses nest.
func (s *Sim) XLPause(ctx context.Context, dom string) error {
	return s.update(ctx, "pause", dom, func(d *simDomain) error { d.pauses++; return nil })
}

// XLUnpause undoes one pause, as `xl unpause` does.
func (s *Sim) XLUnpause(ctx context.Context, dom string) error {
	return s.update(ctx, "unpause", dom, func(d *simDomain) error {
		if d.pauses == 0 {
			return fmt.Errorf("sim unpause %s: %w", d.name, ErrNotPaused)
		}
		d.pauses--
		return nil
	})
}

// Suspend leaves a domain as a save that was killed half way leaves it:
// suspended, not running, and deaf to unpause. The fake xl uses it so that a
// killed fake save has the real one's effect.
func (s *Sim) Suspend(ctx context.Context, dom string) error {
	return s.update(ctx, "suspend", dom, func(d *simDomain) error { d.suspended = true; return nil })
}

// Crash makes a domain crash the way a guest kernel panic does with
// on_crash="preserve": it stays listed, frozen, until destroyed.
func (s *Sim) Crash(ctx context.Context, dom string) error {
	return s.update(ctx, "crash", dom, func(d *simDomain) error { d.crashed = true; return nil })
}

// update settles a domain, applies f, and restarts its clock.
func (s *Sim) update(ctx context.Context, verb, dom string, f func(*simDomain) error) error {
	if err := ctx.Err(); err != nil {
		return simCtxErr(verb, dom, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.get(verb, dom)
	if err != nil {
		return err
	}
	now := s.now()
	d.settle(now)
	err = f(d)
	d.since = now
	return err
}

// Destroy removes a domain at once.
func (s *Sim) Destroy(ctx context.Context, dom string) error {
	if err := ctx.Err(); err != nil {
		return simCtxErr("destroy", dom, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.get("destroy", dom)
	if err != nil {
		return err
	}
	delete(s.doms, d.name)
	return nil
}

// HostInfo reports the simulated host's memory.
func (s *Sim) HostInfo(ctx context.Context) (HostInfo, error) {
	if err := ctx.Err(); err != nil {
		return HostInfo{}, simCtxErr("info", "", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	host := s.Host
	if host == "" {
		host = "sim"
	}
	return HostInfo{Host: host, XenVersion: "4.17.7-sim", NrCPUs: 2, TotalMemoryMiB: s.totalMiB(), FreeMemoryMiB: s.freeMiB()}, nil
}

// Create boots a domain from an xl config file: its workload starts at 0.
func (s *Sim) Create(ctx context.Context, cfgPath string) error {
	if err := ctx.Err(); err != nil {
		return simCtxErr("create", cfgPath, err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return fmt.Errorf("sim create %s: %w", cfgPath, err)
	}
	uuid := cfg.UUID
	if uuid == "" {
		uuid = newUUID()
	}
	_, err = s.add("create", cfg, uuid, seedOf(uuid), 0, false)
	return err
}

// add inserts a new domain built from cfg; defaults follow libxl's.
func (s *Sim) add(verb string, cfg *Config, uuid string, seed, progress uint64, paused bool) (*simDomain, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("sim %s: config has no name: %w", verb, ErrBadArgument)
	}
	mem, vcpus := cfg.MemoryMiB, cfg.VCPUs
	if mem == 0 {
		mem = 32 // libxl's default when memory is unset
	}
	if vcpus == 0 {
		vcpus = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.doms == nil {
		s.doms = map[string]*simDomain{}
	}
	if _, ok := s.doms[cfg.Name]; ok {
		return nil, fmt.Errorf("sim %s %s: %w", verb, cfg.Name, ErrDomainExists)
	}
	if free := s.freeMiB(); mem > free {
		return nil, fmt.Errorf("sim %s %s: needs %d MiB, %d MiB free: %w", verb, cfg.Name, mem, free, ErrNoMemory)
	}
	s.nextID++
	d := &simDomain{
		name: cfg.Name, uuid: uuid, id: s.nextID, cfg: cfg, memMiB: mem, vcpus: vcpus,
		seed: seed, base: progress, since: s.now(),
	}
	if paused {
		d.pauses = 1
	}
	s.doms[d.name] = d
	return d, nil
}

// seedOf derives a workload seed from a domain's UUID, so that two domains
// never share page contents.
func seedOf(uuid string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(uuid))
	return mix64(h.Sum64())
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// simCtxErr shapes a context error like the xl driver does, so callers see
// the same errors from either driver.
func simCtxErr(verb, subject string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sim %s %s: %w: %w", verb, subject, ErrTimeout, err)
	}
	return fmt.Errorf("sim %s %s: %w", verb, subject, err)
}
