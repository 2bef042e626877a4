package restarter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/xenft/xenft/restarter"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := restarter.DefaultConfig().Validate("agent.restart"); err != nil {
		t.Fatal(err)
	}
}

// Validate names the offending key (STYLE.md habit 6).
func TestValidateNamesTheOffendingKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*restarter.Config)
		want string
	}{
		{"no spool", func(c *restarter.Config) { c.SpoolDir = "" }, "agent.restart.spool_dir: required"},
		{"restore timeout", func(c *restarter.Config) { c.RestoreTimeout = 0 }, "agent.restart.restore_timeout"},
		{"toolstack timeout", func(c *restarter.Config) { c.ToolstackTimeout = -time.Second }, "agent.restart.toolstack_timeout"},
		{"watch interval", func(c *restarter.Config) { c.WatchInterval = 0 }, "agent.restart.watch_interval"},
		{"renew interval", func(c *restarter.Config) { c.Fence.RenewInterval = 0 }, "agent.restart.fence.renew_interval"},
		{"self timeout too short", func(c *restarter.Config) { c.Fence.SelfTimeout = 2 * time.Second },
			"agent.restart.fence.self_timeout: must be at least 3 × fence.renew_interval"},
		{"action timeout too long", func(c *restarter.Config) { c.Fence.ActionTimeout = c.Fence.SelfTimeout - time.Second },
			"agent.restart.fence.action_timeout: must be at most fence.self_timeout − 3 × fence.renew_interval"},
		{"action", func(c *restarter.Config) { c.Fence.Action = "reboot" }, "agent.restart.fence.action"},
		{"spare", func(c *restarter.Config) { c.Fence.Spare = []string{""} }, "agent.restart.fence.spare"},
		{"watchdog not absolute", func(c *restarter.Config) { c.Fence.Watchdog = "dev/watchdog" }, "agent.restart.fence.watchdog: must be an absolute path"},
		{"watchdog interval", func(c *restarter.Config) { c.Fence.WatchdogInterval = -time.Second }, "agent.restart.fence.watchdog_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := restarter.DefaultConfig()
			tc.edit(&c)
			err := c.Validate("agent.restart")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want it to name %q", err, tc.want)
			}
		})
	}
}
