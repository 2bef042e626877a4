package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/supervisor"
)

// busCall is what a command does on the bus: send a request (a command,
// an event, a read of a bucket) and print the answer. busCommand runs its
// steps in the order of its fields.
type busCall struct {
	// check vets the command's own arguments, flags and input before any
	// configuration is read, so that a usage error is reported first.
	// Optional.
	check func(cmd *cobra.Command, args []string) error
	// configured checks the loaded configuration beyond the bus settings,
	// before connecting; a usage error it returns must be marked (asUsage).
	// Optional.
	configured func(Config) error
	// client names the connection (default xenft-cli).
	client string
	// run does the work on the connection, printing to cmd's output.
	run busRun
}

// busRun is a command's work on its connection to the bus.
type busRun func(cmd *cobra.Command, args []string, bus *events.Bus) error

// busCommand completes c (its Use, Short, Args, ...) as a command that
// talks to the bus: it adds the flags every bus client shares and a RunE
// that takes call's steps, loading and checking the configuration (bus.*)
// after check and connecting after configured, and closes the connection
// when run returns.
func (a *app) busCommand(c *cobra.Command, call busCall) *cobra.Command {
	addBusFlags(a, c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if call.check != nil {
			if err := call.check(cmd, args); err != nil {
				return err
			}
		}
		if err := a.setup(cmd, validateBus); err != nil {
			return err
		}
		if call.configured != nil {
			if err := call.configured(a.cfg); err != nil {
				return err
			}
		}
		cfg := a.cfg.Bus
		cfg.ClientName = call.client
		if cfg.ClientName == "" {
			cfg.ClientName = "xenft-cli"
		}
		bus, err := events.Connect(cfg, a.log)
		if err != nil {
			return err
		}
		defer bus.Close()
		return call.run(cmd, args, bus)
	}
	return c
}

// operatorCommand completes c as a request to the leading supervisor:
// request makes it from the arguments (or refuses them as a usage error)
// and names what to print once the supervisor has accepted it.
func (a *app) operatorCommand(c *cobra.Command, request func(args []string) (req supervisor.OperatorRequest, done string, err error)) *cobra.Command {
	var req supervisor.OperatorRequest
	var done string
	return a.busCommand(c, busCall{
		check: func(_ *cobra.Command, args []string) (err error) {
			req, done, err = request(args)
			return err
		},
		run: func(cmd *cobra.Command, _ []string, bus *events.Bus) error {
			if req.By == "" {
				if u := os.Getenv("USER"); u != "" {
					req.By = u
				} else {
					req.By = "xenft-cli"
				}
			}
			if err := supervisor.RequestOperator(cmd.Context(), bus, req, 30*time.Second); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), done)
			return nil
		},
	})
}

// printReply prints a command's answer: as JSON with --json, else as table
// writes it for a person.
func printReply(out io.Writer, asJSON bool, v any, table func(io.Writer)) error {
	if asJSON {
		return json.NewEncoder(out).Encode(v)
	}
	table(out)
	return nil
}

// withCatalog is run with the checkpoint catalog opened on the connection.
func withCatalog(run func(cmd *cobra.Command, args []string, cat *checkpointer.Catalog, bus *events.Bus) error) busRun {
	return func(cmd *cobra.Command, args []string, bus *events.Bus) error {
		kv, err := bus.KV(cmd.Context(), bus.Names().Checkpoints())
		if err != nil {
			return missingHint(err, "has a supervisor or server run against this bus?")
		}
		return run(cmd, args, checkpointer.NewCatalog(kv), bus)
	}
}

// missingHint adds hint to err, a bucket that could not be opened, unless
// the server refused this connection (the hint is about a missing bucket).
func missingHint(err error, hint string) error {
	if errors.Is(err, events.ErrPermissionDenied) {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// withInventory is run with the inventory of VMs and groups opened on the
// connection, once the buckets are known to exist (a supervisor or server
// creates them; an operator's credential may not).
func withInventory(run func(cmd *cobra.Command, args []string, inv *supervisor.Inventory) error) busRun {
	return func(cmd *cobra.Command, args []string, bus *events.Bus) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		actx, acancel := context.WithTimeout(ctx, bus.RequestTimeout())
		err := bus.AwaitResources(actx, bus.Names().VMs(), bus.Names().Groups())
		acancel()
		if err != nil {
			return err
		}
		vms, err := bus.KV(ctx, bus.Names().VMs())
		if err != nil {
			return err
		}
		groups, err := bus.KV(ctx, bus.Names().Groups())
		if err != nil {
			return err
		}
		return run(cmd, args, supervisor.NewInventory(vms, groups))
	}
}
