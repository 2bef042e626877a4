//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/xen"
)

// advanceCrash moves the real failure on: crash a host that runs VMs when
// the cluster is steady, wait for its recovery and check it, bring the
// host back as a new incarnation, and wait for it to rejoin.
func (s *soak) advanceCrash(now time.Time) {
	cr := s.crash
	if cr == nil {
		if s.draining || now.Before(s.nextCrash) {
			return
		}
		steady, gs := s.checker.isSteady()
		if !steady {
			return
		}
		var cands []string
		for _, h := range s.up(hosts) {
			for _, vm := range vmNames() {
				if g := gs[vm]; len(g) == 1 && g[0].host == h && !slices.Contains(cands, h) {
					cands = append(cands, h)
				}
			}
		}
		if len(cands) == 0 {
			return
		}
		slices.Sort(cands)
		h := s.pick(cands)
		cr = &crash{host: h, at: time.Now(), mark: s.c.story.mark()}
		for _, vm := range vmNames() {
			if g := gs[vm]; len(g) == 1 && g[0].host == h {
				cr.vms = append(cr.vms, vm)
			}
		}
		s.checker.addCrash(cr)
		s.c.crashHost(h)
		s.c.logf("soak: REAL FAILURE %d: host %s crashed with %v", len(s.crashes)+1, h, cr.vms)
		s.crash, s.crashes = cr, append(s.crashes, cr)
		return
	}
	var recoveredAt, backAt time.Time
	var verdict string
	s.checker.update(func() { recoveredAt, backAt, verdict = cr.recoveredAt, cr.backAt, cr.verdict })
	switch {
	case verdict == "" && !recoveredAt.IsZero():
		verdict = "recovered"
		if err := s.verifyRestore(cr); err != nil {
			verdict = err.Error()
			s.checker.update(func() { s.checker.find("NOT RECOVERED from the latest checkpoint: crash of %s: %v", cr.host, err) })
		}
		s.checker.update(func() { cr.verdict = verdict })
	case verdict == "" && now.Sub(cr.at) > s.lostAfter():
		verdict = fmt.Sprintf("not every VM ran exactly once %s after the crash", s.lostAfter())
		s.checker.update(func() {
			cr.verdict = verdict
			s.checker.find("NOT RECOVERED: crash of %s: %s", cr.host, verdict)
		})
	case verdict == "":
		return
	case backAt.IsZero():
		// Down a while longer, then powered on again.
		if now.Sub(recoveredAt) < 10*time.Second && now.Sub(cr.at) < s.lostAfter()+10*time.Second {
			return
		}
		s.rejoin = s.c.story.mark()
		s.c.startAgent(cr.host)
		s.checker.update(func() { cr.backAt = time.Now() })
		s.c.logf("soak: host %s powered on again: a new agent, no domains", cr.host)
	default:
		rejoined := s.c.story.has(s.rejoin, newIncarnation(cr.host))
		if !rejoined && now.Sub(backAt) < time.Minute {
			return
		}
		if !rejoined {
			s.checker.update(func() { s.checker.find("host %s did not rejoin (node.recovered, new incarnation) within 1m", cr.host) })
		}
		s.crash = nil
		s.nextCrash = now.Add(s.between(20*time.Second, 60*time.Second))
	}
}

// verifyRestore checks that each group the crash hit was restored, once,
// from its latest consistent checkpoint: the last one committed before the
// group's restart began, by the event stream, and that each member runs
// from the progress its image in that checkpoint holds.
func (s *soak) verifyRestore(cr *crash) error {
	var hit []string
	for _, v := range workload {
		if slices.Contains(cr.vms, v.name) && !slices.Contains(hit, v.group) {
			hit = append(hit, v.group)
		}
	}
	// The events of the last restarts may still be on their way to the
	// test's reader.
	deadline := time.Now().Add(30 * time.Second)
	for _, g := range hit {
		for _, vm := range vmNames(g) {
			for !s.c.story.has(cr.mark, on(events.TypeVMRestarted, vm)) {
				if time.Now().After(deadline) {
					return fmt.Errorf("%s runs again but no vm.restarted of it was published", vm)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	all := s.c.story.since(0)
	gs, err := s.c.readGuests()
	if err != nil {
		return err
	}
	for _, g := range hit {
		var latest events.CheckpointCommitted
		began := false
		for i, ev := range all {
			if i >= cr.mark && ev.Type == events.TypeVMRestarting && slices.Contains(vmNames(g), ev.EntityID()) {
				began = true
				break
			}
			if ev.Type == events.TypeCheckpointCommitted && ev.EntityID() == g {
				if err := json.Unmarshal(ev.Data, &latest); err != nil {
					return fmt.Errorf("checkpoint.committed of %s: %w", g, err)
				}
			}
		}
		if !began {
			return fmt.Errorf("group %s was restored without a vm.restarting", g)
		}
		if latest.Seq == 0 {
			return fmt.Errorf("group %s was restored with no checkpoint committed before", g)
		}
		for _, vm := range vmNames(g) {
			var restarts []events.VMRestarted
			for _, ev := range all[cr.mark:] {
				if ev.Type == events.TypeVMRestarted && ev.EntityID() == vm {
					var d events.VMRestarted
					if err := json.Unmarshal(ev.Data, &d); err != nil {
						return fmt.Errorf("vm.restarted of %s: %w", vm, err)
					}
					restarts = append(restarts, d)
				}
			}
			if len(restarts) == 0 {
				return fmt.Errorf("%s was not restarted after the crash", vm)
			}
			// More than one restore is right when another member was
			// lost while the group was unpausing (a second fault during
			// the recovery): the core restarts the whole rollback, to
			// the same checkpoint (seen in the demo soak: "host n3
			// failed" while n2's crash was being recovered). Every
			// restore must still be from the latest committed one.
			for _, r := range restarts {
				if r.ColdStart || r.CheckpointSeq != latest.Seq {
					return fmt.Errorf("%s restarted from checkpoint %d (cold start %v); the latest committed of %s was %d", vm, r.CheckpointSeq, r.ColdStart, g, latest.Seq)
				}
			}
			if len(restarts) > 1 {
				s.c.logf("soak: %s restored %d times from %s/%d: its group's rollback was restarted", vm, len(restarts), g, latest.Seq)
			}
			var key string
			for _, img := range latest.Images {
				if img.VM == vm {
					key = img.ImageKey
				}
			}
			h, err := s.imageHeader(key)
			if err != nil {
				return fmt.Errorf("image of %s in %s/%d: %w", vm, g, latest.Seq, err)
			}
			if copies := gs[vm]; len(copies) != 1 || copies[0].base != h.Progress || copies[0].seed != h.Seed {
				return fmt.Errorf("%s runs as %v; checkpoint %s/%d holds progress %d of workload %x", vm, copies, g, latest.Seq, h.Progress, h.Seed)
			}
		}
		s.c.logf("soak: group %s was restored from %s/%d, its latest committed checkpoint", g, g, latest.Seq)
	}
	return nil
}

// imageHeader reads an image's header from the store (the test's own
// reading; the store may answer slowly under the faults, so it asks again
// for up to 30 s).
func (s *soak) imageHeader(key string) (xen.ImageHeader, error) {
	if key == "" {
		return xen.ImageHeader{}, fmt.Errorf("no image recorded")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := s.readImageHeader(key)
		if err == nil || time.Now().After(deadline) {
			return h, err
		}
		time.Sleep(time.Second)
	}
}

func (s *soak) readImageHeader(key string) (xen.ImageHeader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rc, _, err := s.c.images.Open(ctx, key)
	if err != nil {
		return xen.ImageHeader{}, err
	}
	defer rc.Close()
	f, err := os.CreateTemp(s.c.dir, "image-*")
	if err != nil {
		return xen.ImageHeader{}, err
	}
	defer os.Remove(f.Name())
	_, err = io.Copy(f, io.LimitReader(rc, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return xen.ImageHeader{}, err
	}
	return xen.ReadImageHeader(f.Name())
}
