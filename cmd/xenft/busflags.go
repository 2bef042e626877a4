package main

import "github.com/spf13/cobra"

// addBusFlags adds the flags every client of the bus shares.
func addBusFlags(a *app, cmd *cobra.Command) {
	cmd.Flags().StringSlice("nats", nil, "NATS server URLs (bus.urls), e.g. nats://127.0.0.1:4222")
	a.flagKeys(cmd, map[string]string{"nats": "bus.urls"})
}
