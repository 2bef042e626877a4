// Package auth gives each xenft role an identity on the bus and the least
// it may do there.
//
// Identities: every daemon and script has a role (supervisor, detector,
// agent, site, monitor, operator) and a name (the host of an agent, the id
// of a detector or supervisor, the name of a site's plug-in), and
// authenticates with an nkey (a NATS user key pair) whose seed only it
// holds. The identities file (identities.json: the prefix, and each role,
// name and public key) is all a server needs to know them
// (server.auth.identities).
//
// Permissions: Permissions is a pure function from (prefix, role, name) to
// the NATS server's publish and subscribe allow and deny lists: an identity
// publishes events only under its own role and name (the last two tokens of
// an event's subject, which is how consumers know the publisher), an agent
// only its own heartbeat, lease and grant requests, only supervisors send
// commands and write their lease and state, a monitor only reads. Every
// identity reads its own inboxes only (events.InboxPrefix). The table, and
// what permissions cannot express, is docs/security.md.
//
// A credential set: Init writes one for a new cluster (a CA, the servers'
// certificate, a seed per identity, the identities file, and optionally
// client certificates), refusing to overwrite; Add issues one more identity.
// Secrets are written 0600 and never overwritten.
//
// Files and where they live:
//
//	permissions.go  the role table (Permissions)
//	jsapi.go        the JetStream API subjects a permission names
//	identities.go   the identities file (File, Load, NkeyUsers)
//	init.go         Init and Add: writing a credential set
//	pki.go          the CA and certificates (standard library only)
//
// Everything here is safe for concurrent use; Init and Add are not meant
// to run concurrently on one directory.
package auth
