package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

// app is what every subcommand shares: the configuration loader bound to the
// global flags, and after loading, the configuration and logger.
type app struct {
	loader     *loader
	configFile string
	// flags maps each command's flag names to configuration keys; only the
	// running command's flags are bound, since several commands share keys.
	flags map[*cobra.Command]map[string]string
	cfg   Config
	log   hclog.Logger
}

func newRootCommand() *cobra.Command {
	a := &app{loader: newLoader(), flags: map[*cobra.Command]map[string]string{}}
	root := &cobra.Command{
		Use:   "xenft",
		Short: "Unattended fault tolerance for Xen virtual machine clusters",
		Long: `xenft notices dead hosts, makes sure they are fenced, and brings their virtual
machines back on healthy hosts from their latest consistent checkpoint.

Every setting can come from --config FILE (YAML), the environment
(XENFT_<SECTION>_<KEY>, e.g. XENFT_BUS_URLS) or flags.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFile, "config", "", "YAML configuration file")
	pf.String("log-level", "info", "log level: trace, debug, info, warn, error")
	pf.Bool("log-json", false, "log JSON lines instead of text")
	_ = a.loader.bindFlag("log.level", pf, "log-level") // both keys exist; TestEveryFlagIsBound checks
	_ = a.loader.bindFlag("log.json", pf, "log-json")

	root.AddCommand(
		newUpCommand(a),
		newServerCommand(a),
		newEventsCommand(a),
		newEventCommand(a),
		newConfigCommand(a),
		newAgentCommand(a),
		newSupervisorCommand(a),
		newDetectorCommand(a),
		newVMCommand(a),
		newGroupCommand(a),
		newCheckpointCommand(a),
		newStatusCommand(a),
		newHostCommand(a),
		newRestartsCommand(a),
		newAuthCommand(a),
		newVersionCommand(),
	)
	enforceUsage(a, root)
	return root
}

// flagKeys declares which configuration key each of cmd's flags sets.
func (a *app) flagKeys(cmd *cobra.Command, flagToKey map[string]string) {
	m := a.flags[cmd]
	if m == nil {
		m = map[string]string{}
		a.flags[cmd] = m
	}
	for f, k := range flagToKey {
		m[f] = k
	}
}

// setup binds cmd's flags, loads the configuration, validates the sections the
// command uses and creates the logger. Every role calls it first.
func (a *app) setup(cmd *cobra.Command, validate ...func(Config) error) error {
	for flag, key := range a.flags[cmd] {
		if err := a.loader.bindFlag(key, cmd.Flags(), flag); err != nil {
			return err
		}
	}
	cfg, err := a.loader.load(a.configFile)
	if err != nil {
		return err
	}
	if err := cfg.Log.Validate("log"); err != nil {
		return asUsage(err)
	}
	for _, v := range validate {
		if err := v(cfg); err != nil {
			return asUsage(err)
		}
	}
	a.cfg = cfg
	a.log = hclog.New(&hclog.LoggerOptions{
		Name:       "xenft",
		Level:      hclog.LevelFromString(cfg.Log.Level),
		JSONFormat: cfg.Log.JSON,
		Output:     os.Stderr,
	})
	return nil
}

// signalContext ends on SIGINT or SIGTERM: every long-running role stops
// cleanly on either.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

func validateBus(c Config) error    { return c.Bus.Validate("bus") }
func validateServer(c Config) error { return c.Server.Validate("server") }
func validateStore(c Config) error  { return c.Store.Validate("store") }
