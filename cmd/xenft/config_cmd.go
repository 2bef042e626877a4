package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func newConfigCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "keys",
		Short: "List every configuration key, its environment variable and default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, k := range a.loader.keys() {
				fmt.Fprintf(cmd.OutOrStdout(), "%-34s %-40s %v\n", k, envName(k), a.loader.v.Get(k))
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (defaults, --config, environment) as YAML",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setup(cmd); err != nil {
				return err
			}
			settings := a.loader.v.AllSettings()
			maskSecrets(settings)
			out, err := yaml.Marshal(settings)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})
	return cmd
}

// maskSecrets hides passwords so `config show` output can be pasted into a
// ticket.
func maskSecrets(m map[string]any) {
	for k, v := range m {
		switch vv := v.(type) {
		case map[string]any:
			maskSecrets(vv)
		case string:
			if strings.Contains(k, "password") && vv != "" {
				m[k] = "********"
			}
		}
	}
}
