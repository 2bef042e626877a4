package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/xenft/xenft/events"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/agent"
	"github.com/xenft/xenft/checkpointer/executor"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/xen"
)

// AgentConfig is the "agent" section: the per-host agent in dom0.
type AgentConfig struct {
	// Host is this host's name in xenft; default: the machine's host name.
	Host string `mapstructure:"host"`
	// Driver is "xl" (the real toolstack) or "sim" (simulated domains, for
	// demos and tests).
	Driver string `mapstructure:"driver"`
	// XLPath is the xl binary the xl driver runs.
	XLPath string `mapstructure:"xl_path"`
	// SimDomains are booted at start with the sim driver, as "name:MiB"
	// (demos and tests; ignored by the xl driver).
	SimDomains []string `mapstructure:"sim_domains"`
	// StateDir keeps what the agent remembers across restarts: the newest
	// leader term it obeyed, synced before it obeys a newer one, so that it
	// never obeys an older leader again even if the bus lost that term.
	StateDir string `mapstructure:"state_dir"`
	// Checkpoint configures the per-host checkpointer.
	Checkpoint executor.Config `mapstructure:"checkpoint"`
	// Restarter configures restores and the self-fence (agent.restarter.fence).
	Restarter restarter.Config `mapstructure:"restarter"`
}

func defaultAgentConfig() AgentConfig {
	host, _ := os.Hostname()
	return AgentConfig{Host: host, Driver: "xl", XLPath: "xl", StateDir: "/var/lib/xenft/agent", Checkpoint: executor.DefaultConfig(), Restarter: restarter.DefaultConfig()}
}

// Validate names the offending key under section.
func (c AgentConfig) Validate(section string) error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, fmt.Errorf("%s.host: required", section))
	}
	switch c.Driver {
	case "xl":
		if c.XLPath == "" {
			errs = append(errs, fmt.Errorf("%s.xl_path: required with driver xl", section))
		}
	case "sim":
	default:
		errs = append(errs, fmt.Errorf("%s.driver: %q is not one of xl, sim", section, c.Driver))
	}
	for _, d := range c.SimDomains {
		if _, _, err := parseSimDomain(d); err != nil {
			errs = append(errs, fmt.Errorf("%s.sim_domains: %w", section, err))
		}
	}
	if c.StateDir == "" {
		errs = append(errs, fmt.Errorf("%s.state_dir: required (the agent keeps the newest leader term it obeyed there)", section))
	}
	errs = append(errs, c.Checkpoint.Validate(section+".checkpoint"))
	errs = append(errs, c.Restarter.Validate(section+".restarter"))
	if c.Checkpoint.SpoolDir == c.Restarter.SpoolDir {
		errs = append(errs, fmt.Errorf("%s.restarter.spool_dir: must differ from %s.checkpoint.spool_dir (each empties its own at start)", section, section))
	}
	return errors.Join(errs...)
}

func parseSimDomain(s string) (string, int, error) {
	name, mem, ok := strings.Cut(s, ":")
	n, err := strconv.Atoi(mem)
	if !ok || name == "" || err != nil || n <= 0 {
		return "", 0, fmt.Errorf("%q is not name:MiB", s)
	}
	return name, n, nil
}

// bootSimDomains creates the configured domains on a sim hypervisor from
// generated xl configs in dir.
func bootSimDomains(ctx context.Context, hv xen.Hypervisor, specs []string, dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, spec := range specs {
		name, mem, _ := parseSimDomain(spec)
		cfg := filepath.Join(dir, name+".cfg")
		body := fmt.Sprintf("name = %q\ntype = \"pv\"\nmemory = %d\nvcpus = 1\n", name, mem)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			return err
		}
		if err := hv.Create(ctx, cfg); err != nil {
			return fmt.Errorf("boot sim domain %s: %w", name, err)
		}
	}
	return nil
}

func newAgentCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the per-host agent: heartbeat beacon, checkpointer, restarter, self-fence",
		Long: `Runs in dom0 of every Xen host. It answers the supervisor's commands for this
host's domains through the xl toolstack (or the sim driver), and runs until
SIGINT or SIGTERM; domains it paused for a checkpoint are unpaused on stop.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setup(cmd, validateBus, validateStore, func(c Config) error { return c.Agent.Validate("agent") },
				func(c Config) error { return c.Heartbeat.Validate("heartbeat") }); err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runAgent(ctx, a)
		},
	}
	f := cmd.Flags()
	f.String("host", "", "this host's name (agent.host)")
	f.String("driver", "", "xl or sim (agent.driver)")
	f.String("xl-path", "", "xl binary (agent.xl_path)")
	f.StringSlice("sim-domains", nil, "with --driver sim: domains to boot, name:MiB (agent.sim_domains)")
	f.String("spool", "", "spool directory for images before upload (agent.checkpoint.spool_dir)")
	f.String("restore-spool", "", "spool directory for images being restored (agent.restarter.spool_dir)")
	f.String("state-dir", "", "where the agent keeps the newest leader term it obeyed (agent.state_dir)")
	a.flagKeys(cmd, map[string]string{"host": "agent.host", "driver": "agent.driver", "xl-path": "agent.xl_path",
		"sim-domains": "agent.sim_domains", "spool": "agent.checkpoint.spool_dir", "restore-spool": "agent.restarter.spool_dir",
		"state-dir": "agent.state_dir"})
	addBusFlags(a, cmd)
	return cmd
}

// agentConfig is the agent package's view of the configuration.
func agentConfig(c Config) agent.Config {
	return agent.Config{Host: c.Agent.Host, Heartbeat: c.Heartbeat, StateDir: c.Agent.StateDir, Checkpoint: c.Agent.Checkpoint, Restarter: c.Agent.Restarter}
}

func hypervisorFor(c AgentConfig) xen.Hypervisor {
	if c.Driver == "sim" {
		return &xen.Sim{Host: c.Host}
	}
	return &xen.XL{Path: c.XLPath}
}

func runAgent(ctx context.Context, a *app) error {
	cfg := a.cfg
	as := events.As(events.RoleAgent, cfg.Agent.Host)
	bus, err := connectWithRetry(ctx, cfg.Bus, "xenft-agent-"+cfg.Agent.Host, a,
		await(events.NamesFor(cfg.Bus.Prefix).Hosts()), as)
	if err != nil {
		return err
	}
	defer bus.Close()
	st, closeStore, err := openRoleStore(ctx, cfg.Store, cfg.Bus, "xenft-agent-"+cfg.Agent.Host, a, as)
	if err != nil {
		return err
	}
	defer closeStore()
	hv := hypervisorFor(cfg.Agent)
	if cfg.Agent.Driver == "sim" {
		if err := bootSimDomains(ctx, hv, cfg.Agent.SimDomains, cfg.Agent.Checkpoint.SpoolDir); err != nil {
			return err
		}
	}
	ag, err := agent.New(agentConfig(cfg), hv, bus, st, a.log)
	if err != nil {
		return err
	}
	return ag.Run(ctx)
}
