package detector

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := DefaultConfig().Validate("detector"); err != nil {
		t.Error(err)
	}
	if err := DefaultBeaconConfig().Validate("heartbeat"); err != nil {
		t.Error(err)
	}
}

// Each error names the offending key (STYLE.md habit 6).
func TestConfigValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.ID = "not valid!" }, "detector.id:"},
		{func(c *Config) { c.ExpectedInterval = 0 }, "detector.expected_interval: must be at least 10ms"},
		{func(c *Config) { c.PhiSuspect = 0.5 }, "detector.phi_suspect: must be at least 1"},
		{func(c *Config) { c.PhiFail = 5 }, "detector.phi_fail: must be greater than detector.phi_suspect"},
		{func(c *Config) { c.PhiFail = 200 }, "detector.phi_fail: must be at most 100"},
		{func(c *Config) { c.MinStdDev = 0 }, "detector.min_std_dev: must be positive"},
		{func(c *Config) { c.AcceptablePause = -time.Second }, "detector.acceptable_pause: must not be negative"},
		{func(c *Config) { c.MaxSilence = time.Second }, "detector.max_silence: must be greater than detector.expected_interval + detector.acceptable_pause"},
		{func(c *Config) { c.WindowSize = 1 }, "detector.window_size: must be 2 to 100000"},
		{func(c *Config) { c.Tick = 2 * time.Second }, "detector.tick: must be positive and at most detector.expected_interval"},
		{func(c *Config) { c.ProbeInterval = 10 * time.Millisecond }, "detector.probe_interval: must be 0 (no probes) or at least detector.tick"},
		{func(c *Config) { c.ProbeLead = 2 * time.Second }, "detector.probe_lead: must be at least 0 and less than detector.acceptable_pause + y(detector.phi_fail) x detector.min_std_dev (1.423s)"},
		{func(c *Config) { c.ProbeTimeout = 0 }, "detector.probe_timeout: must be positive"},
		{func(c *Config) { c.ProbeMaxOutstanding = 0 }, "detector.probe_max_outstanding: must be 1 to 1000000"},
		{func(c *Config) { c.ReadCoalesce = time.Second }, "detector.read_coalesce: must be 0 (off) to 100ms"},
	} {
		cfg := DefaultConfig()
		tc.change(&cfg)
		err := cfg.Validate("detector")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to contain %q", err, tc.want)
		}
	}
	// Probing off: its other keys are not checked.
	off := DefaultConfig()
	off.ProbeInterval, off.ProbeTimeout, off.ProbeMaxOutstanding = 0, 0, 0
	if err := off.Validate("detector"); err != nil {
		t.Errorf("probing off: %v", err)
	}
	b := BeaconConfig{}
	err := b.Validate("heartbeat")
	for _, want := range []string{"heartbeat.interval:", "heartbeat.inventory_interval:", "heartbeat.inventory_timeout:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"n1.example.org": "n1.example.org",
		"-weird host":    "xweird_host",
		"":               "detector",
		"ok_name-2":      "ok_name-2",
	} {
		got := sanitizeName(in)
		if !ValidName(got) {
			t.Errorf("sanitizeName(%q) = %q, not a valid name", in, got)
		}
		if got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	if (Config{}).detectorID() == "" {
		t.Error("no detector id from the host name")
	}
}
