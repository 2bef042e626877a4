package restarter

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Config is the restarter part of the agent's configuration (cmd/xenft wires
// it as the "agent.restarter" section).
type Config struct {
	// SpoolDir is where an image is fetched to before `xl restore` reads
	// it (xl reads a file, not a stream). It is not the checkpointer's
	// spool: that one is emptied of *.img files when the agent starts.
	SpoolDir string `mapstructure:"spool_dir"`
	// RestoreTimeout bounds one vm.restore: fetch, verification, restore.
	RestoreTimeout time.Duration `mapstructure:"restore_timeout"`
	// ToolstackTimeout bounds one xl call of the other verbs (create,
	// destroy, unpause, list) and of the watcher.
	ToolstackTimeout time.Duration `mapstructure:"toolstack_timeout"`
	// WatchInterval is how often the domains are listed to find those that
	// died without a command from the supervisor (vm.failed).
	WatchInterval time.Duration `mapstructure:"watch_interval"`
	// Fence is the self-fence: the host lease and what happens when it
	// cannot be renewed.
	Fence FenceConfig `mapstructure:"fence"`
}

// FenceConfig configures self-fencing (DESIGN.md "Safety first").
type FenceConfig struct {
	// RenewInterval is how often the agent renews its lease, key <host> in
	// the xenft_hosts bucket.
	RenewInterval time.Duration `mapstructure:"renew_interval"`
	// SelfTimeout: an agent whose last successful renewal was sent this long
	// ago has destroyed every guest domain. The supervisor's
	// fence_self_timeout must be the same value.
	SelfTimeout time.Duration `mapstructure:"self_timeout"`
	// ActionTimeout is the time reserved for the fence action: it starts
	// SelfTimeout − ActionTimeout after the last successful renewal, so
	// that it has ended by SelfTimeout even if xl is slow.
	ActionTimeout time.Duration `mapstructure:"action_timeout"`
	// Action is "destroy" (the default) or "pause". Only destroy ends a
	// copy for good; pause keeps the domains' memory for an operator to
	// inspect, paused domains are never unpaused by this agent again and
	// must be destroyed (the supervisor does when it restarts them
	// elsewhere), but a paused copy is one manual `xl unpause` away from
	// two live copies.
	Action string `mapstructure:"action"`
	// Spare names domains the fence never touches: driver or service
	// domains the host needs, which the supervisor does not manage.
	Spare []string `mapstructure:"spare"`
	// Watchdog is the hardware watchdog device the agent pets
	// (watchdog.go), e.g. "/dev/watchdog"; "" (the default) is off. While
	// on, a dead or wedged agent means a host reset by the device: the
	// agent pets only while its lease is fresh or a completed self-fence
	// left no guest running. The device must exist when the agent starts
	// (it is never created), and a clean stop disarms it (magic close 'V').
	Watchdog string `mapstructure:"watchdog"`
	// WatchdogInterval is how often the agent pets the watchdog; 0 (the
	// default) is a quarter of the device's timeout, read from the device
	// (WDIOC_GETTIMEOUT): three pets may be late before it fires. It must
	// be at most half the device's timeout when that can be read, and must
	// be set when it cannot.
	WatchdogInterval time.Duration `mapstructure:"watchdog_interval"`
}

// Fence actions.
const (
	FenceDestroy = "destroy"
	FencePause   = "pause"
)

// DefaultConfig returns the defaults, with their reasons.
func DefaultConfig() Config {
	return Config{
		SpoolDir: "/var/lib/xenft/restore",
		// A 16 GiB image from a store reading 200 MB/s takes under two
		// minutes, and xl restore about as long again; ten minutes is
		// beyond a healthy restore and still frees a stuck one.
		RestoreTimeout: 10 * time.Minute,
		// xl create, destroy and unpause take seconds (destroy about a
		// second per GiB to scrub); two minutes means the toolstack hangs.
		ToolstackTimeout: 2 * time.Minute,
		// One `xl list` a second costs little (two execs of xl) and
		// reports a dead guest within a second, like the heartbeat.
		WatchInterval: time.Second,
		Fence: FenceConfig{
			// The heartbeat's pace: a renewal is one KV put.
			RenewInterval: time.Second,
			// Twenty missed renewals. Long enough that a bus hiccup (a
			// NATS server restart, a reconnect, a long GC pause) does not
			// make healthy hosts kill their guests, and above all that
			// losing the server that leads xenft_hosts does not: the two
			// left elect a new leader only after NATS's election timeout
			// (4-9 s, not configurable), and no renewal is acknowledged
			// meanwhile. At 10 s (a window of 10 − 3 = 7 s) e2e's
			// TestOneNATSServerKilled saw a healthy host fence itself in
			// one run of two; 20 − 3 = 17 s leaves twice the worst
			// election. A bus outage longer than this empties every host,
			// by design. Not longer, because a silent host's VMs are
			// restored only after last beat + self_timeout + the
			// supervisor's margin unless a fence command powers it off:
			// it is downtime. Configure a fence command.
			SelfTimeout: 20 * time.Second,
			// xl destroy takes about a second per domain and the fence
			// destroys them in parallel; three seconds leaves room for a
			// slow toolstack and still lets seven renewals fail first.
			ActionTimeout: 3 * time.Second,
			Action:        FenceDestroy,
		},
	}
}

// Validate names the offending key under section.
func (c Config) Validate(section string) error {
	key := func(k string) string { return section + "." + k }
	var errs []error
	add := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key(k)}, args...)...))
	}
	if c.SpoolDir == "" {
		add("spool_dir", "required")
	}
	if c.RestoreTimeout <= 0 {
		add("restore_timeout", "must be positive, got %s", c.RestoreTimeout)
	}
	if c.ToolstackTimeout <= 0 {
		add("toolstack_timeout", "must be positive, got %s", c.ToolstackTimeout)
	}
	if c.WatchInterval <= 0 {
		add("watch_interval", "must be positive, got %s", c.WatchInterval)
	}
	f := c.Fence
	switch {
	case f.RenewInterval <= 0:
		add("fence.renew_interval", "must be positive, got %s", f.RenewInterval)
	case f.SelfTimeout < 3*f.RenewInterval:
		// One lost renewal must never fence a host: at least two must
		// fail, with room for the action, before it acts.
		add("fence.self_timeout", "must be at least 3 × fence.renew_interval (%s), got %s", 3*f.RenewInterval, f.SelfTimeout)
	case f.ActionTimeout <= 0:
		add("fence.action_timeout", "must be positive, got %s", f.ActionTimeout)
	case f.ActionTimeout > f.SelfTimeout-3*f.RenewInterval:
		// The window in which renewals may fail before the fence begins
		// (self_timeout − action_timeout) must hold three renewals: with
		// two, the demo's 4 s − 3 s left one second, and one slow
		// JetStream acknowledgement fenced every healthy host of a busy
		// machine (make run, issue "reliability on bad days").
		add("fence.action_timeout", "must be at most fence.self_timeout − 3 × fence.renew_interval (%s), got %s: the fence would begin %s after the last renewal",
			f.SelfTimeout-3*f.RenewInterval, f.ActionTimeout, f.SelfTimeout-f.ActionTimeout)
	}
	if f.Action != FenceDestroy && f.Action != FencePause {
		add("fence.action", "%q is not one of destroy, pause", f.Action)
	}
	for _, s := range f.Spare {
		if s == "" {
			add("fence.spare", "empty domain name")
		}
	}
	if f.Watchdog != "" && !filepath.IsAbs(f.Watchdog) {
		add("fence.watchdog", "must be an absolute path (a watchdog device such as /dev/watchdog) or empty, got %q", f.Watchdog)
	}
	if f.WatchdogInterval < 0 {
		add("fence.watchdog_interval", "must be 0 (a quarter of the device's timeout) or positive, got %s", f.WatchdogInterval)
	}
	return errors.Join(errs...)
}

// ShortFenceWindow is the fence window (self_timeout − action_timeout)
// below which an agent warns at start: JetStream can take seconds to
// acknowledge a put while it elects a stream leader (4-9 s after a server
// dies) or flushes a busy disk, and a window shorter than that fences
// healthy hosts. Tests and demos may go lower on purpose.
const ShortFenceWindow = 5 * time.Second

// Window is how long renewals may fail before the fence begins:
// self_timeout − action_timeout.
func (f FenceConfig) Window() time.Duration { return f.fenceStartsAfter() }

// fenceStartsAfter is how long after the last successful renewal the fence
// action begins.
func (f FenceConfig) fenceStartsAfter() time.Duration { return f.SelfTimeout - f.ActionTimeout }
