// Package checkpointer owns coordinated checkpoints: the per-host executor that
// pauses, snapshots, saves and streams a domain's image into a store; the group
// coordinator (run by the leading supervisor) that drives the two-phase protocol
// so that every member of a group is captured at the same cut; and the catalog
// of checkpoint records kept in the xenft_checkpoints key-value bucket.
//
// It declares the few hypervisor and store calls it needs as small interfaces of
// its own; cmd/xenft wires a xen driver and a store in.
package checkpointer
