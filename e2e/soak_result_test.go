//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// soakResult is the last line of a soak.
type soakResult struct {
	Minutes        float64 `json:"minutes"`
	FaultsInjected int     `json:"faults_injected"`
	RealFailures   int     `json:"real_failures"`
	Recovered      int     `json:"recovered"`
	FalseFences    int     `json:"false_fences"`
	DuplicateVMs   int     `json:"duplicate_vms"`
	LostVMs        int     `json:"lost_vms"`
	Panics         int     `json:"panics"`
	MaxRecoveryS   float64 `json:"max_recovery_s"`
}

// teardown ends every fault, stops the cluster, counts, keeps the logs,
// unmounts and closes what the soak opened, prints the result as the last
// line and fails the test on it. It runs even when the test failed.
func (s *soak) teardown() {
	t, c := s.t, s.c
	for _, f := range s.active {
		f.finish() // SIGCONT first: a stopped process would not stop
	}
	s.active = nil
	if s.checker != nil {
		s.checker.stop()
		s.checker.sample(time.Now())
		s.checker.update(func() { s.checker.stopping = time.Now() })
	}
	if err := os.MkdirAll(filepath.Join(s.cfg.out, "logs"), 0o755); err != nil {
		t.Errorf("soak output: %v", err)
	}
	story := c.story
	if story != nil {
		_ = os.WriteFile(filepath.Join(s.cfg.out, "events.txt"), []byte(story.String()), 0o644)
		c.story = nil // in events.txt, not thousands of lines of test log
	}
	c.stopAll()
	if s.checker != nil {
		// A fence while the cluster stops (detectors, supervisors, then
		// agents) is still a healthy host's fence.
		c.story = story
		s.checker.sample(time.Now())
		c.story = nil
	}
	for _, d := range s.disks {
		if err := d.unmount(); err != nil {
			t.Errorf("unmount %s: %v", d.mnt, err)
		}
	}
	for _, l := range s.links {
		l.close()
	}
	panics, where := countPanics(c.dir)
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	for _, p := range logs {
		if b, err := os.ReadFile(p); err == nil {
			_ = os.WriteFile(filepath.Join(s.cfg.out, "logs", filepath.Base(p)), b, 0o644)
		}
	}

	res := soakResult{Panics: panics}
	if !s.started.IsZero() {
		end := s.ended
		if end.IsZero() {
			end = time.Now()
		}
		res.Minutes = round1(end.Sub(s.started).Minutes())
	}
	var kinds []string
	for _, k := range faultKinds {
		res.FaultsInjected += s.injected[k.name]
		kinds = append(kinds, fmt.Sprintf("%s=%d", k.name, s.injected[k.name]))
	}
	var findings []string
	if k := s.checker; k != nil {
		k.mu.Lock()
		res.FalseFences, res.DuplicateVMs, res.LostVMs = k.falseFences, k.duplicates, k.lost
		findings = slices.Clone(k.findings)
		for _, cr := range s.crashes {
			res.RealFailures++
			if cr.verdict == "recovered" {
				res.Recovered++
				res.MaxRecoveryS = max(res.MaxRecoveryS, round1(cr.recoveredAt.Sub(cr.at).Seconds()))
			}
		}
		k.mu.Unlock()
	}
	findings = append(findings, where...)
	_ = os.WriteFile(filepath.Join(s.cfg.out, "findings.txt"), []byte(strings.Join(findings, "\n")+"\n"), 0o644)
	t.Logf("soak: seed %d, %s timings; faults: %s; logs, events and findings in %s", s.cfg.seed, s.cfg.timing, strings.Join(kinds, " "), s.cfg.out)
	for _, f := range findings {
		t.Logf("soak finding: %s", f)
	}
	if res.FalseFences > 0 || res.DuplicateVMs > 0 || res.LostVMs > 0 || res.Panics > 0 || res.Recovered < res.RealFailures {
		t.Errorf("soak failed: %d false fences, %d duplicate VMs, %d lost VMs, %d panics, %d of %d real failures recovered",
			res.FalseFences, res.DuplicateVMs, res.LostVMs, res.Panics, res.Recovered, res.RealFailures)
	}
	b, _ := json.Marshal(res)
	_ = os.WriteFile(filepath.Join(s.cfg.out, "result.json"), append(b, '\n'), 0o644)
	fmt.Println(string(b))
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
