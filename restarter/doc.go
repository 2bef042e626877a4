// Package restarter is the per-host executor of the supervisor's restart
// decisions: restore a domain from a verified image, destroy, unpause and
// cold-start. It obeys commands carrying an epoch and refuses stale ones; it
// never decides anything on its own.
//
// It declares the hypervisor and store calls it needs as small interfaces of its
// own; cmd/xenft wires a xen driver and a store in.
package restarter
