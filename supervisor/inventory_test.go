package supervisor_test

import (
	"strings"
	"testing"

	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
)

// A VM's config path is checked when it is registered by the rule its agent
// applies to a cold start: absolute, clean, no control bytes.
func TestVMSpecConfigPathIsOneTheAgentAccepts(t *testing.T) {
	spec := func(path string) supervisor.VMSpec {
		return supervisor.VMSpec{VMConfig: core.VMConfig{Name: "vm1", MemoryMiB: 64, Policy: core.PolicyRestoreOrCold}, ConfigPath: path}
	}
	for _, path := range []string{"", "/etc/xen/vm1.cfg"} {
		if err := spec(path).Validate(); err != nil {
			t.Errorf("config_path %q refused: %v", path, err)
		}
	}
	for path, want := range map[string]string{
		"vm1.cfg":             "must be an absolute path",
		"/etc/xen/../vm1.cfg": "must be a clean path",
		"/etc/xen/vm1\n.cfg":  "control byte",
	} {
		if err := spec(path).Validate(); err == nil || !strings.Contains(err.Error(), "config_path") || !strings.Contains(err.Error(), want) {
			t.Errorf("config_path %q: %v, want %q", path, err, want)
		}
	}
}
