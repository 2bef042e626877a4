// Package xen is the only door to a hypervisor.
//
// Hypervisor is the interface every caller uses; it has three implementations:
//   - the xl driver runs the real Xen toolstack binary (xl list -l, xl save,
//     xl restore, xl pause, xl unpause, xl destroy, xl create, xl info) with a
//     timeout on every call and maps its exit statuses and stderr to typed errors;
//   - the sim driver keeps simulated domains in memory, each with a deterministic
//     workload whose progress lives inside a real memory image on disk, so a test
//     can prove that a restored domain continues from exactly the saved state;
//   - cmd/fakexl is a program with xl's command line and output formats, built on
//     the sim, so integration tests exec the production xl driver against it.
//
// This package imports no other package of the project.
package xen
