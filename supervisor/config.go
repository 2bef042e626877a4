package supervisor

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/xenft/xenft/checkpointer"
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
}

// DefaultConfig: a checkpoint every 5 minutes bounds the work lost to a host
// failure to minutes while keeping pauses rare.
func DefaultConfig() Config {
	id, err := os.Hostname()
	if err != nil || id == "" {
		id = "supervisor"
	}
	return Config{ID: id, CheckpointInterval: 5 * time.Minute, Checkpoint: checkpointer.DefaultCoordinatorConfig()}
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
	return errors.Join(errs...)
}
