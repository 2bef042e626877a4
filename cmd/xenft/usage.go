package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every way a command line can be wrong is a usageError, so that main exits 2
// for all of them: an unknown or missing subcommand, a missing or extra
// positional argument, an unknown flag, a flag value of the wrong type, and
// (loader.load) a configuration value of the wrong type. Cobra returns plain
// errors for most of these and prints help with exit 0 for a group command
// given an unknown subcommand, so enforceUsage rewires the tree once it is
// built rather than each command repeating it.

// enforceUsage makes every command of root refuse bad usage with a
// usageError naming the command and how it is used.
func enforceUsage(a *app, root *cobra.Command) {
	root.SetFlagErrorFunc(a.flagError)
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usageErrorf("help: no command %q (see %s --help)", strings.Join(args, " "), c.Root().Name())
			}
			return cmd.Help()
		},
	})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		switch {
		case c.Name() == "help":
		case c.HasSubCommands() && !c.Runnable():
			// A group: it does nothing by itself.
			c.Args = subcommandArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				return usageErrorf("%smissing command: one of %s (see %s --help)", prefix(cmd), subcommands(cmd), cmd.CommandPath())
			}
		case c.Runnable():
			validate := c.Args
			if validate == nil || sameFunc(validate, cobra.NoArgs) {
				// Cobra takes any arguments when Args is nil, and
				// NoArgs calls an argument an unknown command.
				validate = noArgs
			}
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := validate(cmd, args); err != nil {
					return &usageError{fmt.Errorf("%s%w (usage: %s)", prefix(cmd), err, cmd.UseLine())}
				}
				return nil
			}
		}
		c.SuggestionsMinimumDistance = 2
	}
	walk(root)
}

func sameFunc(a, b cobra.PositionalArgs) bool {
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}

// noArgs is the arity of a command that takes no positional argument.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}

// subcommandArgs refuses what a group command was given instead of one of
// its subcommands.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := ""
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageErrorf("%sunknown command %q%s: one of %s", prefix(cmd), args[0], hint, subcommands(cmd))
}

func subcommands(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// prefix starts an error with cmd's path below the root ("vm add: "), or
// with nothing for the root: the line main prints starts with "xenft: ".
func prefix(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ") + ": "
}

// flagError turns a flag the command line got wrong into a usageError; a
// value of the wrong type is named with the type expected and, for a flag
// that sets a configuration key, the key and its environment variable.
func (a *app) flagError(cmd *cobra.Command, err error) error {
	var bad *pflag.InvalidValueError
	if !errors.As(err, &bad) {
		return &usageError{fmt.Errorf("%s%w", prefix(cmd), err)}
	}
	f := bad.GetFlag()
	msg := fmt.Sprintf("--%s: %q is not %s", f.Name, bad.GetValue(), typeNoun(f.Value.Type(), bad.Unwrap()))
	if key := a.flags[cmd][f.Name]; key != "" {
		msg += fmt.Sprintf(" (it sets %s, as %s does)", key, envName(key))
	}
	return usageErrorf("%s", msg)
}

// typeNoun says what a value of a pflag type (Value.Type) looks like.
func typeNoun(typ string, cause error) string {
	switch typ {
	case "duration":
		return "a duration such as 30s, 5m or 1h30m"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	}
	return fmt.Sprintf("a valid %s: %v", typ, cause)
}
