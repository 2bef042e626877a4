package detector

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Config is the "detector" section of `xenft detector`'s configuration: how
// heartbeats become node.suspect, node.failed and node.recovered, and which
// site plug-ins run. viper fills it; DefaultConfig documents every default.
type Config struct {
	// ID names this detector in the events it publishes (the "detector" field
	// and the CloudEvents source). Empty means the machine's host name.
	ID string `mapstructure:"id"`
	// ExpectedInterval is the heartbeat interval agents use. It bootstraps the
	// window of a host the detector has not heard from yet, when the beat does
	// not announce its own interval.
	ExpectedInterval time.Duration `mapstructure:"expected_interval"`
	// PhiSuspect is the phi at which a host is reported node.suspect.
	PhiSuspect float64 `mapstructure:"phi_suspect"`
	// PhiFail is the phi at which a host is reported node.failed.
	PhiFail float64 `mapstructure:"phi_fail"`
	// MaxSilence reports a host node.failed (reason "silence") when no beat
	// came for this long, whatever phi says.
	MaxSilence time.Duration `mapstructure:"max_silence"`
	// MinStdDev floors the standard deviation of the inter-arrival times.
	MinStdDev time.Duration `mapstructure:"min_std_dev"`
	// AcceptablePause is added to the mean inter-arrival time: a silence this
	// much longer than usual costs no suspicion.
	AcceptablePause time.Duration `mapstructure:"acceptable_pause"`
	// WindowSize is how many inter-arrival times are kept per host.
	WindowSize int `mapstructure:"window_size"`
	// Tick is how often every host's silence is evaluated.
	Tick time.Duration `mapstructure:"tick"`
	// ProbeInterval is the time between two probes of one silent host (a
	// request on <prefix>.hb.probe.<host> that its agent answers); 0
	// disables probing. A reply defers the host's failure (probe.go).
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// ProbeLead is how long before a silent host's failure deadline the
	// probing starts (at its suspicion if that comes first).
	ProbeLead time.Duration `mapstructure:"probe_lead"`
	// ProbeTimeout is how long a probe waits for its reply; a later reply
	// is ignored.
	ProbeTimeout time.Duration `mapstructure:"probe_timeout"`
	// ProbeMaxOutstanding bounds the probes waiting for a reply; a probe
	// due beyond it is skipped (and counted), and the host is asked again
	// at its next probe_interval.
	ProbeMaxOutstanding int `mapstructure:"probe_max_outstanding"`
	// ReadCoalesce makes the detector's NATS connection read at most once
	// per this interval (unless the previous read filled the client's
	// buffer), so one read carries many beats; 0 reads as soon as data
	// arrive. `xenft detector` applies it when it connects.
	ReadCoalesce time.Duration `mapstructure:"read_coalesce"`
	// Plugins are site detectors run as commands on a schedule.
	Plugins []PluginConfig `mapstructure:"plugins"`
}

// PluginConfig is one exec plug-in: Command with Args is run (no shell) every
// Interval; it must exit 0 within Timeout and print one JSON object per line,
// {"host":"n3","severity":"fatal|degraded|ok","reason":"..."}.
type PluginConfig struct {
	// Name identifies the plug-in in logs, metrics and the events' "detector"
	// field: letters, digits, '.', '_' and '-'.
	Name string `mapstructure:"name"`
	// Command is the program to run: an absolute path, or a name looked up
	// in PATH.
	Command string   `mapstructure:"command"`
	Args    []string `mapstructure:"args"`
	// Interval between the starts of two runs (runs never overlap). Default
	// 30s.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout of one run; its whole process group is killed when it expires.
	// Default 10s, and at most Interval.
	Timeout time.Duration `mapstructure:"timeout"`
}

// Plug-in defaults for an entry that leaves interval or timeout out (zero):
// Validate and NewMonitor apply them through WithDefaults.
const (
	DefaultPluginInterval = 30 * time.Second
	DefaultPluginTimeout  = 10 * time.Second
)

// DefaultConfig returns a configuration for agents beating every second on a
// data-centre network. With it a dead host is reported node.failed about 2.5
// to 2.8 s after its last beat, a single lost beat raises no suspicion, and
// a silent host is probed before it is accused, so that lost beats alone do
// not fail a live host (docs/detectors.md works the numbers).
func DefaultConfig() Config {
	return Config{
		// The host name is resolved when the monitor starts, so that a
		// configuration written on one machine works on another.
		ID: "",
		// heartbeat.interval's default; a beat that announces its interval
		// overrides it for its host.
		ExpectedInterval: time.Second,
		// phi 5: the silence is that long by chance once in 100,000 intervals
		// of the observed distribution. Early enough to be worth a look.
		PhiSuspect: 5,
		// phi 8: once in 1e8 by chance, the threshold Akka and Cassandra use
		// in production. A failure leads to fencing and restarts, so the
		// threshold is high; acceptable_pause, not a low phi, makes
		// detection fast.
		PhiFail: 8,
		// A safety net for a window that learnt long gaps (a host that was
		// slow for minutes): whatever the history says, ten intervals of
		// silence is a failure. On a healthy history phi decides first.
		MaxSilence: 10 * time.Second,
		// Akka's default. Without a floor a very regular network (a jitter
		// of a millisecond) turns a 20 ms scheduling hiccup into phi 8.
		MinStdDev: 100 * time.Millisecond,
		// One interval: a single lost beat (a gap of two intervals plus
		// jitter) stays below phi_suspect, while a dead host is still failed
		// within three intervals of its last beat. Inter-arrival times are
		// multimodal under loss (1, 2, 3 intervals) and the normal model
		// alone would call every lost beat a failure.
		AcceptablePause: 900 * time.Millisecond,
		// About three minutes of history at 1 s: enough for a stable mean and
		// deviation (about ±5%), short enough to follow a change of network
		// within minutes, 1.6 KiB per host (16 MiB for 10,000 hosts). Akka's
		// 1000 is more than a dedicated detector needs.
		WindowSize: 200,
		// Adds at most 50 ms to a detection (the QoS benchmark's p99 moves
		// by about 40 ms against 100 ms ticks). A tick over 10,000 hosts is
		// tens of microseconds: deadlines are precomputed at each beat, so a
		// tick compares times and computes phi only on a crossing.
		Tick: 50 * time.Millisecond,
		// A probe crosses the network twice (up to twice the beats' jitter)
		// and either way may be lost. Four chances 250 ms apart within the
		// second before the failure deadline: on a network with 200 ms of
		// jitter and 1% loss each way a live host fails to answer all of
		// them in time about twice in a million double beat losses
		// (bench/detect: no false failure in 1183 host-hours). A dead host
		// never answers, so its detection time is unchanged.
		ProbeInterval: 250 * time.Millisecond,
		// One interval before the failure deadline: room for four probes.
		// A host is then probed after most single lost beats too (its gap
		// is about two intervals, and the failure deadline about 2.6 s): a
		// request and a reply of ~100 bytes about 43 times a host-hour at
		// 1% loss (bench/detect), against 3600 beats.
		ProbeLead: time.Second,
		// Twice the worst round trip the benchmark's network allows (2 x
		// 200 ms); on a LAN a reply takes a millisecond. A later reply is
		// dropped: it is no longer about the silence it was asked about.
		ProbeTimeout: 500 * time.Millisecond,
		// A mass silence (a partition of thousands of hosts) must not turn
		// into a storm of requests on a bus that is already in trouble:
		// with a 500 ms timeout this caps probes at about 2000 a second.
		ProbeMaxOutstanding: 1024,
		// 10,000 beats a second arrive one small message per read when read
		// as soon as they come (a system call and a wake-up each, most of
		// the detector's CPU); waiting 5 ms between reads takes ~50 beats
		// per read. 5 ms is noise next to 1 s beats with 200 ms of jitter
		// (arrival times are the detector's own) and to the 50 ms tick; it
		// also delays acks of events and probe replies by at most 5 ms.
		ReadCoalesce: 5 * time.Millisecond,
	}
}

// ValidName reports whether s can name a host, detector or plug-in in events:
// the schema's name pattern ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
// (events/schema/envelope.json $defs/name), checked without a regexp because
// the monitor checks every beat.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Validate checks the configuration; each error names its key under section
// (usually "detector"), and all problems are reported at once.
func (c Config) Validate(section string) error {
	key := func(k string) string { return section + "." + k }
	var errs []error
	add := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key(k)}, args...)...))
	}
	if c.ID != "" && !ValidName(c.ID) {
		add("id", "%q must be letters, digits, '.', '_' or '-' (at most 128), starting with a letter or digit", c.ID)
	}
	if c.ExpectedInterval < 10*time.Millisecond {
		add("expected_interval", "must be at least 10ms, got %s", c.ExpectedInterval)
	}
	if c.PhiSuspect < 1 {
		add("phi_suspect", "must be at least 1, got %g", c.PhiSuspect)
	}
	if c.PhiFail <= c.PhiSuspect {
		add("phi_fail", "must be greater than %s (%g), got %g", key("phi_suspect"), c.PhiSuspect, c.PhiFail)
	} else if c.PhiFail > 100 {
		add("phi_fail", "must be at most 100, got %g", c.PhiFail)
	}
	if c.MinStdDev <= 0 {
		add("min_std_dev", "must be positive, got %s", c.MinStdDev)
	}
	if c.AcceptablePause < 0 {
		add("acceptable_pause", "must not be negative, got %s", c.AcceptablePause)
	}
	if floor := c.ExpectedInterval + c.AcceptablePause; c.MaxSilence <= floor {
		add("max_silence", "must be greater than %s + %s (%s), got %s",
			key("expected_interval"), key("acceptable_pause"), floor, c.MaxSilence)
	}
	if c.WindowSize < 2 || c.WindowSize > 100000 {
		add("window_size", "must be 2 to 100000, got %d", c.WindowSize)
	}
	if c.Tick <= 0 || (c.ExpectedInterval > 0 && c.Tick > c.ExpectedInterval) {
		add("tick", "must be positive and at most %s (%s), got %s", key("expected_interval"), c.ExpectedInterval, c.Tick)
	}
	if c.ProbeInterval < 0 || (c.ProbeInterval > 0 && c.ProbeInterval < c.Tick) {
		add("probe_interval", "must be 0 (no probes) or at least %s (%s): probes are sent on ticks, got %s", key("tick"), c.Tick, c.ProbeInterval)
	}
	if c.ProbeInterval > 0 {
		// On the calmest network (deviation at the floor) the failure
		// deadline is this far past the mean interval; a longer lead would
		// probe hosts whose beats are on time.
		if c.PhiFail > 0 && c.MinStdDev > 0 {
			margin := c.AcceptablePause + time.Duration(InverseY(c.PhiFail)*float64(c.MinStdDev))
			if c.ProbeLead < 0 || c.ProbeLead >= margin {
				add("probe_lead", "must be at least 0 and less than %s + y(%s) x %s (%s), or hosts beating on time are probed, got %s",
					key("acceptable_pause"), key("phi_fail"), key("min_std_dev"), margin.Round(time.Millisecond), c.ProbeLead)
			}
		}
		if c.ProbeTimeout <= 0 || c.ProbeTimeout > c.MaxSilence {
			add("probe_timeout", "must be positive and at most %s (%s), got %s", key("max_silence"), c.MaxSilence, c.ProbeTimeout)
		}
		if c.ProbeMaxOutstanding < 1 || c.ProbeMaxOutstanding > 1_000_000 {
			add("probe_max_outstanding", "must be 1 to 1000000, got %d", c.ProbeMaxOutstanding)
		}
	}
	if c.ReadCoalesce < 0 || c.ReadCoalesce > 100*time.Millisecond {
		add("read_coalesce", "must be 0 (off) to 100ms, got %s", c.ReadCoalesce)
	}
	seen := map[string]int{}
	for i, p := range c.WithDefaults().Plugins {
		sec := fmt.Sprintf("%s[%d]", key("plugins"), i)
		if j, dup := seen[p.Name]; dup && p.Name != "" {
			errs = append(errs, fmt.Errorf("%s.name: %q is already the name of %s[%d]", sec, p.Name, key("plugins"), j))
		}
		seen[p.Name] = i
		if err := p.Validate(sec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with the plug-ins' zero intervals and timeouts set to
// their defaults. viper leaves them zero when a plug-in's entry omits them.
func (c Config) WithDefaults() Config {
	ps := make([]PluginConfig, len(c.Plugins))
	for i, p := range c.Plugins {
		if p.Interval == 0 {
			p.Interval = DefaultPluginInterval
		}
		if p.Timeout == 0 {
			p.Timeout = min(DefaultPluginTimeout, p.Interval)
		}
		ps[i] = p
	}
	c.Plugins = ps
	return c
}

// Validate checks one plug-in; errors name their key under section
// ("detector.plugins[0]").
func (p PluginConfig) Validate(section string) error {
	key := func(k string) string { return section + "." + k }
	var errs []error
	if !ValidName(p.Name) {
		errs = append(errs, fmt.Errorf("%s: %q must be letters, digits, '.', '_' or '-', starting with a letter or digit", key("name"), p.Name))
	}
	if p.Command == "" {
		errs = append(errs, fmt.Errorf("%s: required", key("command")))
	}
	if p.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("%s: must be at least 100ms, got %s", key("interval"), p.Interval))
	}
	if p.Timeout <= 0 || p.Timeout > p.Interval {
		errs = append(errs, fmt.Errorf("%s: must be positive and at most %s (%s), got %s", key("timeout"), key("interval"), p.Interval, p.Timeout))
	}
	return errors.Join(errs...)
}

// detectorID is the configured id or, when empty, the host name made into a
// valid name.
func (c Config) detectorID() string {
	if c.ID != "" {
		return c.ID
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "detector"
	}
	return sanitizeName(h)
}

// sanitizeName maps s onto the name pattern, replacing what it forbids.
func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			b[i] = '_'
			if i == 0 {
				b[i] = 'x'
			}
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	if len(b) == 0 {
		return "detector"
	}
	return string(b)
}

// BeaconConfig is the "heartbeat" section of `xenft agent`'s configuration.
type BeaconConfig struct {
	// Interval between two beats. The detector learns the real rhythm; this
	// only has to match detector.expected_interval for a host's first beats.
	Interval time.Duration `mapstructure:"interval"`
	// InventoryInterval is how often the host's domains and free memory are
	// listed for the beats, which carry the latest list and its time. The
	// supervisor takes a VM missing from two successive lists (fed every 2 s)
	// as vanished, so a list must never be older than that: a stale list
	// taken just before a restore would make the restored VM look gone.
	InventoryInterval time.Duration `mapstructure:"inventory_interval"`
	// InventoryTimeout bounds one listing. A listing that fails or times out
	// never delays a beat: beats go on with the last good list.
	InventoryTimeout time.Duration `mapstructure:"inventory_timeout"`
}

// DefaultBeaconConfig: a beat a second (DESIGN.md), the inventory every 5 s
// (xl list costs tens of milliseconds of dom0 CPU; placement needs free
// memory that is seconds old, not milliseconds), bounded at 3 s (a loaded
// dom0 can take seconds to answer).
func DefaultBeaconConfig() BeaconConfig {
	return BeaconConfig{
		Interval:          time.Second,
		InventoryInterval: time.Second, // `xl list` twice: milliseconds on real hardware
		InventoryTimeout:  3 * time.Second,
	}
}

// Validate checks the configuration; errors name their key under section
// (usually "heartbeat").
func (c BeaconConfig) Validate(section string) error {
	key := func(k string) string { return section + "." + k }
	var errs []error
	if c.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("%s: must be at least 10ms, got %s", key("interval"), c.Interval))
	}
	if c.InventoryInterval <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", key("inventory_interval"), c.InventoryInterval))
	}
	if c.InventoryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %s", key("inventory_timeout"), c.InventoryTimeout))
	}
	return errors.Join(errs...)
}
