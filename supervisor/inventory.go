package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/internal/reqcheck"
	"github.com/xenft/xenft/supervisor/core"
)

// VMSpec is a VM as an operator registers it (key = name in xenft_vms).
type VMSpec struct {
	core.VMConfig
	// Host is where the VM runs now; the supervisor keeps it current as it
	// restarts the VM elsewhere.
	Host string `json:"host"`
	// ConfigPath is the xl configuration on the hosts, for cold starts.
	ConfigPath string `json:"config_path,omitempty"`
}

// GroupName is the group the VM rolls back with: its Group, or itself.
func (v VMSpec) GroupName() string {
	if v.Group != "" {
		return v.Group
	}
	return v.Name
}

// GroupSettings is how a group is checkpointed (key = name in xenft_groups).
// A group without settings is checkpointed with the defaults.
type GroupSettings struct {
	Name string `json:"name"`
	// CheckpointInterval between coordinated checkpoints; 0 disables the
	// schedule (checkpoints only on demand).
	CheckpointInterval Duration `json:"checkpoint_interval"`
	// ResumeEarly resumes each member right after its own capture.
	ResumeEarly bool `json:"resume_early,omitempty"`
	// Retain committed checkpoints (0: the supervisor's default).
	Retain int `json:"retain,omitempty"`
}

// Duration is a time.Duration that reads and writes as "30s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks a spec before it is stored; errors name the field.
func (v VMSpec) Validate() error {
	var errs []error
	if !nameRE.MatchString(v.Name) {
		errs = append(errs, fmt.Errorf("name: %q must be letters, digits, '.', '_' or '-'", v.Name))
	}
	if v.Group != "" && !nameRE.MatchString(v.Group) {
		errs = append(errs, fmt.Errorf("group: %q must be letters, digits, '.', '_' or '-'", v.Group))
	}
	if v.Host != "" && !nameRE.MatchString(v.Host) {
		errs = append(errs, fmt.Errorf("host: %q must be letters, digits, '.', '_' or '-'", v.Host))
	}
	if v.MemoryMiB <= 0 {
		errs = append(errs, fmt.Errorf("memory: must be positive, got %d MiB", v.MemoryMiB))
	}
	// The agent refuses a cold start from any other path (its
	// ColdStartRequest.Validate); refused here, the operator hears of it
	// when registering the VM, not when its host has died.
	if fe := reqcheck.OptionalPath("config_path", v.ConfigPath); fe != nil {
		errs = append(errs, fe)
	}
	switch v.Policy {
	case core.PolicyRestore, core.PolicyRestoreOrCold, core.PolicyNone:
	default:
		errs = append(errs, fmt.Errorf("policy: %q is not one of restore, restore-or-cold, none", v.Policy))
	}
	return errors.Join(errs...)
}

// Validate checks group settings; errors name the field.
func (g GroupSettings) Validate() error {
	var errs []error
	if !nameRE.MatchString(g.Name) {
		errs = append(errs, fmt.Errorf("name: %q must be letters, digits, '.', '_' or '-'", g.Name))
	}
	if g.CheckpointInterval != 0 && time.Duration(g.CheckpointInterval) < time.Second {
		errs = append(errs, fmt.Errorf("interval: must be 0 (on demand) or at least 1s, got %s", time.Duration(g.CheckpointInterval)))
	}
	if g.Retain != 0 && g.Retain < checkpointer.MinRetain {
		errs = append(errs, fmt.Errorf("retain: must be 0 (the supervisor's default) or at least %d (the previous checkpoint is the fallback if the newest commit is lost), got %d", checkpointer.MinRetain, g.Retain))
	}
	return errors.Join(errs...)
}

// Inventory is the registered VMs and group settings, kept in the xenft_vms
// and xenft_groups buckets so every supervisor (and the CLI) sees the same.
type Inventory struct {
	vms, groups jetstream.KeyValue
}

// NewInventory uses the two buckets.
func NewInventory(vms, groups jetstream.KeyValue) *Inventory {
	return &Inventory{vms: vms, groups: groups}
}

// PutVM registers or updates a VM.
func (i *Inventory) PutVM(ctx context.Context, v VMSpec) error {
	if err := v.Validate(); err != nil {
		return err
	}
	b, _ := json.Marshal(v)
	if _, err := i.vms.Put(ctx, v.Name, b); err != nil {
		return fmt.Errorf("register vm %s: %w", v.Name, err)
	}
	return nil
}

// DeleteVM unregisters a VM.
func (i *Inventory) DeleteVM(ctx context.Context, name string) error {
	if err := i.vms.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("unregister vm %s: %w", name, err)
	}
	return nil
}

// PutGroup stores a group's settings.
func (i *Inventory) PutGroup(ctx context.Context, g GroupSettings) error {
	if err := g.Validate(); err != nil {
		return err
	}
	b, _ := json.Marshal(g)
	if _, err := i.groups.Put(ctx, g.Name, b); err != nil {
		return fmt.Errorf("group %s: %w", g.Name, err)
	}
	return nil
}

// VMs returns every registered VM, sorted by name. Undecodable entries are
// skipped and reported in the error alongside the good ones.
func (i *Inventory) VMs(ctx context.Context) ([]VMSpec, error) {
	var out []VMSpec
	errs := each(ctx, i.vms, func(k string, b []byte) error {
		var v VMSpec
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("vm %s: %w", k, err)
		}
		out = append(out, v)
		return nil
	})
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, errs
}

// Groups returns the settings of every group that has a VM or settings,
// sorted by name; groups without settings get the zero settings.
func (i *Inventory) Groups(ctx context.Context) (map[string]GroupSettings, error) {
	out := map[string]GroupSettings{}
	errs := each(ctx, i.groups, func(k string, b []byte) error {
		var g GroupSettings
		if err := json.Unmarshal(b, &g); err != nil {
			return fmt.Errorf("group %s: %w", k, err)
		}
		out[g.Name] = g
		return nil
	})
	return out, errs
}

// each calls f for every live key of kv.
func each(ctx context.Context, kv jetstream.KeyValue, f func(key string, value []byte) error) error {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = lister.Stop() }()
	var errs []error
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := f(k, e.Value()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// VM returns one registered VM.
func (i *Inventory) VM(ctx context.Context, name string) (VMSpec, error) {
	e, err := i.vms.Get(ctx, name)
	if err != nil {
		return VMSpec{}, fmt.Errorf("vm %s: %w", name, err)
	}
	var v VMSpec
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return VMSpec{}, fmt.Errorf("vm %s: %w", name, err)
	}
	return v, nil
}
