// Package executor is the per-host checkpointer that every agent runs: it
// answers the checkpoint protocol's verbs (checkpoint.capture, resume, upload,
// abort; see package checkpointer) for the domains of its host, through the
// few hypervisor calls it declares, the host's spool directory and the image
// store. It obeys; the coordinator decides. A request its Validate refuses
// (checkpointer/validate.go) is answered bad_request before anything else,
// its epoch included, is looked at.
//
// It is a package of its own so that the coordinator and catalog in
// checkpointer, which the supervisor runs, do not depend on the xen drivers:
// the supervisor never imports xen.
package executor
