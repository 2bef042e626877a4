// Package embedded runs a NATS server with JetStream inside a xenft process:
// `xenft server` runs one on its own (one node of a cluster, or a single
// server), `xenft up` and the tests run one beside the roles. Config is the
// "server" section of the configuration; Start starts a server and waits
// until it accepts clients. Roles reach it like any other server, through
// package events (events.Connect; events.InProcess without a socket).
//
// Who may connect (auth.go): with server.auth.identities the server loads
// the identities file of package events/auth and lets each identity in
// with its nkey and its role's permissions, over TLS (server.tls);
// server.auth.user is one more user, with every permission. The server's
// own connection (ConnectOwner: `xenft server` and `xenft up` create the
// stream and buckets on it) authenticates with a key made at start and
// allowed only in this process. Routes (server.cluster.tls) are mutual TLS
// and accept only a peer presenting the key of this server's own
// certificate. No leaf node listener is configured.
package embedded
