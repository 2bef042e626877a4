package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notYetCommands are roles of DESIGN.md whose issues have not landed yet. They
// exist so the command line has its final shape; each says plainly that it
// does nothing yet and exits non-zero.
func notYetCommands() []*cobra.Command {
	roles := []struct{ use, short, issue string }{
	}
	var cmds []*cobra.Command
	for _, r := range roles {
		r := r
		cmds = append(cmds, &cobra.Command{
			Use:                r.use,
			Short:              r.short + " (not yet)",
			DisableFlagParsing: true,
			RunE: func(*cobra.Command, []string) error {
				return fmt.Errorf("%s: not yet implemented (arrives with %s)", r.use, r.issue)
			},
		})
	}
	return cmds
}
