package supervisor

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/supervisor/core"
)

// Config is the "supervisor" section.
type Config struct {
	// ID names this supervisor in the lease and in events; default: the
	// machine's host name.
	ID string `mapstructure:"id"`
	// CheckpointInterval is the schedule of groups without settings of their
	// own; 0 takes checkpoints only on demand.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	// Checkpoint tunes the coordinator.
	Checkpoint checkpointer.CoordinatorConfig `mapstructure:"checkpoint"`
	// Policy is the decision core's policy (fencing, storm guard, flapping,
	// retries); see core.DefaultPolicy for every default and why.
	Policy core.Policy `mapstructure:"policy"`
	// FenceCommand, if set, fences a failed host at once: argv with {host}
	// replaced (e.g. ["ipmitool", "-H", "{host}-bmc", "-U", "admin", "-f",
	// "/etc/xenft/ipmi.pw", "chassis", "power", "off"]), run without a shell.
	// Exit 0 means fenced. Without it, a silent host counts as fenced once
	// its self-fence deadline has passed.
	FenceCommand []string `mapstructure:"fence_command"`
	// FenceTimeout bounds the fence command (its process group is killed).
	FenceTimeout time.Duration `mapstructure:"fence_timeout"`
	// CommandTimeout bounds a restore, destroy, unpause or cold start on an
	// agent.
	CommandTimeout time.Duration `mapstructure:"command_timeout"`
	// TrustedSources lists the identities ("role/name", or "role/*" for a
	// whole role) whose node events may fail, suspect, degrade or recover a
	// host: e.g. ["detector/det-a", "detector/det-b", "site/ipmi"]. Empty
	// trusts every publisher whose role may send the event (docs/security.md),
	// including anonymous ones, as on a bus without per-role credentials.
	TrustedSources []string `mapstructure:"trusted_sources"`
}

// DefaultConfig: a checkpoint every 5 minutes bounds the work lost to a host
// failure to minutes while keeping pauses rare.
func DefaultConfig() Config {
	id, err := os.Hostname()
	if err != nil || id == "" {
		id = "supervisor"
	}
	return Config{ID: id, CheckpointInterval: 5 * time.Minute, Checkpoint: checkpointer.DefaultCoordinatorConfig(),
		Policy: core.DefaultPolicy(), FenceTimeout: 30 * time.Second, CommandTimeout: 5 * time.Minute}
}

// Validate names the offending key under section.
func (c Config) Validate(section string) error {
	var errs []error
	if !nameRE.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("%s.id: %q must be letters, digits, '.', '_' or '-'", section, c.ID))
	}
	if c.CheckpointInterval != 0 && c.CheckpointInterval < time.Second {
		errs = append(errs, fmt.Errorf("%s.checkpoint_interval: must be 0 or at least 1s, got %s", section, c.CheckpointInterval))
	}
	errs = append(errs, c.Checkpoint.Validate(section+".checkpoint"))
	errs = append(errs, c.Policy.Validate(section+".policy"))
	if c.FenceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.fence_timeout: must be positive, got %s", section, c.FenceTimeout))
	}
	if _, err := newTrustPolicy(c.TrustedSources); err != nil {
		errs = append(errs, fmt.Errorf("%s.trusted_sources: %w", section, err))
	}
	if c.CommandTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.command_timeout: must be positive, got %s", section, c.CommandTimeout))
	}
	return errors.Join(errs...)
}
