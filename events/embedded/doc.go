// Package embedded runs a NATS server with JetStream inside a xenft process:
// `xenft server` runs one on its own (one node of a cluster, or a single
// server), `xenft up` and the tests run one beside the roles. Config is the
// "server" section of the configuration; Start starts a server and waits
// until it accepts clients. Roles reach it like any other server, through
// package events (events.Connect; events.InProcess without a socket).
package embedded
