package xen

import (
	"context"
	"fmt"
	"os"
)

// Save writes the domain's memory image to path. Like xl, it first suspends
// the guest, so the counter stands still while the image is written; the
// image holds the counter at that moment. Then the mode applies: keep
// running resumes the guest (the downtime is not counted as progress),
// leave paused keeps it paused, stop destroys it. On any failure the guest
// is resumed, as xl does ("Failed to save domain, resuming domain"), and no
// file is left at path.
func (s *Sim) Save(ctx context.Context, dom, path string, opts SaveOptions) error {
	if err := ctx.Err(); err != nil {
		return simCtxErr("save", dom, err)
	}
	if opts.Mode < SaveStop || opts.Mode > SaveLeavePaused {
		return fmt.Errorf("sim save %s: unknown save mode %d: %w", dom, opts.Mode, ErrBadArgument)
	}
	var cfgText []byte
	if opts.ConfigPath != "" {
		cfg, err := LoadConfig(opts.ConfigPath)
		if err != nil {
			return fmt.Errorf("sim save %s: %w", dom, err)
		}
		cfgText = cfg.Marshal()
	}

	s.mu.Lock()
	d, err := s.get("save", dom)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if !d.running() {
		s.mu.Unlock()
		return fmt.Errorf("sim save %s: domain is %s, so it cannot acknowledge the suspend request: %w",
			dom, StateFromFlags(d.flags()), ErrGuestUnresponsive)
	}
	d.settle(s.now())
	d.suspended = true
	if cfgText == nil {
		cfgText = d.cfg.Marshal()
	}
	h := ImageHeader{Name: d.name, UUID: d.uuid, MemoryBytes: d.memMiB << 20,
		Progress: d.progress(s.rate()), Seed: d.seed, Config: cfgText}
	s.mu.Unlock()

	werr := saveImageFile(ctx, path, &h, opts.Mode == SaveStop)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.doms[d.name] != d { // destroyed while we wrote
		if werr == nil {
			os.Remove(path)
		}
		return fmt.Errorf("sim save %s: domain was destroyed during the save: %w", dom, ErrDomainNotFound)
	}
	d.since = s.now() // suspended time is no running time
	d.suspended = false
	if werr != nil {
		if ctx.Err() != nil {
			return simCtxErr("save", dom, ctx.Err())
		}
		return fmt.Errorf("sim save %s to %s: %w", dom, path, werr)
	}
	switch opts.Mode {
	case SaveLeavePaused:
		d.pauses++
	case SaveStop:
		delete(s.doms, d.name)
	}
	return nil
}

// Restore reads and verifies a whole image, then builds a domain whose
// counter continues from exactly the saved value. With a config path the
// name (and UUID, if it sets one) come from that file, else from the image;
// the workload's seed always comes from the image, because it is the
// guest's memory that continues.
func (s *Sim) Restore(ctx context.Context, path string, opts RestoreOptions) error {
	if err := ctx.Err(); err != nil {
		return simCtxErr("restore", path, err)
	}
	var cfg *Config
	if opts.ConfigPath != "" {
		c, err := LoadConfig(opts.ConfigPath)
		if err != nil {
			return fmt.Errorf("sim restore %s: %w", path, err)
		}
		cfg = c
	}
	h, err := VerifyImage(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return simCtxErr("restore", path, ctx.Err())
		}
		return fmt.Errorf("sim restore: %w", err)
	}
	uuid := h.UUID
	if cfg == nil {
		if cfg, err = ParseConfig(h.Config); err != nil {
			return fmt.Errorf("sim restore %s: config in image: %v: %w", path, err, ErrBadImage)
		}
		cfg.Set("name", h.Name)
	} else if cfg.UUID != "" {
		uuid = cfg.UUID
	} else {
		uuid = newUUID()
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = h.MemoryBytes >> 20
	}
	if cfg.MemoryMiB<<20 != h.MemoryBytes {
		return fmt.Errorf("sim restore %s: config says %d MiB, image holds %d bytes: %w",
			path, cfg.MemoryMiB, h.MemoryBytes, ErrBadArgument)
	}
	_, err = s.add("restore", cfg, uuid, h.Seed, h.Progress, opts.Paused)
	return err
}
