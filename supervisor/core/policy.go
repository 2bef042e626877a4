package core

import (
	"errors"
	"fmt"
	"time"
)

// Policy is the part of the supervisor's configuration that decisions depend
// on. It lives in State (set by a SetPolicy input) so that a decision depends
// on nothing but the state and the input, and a new leader replaying persisted
// state decides as the old one did until it installs its own configuration.
// viper fills it from the "supervisor" section; DefaultPolicy documents every
// default.
type Policy struct {
	// FenceSelfTimeout must equal the agents' fence.self_timeout: an agent
	// that cannot renew its liveness on the bus for this long destroys its
	// own domains.
	FenceSelfTimeout time.Duration `mapstructure:"fence_self_timeout" json:"fence_self_timeout"`
	// FenceMargin is added to the self-fence deadline (last beat +
	// FenceSelfTimeout) before a silent host's VMs are restored elsewhere.
	FenceMargin time.Duration `mapstructure:"fence_margin" json:"fence_margin"`
	// MaxConcurrentRestores bounds restores and cold starts in flight across
	// the cluster; further members wait in priority order.
	MaxConcurrentRestores int `mapstructure:"max_concurrent_restores" json:"max_concurrent_restores"`
	// MaxFailedFraction: when more than this share of the known hosts has
	// failed within StormWindow and is still down, restarts pause (storm).
	MaxFailedFraction float64 `mapstructure:"max_failed_fraction" json:"max_failed_fraction"`
	// StormWindow is the window of MaxFailedFraction.
	StormWindow time.Duration `mapstructure:"storm_window" json:"storm_window"`
	// FlapThreshold: a host that fails more than this many times within
	// FlapWindow is quarantined: until an operator releases it, it gets
	// new work only when no other host has room.
	FlapThreshold int           `mapstructure:"flap_threshold" json:"flap_threshold"`
	FlapWindow    time.Duration `mapstructure:"flap_window" json:"flap_window"`
	// RestoreAttemptsPerHost: after this many failed restores of one VM on
	// one host the VM is placed on another host.
	RestoreAttemptsPerHost int `mapstructure:"restore_attempts_per_host" json:"restore_attempts_per_host"`
	// MaxAttempts bounds the restore attempts of one VM in one recovery
	// (over all hosts); then the VM, and its group, are reported
	// unrecoverable until an operator restarts them.
	MaxAttempts int `mapstructure:"max_attempts" json:"max_attempts"`
	// BackoffBase and BackoffCap shape the delay before a failed command is
	// sent again: BackoffBase * 2^(n-1) after the n-th failure, at most
	// BackoffCap. No jitter: the core is deterministic, and the commands of
	// one decision go to different hosts anyway.
	BackoffBase time.Duration `mapstructure:"backoff_base" json:"backoff_base"`
	BackoffCap  time.Duration `mapstructure:"backoff_cap" json:"backoff_cap"`
}

// DefaultPolicy returns the policy for a data-centre cluster with the
// detector's defaults (a dead host is reported about 3 s after its last beat).
func DefaultPolicy() Policy {
	return Policy{
		// The agents' default (restarter.DefaultConfig says why 20 s: a
		// JetStream leader election must not make healthy hosts fence
		// themselves). A silent host's VMs are restored about 25 s after
		// its last beat when no fence command is configured.
		FenceSelfTimeout: 20 * time.Second,
		// Covers the skew between the clock that stamped the last beat and
		// ours, a delayed delivery of that beat, and the agent's own time to
		// destroy its domains once it gives up (xl destroy takes about a
		// second per domain).
		FenceMargin: 5 * time.Second,
		// Restores stream images from the store; 256 in flight keeps the
		// design's burst (10 hosts x 20 VMs) in one wave while bounding the
		// load on a shared file system or object store.
		MaxConcurrentRestores: 256,
		// More than half the hosts failing within a minute is likelier to be
		// our own partition (or the detector's) than hardware; Kubernetes
		// stops evictions in a zone at 55% for the same reason.
		MaxFailedFraction: 0.5,
		StormWindow:       time.Minute,
		// A host that fails a fourth time within an hour has a problem a
		// restart does not fix; placing more VMs on it only moves them again.
		FlapThreshold: 3,
		FlapWindow:    time.Hour,
		// Three tries on one host separate a transient toolstack error from
		// a host that cannot restore this VM.
		RestoreAttemptsPerHost: 3,
		// Ten attempts reach about four hosts before giving up and asking an
		// operator.
		MaxAttempts: 10,
		// 1, 2, 4, 8, 16, 30, 30 s: fast for transient errors, slow enough
		// not to hammer a struggling host.
		BackoffBase: time.Second,
		BackoffCap:  30 * time.Second,
	}
}

// Validate checks the policy; each error names its key under section
// (usually "supervisor"), and all problems are reported at once.
func (p Policy) Validate(section string) error {
	var errs []error
	add := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{section, k}, args...)...))
	}
	if p.FenceSelfTimeout <= 0 {
		add("fence_self_timeout", "must be positive, got %s", p.FenceSelfTimeout)
	}
	if p.FenceMargin < 0 {
		add("fence_margin", "must not be negative, got %s", p.FenceMargin)
	}
	if p.MaxConcurrentRestores < 1 {
		add("max_concurrent_restores", "must be at least 1, got %d", p.MaxConcurrentRestores)
	}
	if !(p.MaxFailedFraction > 0 && p.MaxFailedFraction <= 1) {
		add("max_failed_fraction", "must be more than 0 and at most 1, got %g", p.MaxFailedFraction)
	}
	if p.StormWindow <= 0 {
		add("storm_window", "must be positive, got %s", p.StormWindow)
	}
	if p.FlapThreshold < 1 {
		add("flap_threshold", "must be at least 1, got %d", p.FlapThreshold)
	}
	if p.FlapWindow <= 0 {
		add("flap_window", "must be positive, got %s", p.FlapWindow)
	}
	if p.RestoreAttemptsPerHost < 1 {
		add("restore_attempts_per_host", "must be at least 1, got %d", p.RestoreAttemptsPerHost)
	}
	if p.MaxAttempts < p.RestoreAttemptsPerHost {
		add("max_attempts", "must be at least %s.restore_attempts_per_host (%d), got %d",
			section, p.RestoreAttemptsPerHost, p.MaxAttempts)
	}
	if p.BackoffBase <= 0 {
		add("backoff_base", "must be positive, got %s", p.BackoffBase)
	}
	if p.BackoffCap < p.BackoffBase || p.BackoffCap > time.Hour {
		add("backoff_cap", "must be at least %s.backoff_base (%s) and at most 1h, got %s", section, p.BackoffBase, p.BackoffCap)
	}
	return errors.Join(errs...)
}

// backoff is the delay before the next send after the n-th failure (n >= 1).
func (p Policy) backoff(n int) time.Duration {
	d := p.BackoffBase
	for i := 1; i < n && d < p.BackoffCap; i++ {
		d *= 2
	}
	return min(d, p.BackoffCap)
}

// selfFenceDeadline is when a host whose agent was last heard from at last
// (a beat or a lease renewal) has surely destroyed its domains: the agent
// fences itself within its own self-timeout, which should equal the policy's
// and is trusted only when longer.
func (p Policy) selfFenceDeadline(last time.Time, agentSelfTimeout time.Duration) time.Time {
	return last.Add(max(p.FenceSelfTimeout, agentSelfTimeout) + p.FenceMargin)
}
