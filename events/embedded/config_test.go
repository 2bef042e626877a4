package embedded

import (
	"strings"
	"testing"
	"time"
)

// server.sync decides whether an acknowledged write can be lost to a power
// failure; the default must be the safe one and a typo must not silently
// fall back to nats-server's lazy default.
func TestSyncPolicy(t *testing.T) {
	for _, tc := range []struct {
		sync     string
		always   bool
		interval time.Duration
		err      string
	}{
		{sync: "", always: true},
		{sync: "always", always: true},
		{sync: "2m", interval: 2 * time.Minute},
		{sync: "10ms", interval: 10 * time.Millisecond},
		{sync: "0s", err: `server.sync: "0s" is neither "always" nor a duration`},
		{sync: "Always", err: `server.sync: "Always" is neither`},
		{sync: "soon", err: `server.sync: "soon" is neither`},
		{sync: "-1m", err: `server.sync: "-1m" is neither`},
	} {
		cfg := DefaultConfig()
		cfg.Sync = tc.sync
		err := cfg.Validate("server")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("sync %q: error %v, want %q", tc.sync, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("sync %q: %v", tc.sync, err)
			continue
		}
		opts, err := serverOptions(cfg, nil)
		if err != nil {
			t.Fatalf("sync %q: %v", tc.sync, err)
		}
		if opts.SyncAlways != tc.always || opts.SyncInterval != tc.interval {
			t.Errorf("sync %q: SyncAlways %v SyncInterval %s, want %v %s", tc.sync, opts.SyncAlways, opts.SyncInterval, tc.always, tc.interval)
		}
	}
	if DefaultConfig().Sync != SyncAlways {
		t.Errorf("the default sync is %q, want %q", DefaultConfig().Sync, SyncAlways)
	}
}
