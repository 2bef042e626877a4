// Package xen is the only door to a hypervisor.
//
// Hypervisor is the interface every caller uses. It has two drivers and a
// test program:
//   - XL runs the real Xen toolstack binary with the argument forms of Xen
//     4.17's xl (list -l and list, pause, unpause, save [-c|-p], restore
//     [-p], create, destroy, info), never through a shell, with the call's
//     context as its deadline: on expiry xl's whole process group is killed.
//     It parses xl's real output and maps its exit statuses and messages to
//     the sentinel errors of errors.go, and it checks what xl does not
//     report: pause and unpause exit 0 even when they fail, so both verify
//     the state with xl list afterwards.
//   - Sim keeps simulated domains in memory, one Sim per simulated host. Each
//     runs a deterministic workload whose counter lives in a real memory
//     image on disk, so a test can prove that a restored domain continues
//     from exactly the saved state.
//   - cmd/fakexl is a program with xl's command line, output formats, error
//     messages and exit codes, built on Sim and keeping its state in a
//     directory, so integration tests exec the production XL driver against
//     it. Its outputs are checked against real ones in testdata/.
//
// Facts of real Xen 4.17 the drivers encode (seen in the nested lab, see
// testdata/README.md): domain names are unique per host and a restored
// domain gets a new id; toolstack pauses nest; a paused PV guest cannot be
// saved (it cannot acknowledge the suspend request), so a checkpoint uses
// `save -p` rather than pause-then-save; a save that fails or is killed can
// leave a partial image and, if killed, a suspended domain ("---ss-").
//
// Errors: every error names the verb and the domain, image or config it
// concerns; match them with errors.Is against ErrDomainNotFound,
// ErrDomainExists, ErrTimeout (also context.DeadlineExceeded),
// ErrBadImage, ErrGuestUnresponsive, ErrNoMemory and ErrBadArgument, and
// with errors.As against *ToolstackError for xl's exit status and stderr.
//
// Concurrency: XL holds no state and Sim locks its own; both are safe for
// concurrent use. Two calls on the same domain at once are ordered by
// nothing but the hypervisor, as with xl itself.
//
// This package imports no other package of the project, and only the
// standard library.
package xen
