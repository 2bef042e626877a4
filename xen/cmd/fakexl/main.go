// Command fakexl is a stand-in for Xen's `xl` toolstack, for tests: the
// same command line, output formats, error messages and exit codes as real
// xl 4.17 for the subset xenft uses (list [-l], create, pause, unpause,
// save [-c|-p], restore [-p], destroy, info, domid, domname), over the
// simulated hypervisor of package xen, so that the production xl driver runs
// unchanged against it.
//
// Environment:
//
//	FAKEXL_STATE            state directory (required); see state.go
//	FAKEXL_SUSPEND_TIMEOUT  how long a save of a paused domain waits for the
//	                        suspend acknowledgement before failing (real xl:
//	                        60s, the default)
//	FAKEXL_RATE             workload progress units per second (default 1000)
//	FAKEXL_TOTAL_MEMORY     host memory in MiB (default 4096)
//	FAKEXL_DOM0_MEMORY      dom0 memory in MiB (default 1536)
//	FAKEXL_HOST             host name for `xl info` (default "(none)", as in
//	                        the nested lab's dom0)
//	FAKEXL_CALLS            if set, a file to which every invocation appends
//	                        its arguments as a JSON array on one line
//
// Fault switches: a file $FAKEXL_STATE/faults/<verb> holding "fail", "hang"
// or (for save) "truncate" makes the next call of that verb fail, hang until
// killed, or write an image cut in half and report success. The file is
// removed when used.
//
// Three subcommands that real xl does not have serve tests: `sim-progress
// <dom>` prints a domain's workload counter, `sim-crash <dom>` crashes it,
// and `sim-poweroff` makes every guest vanish as a power cut would (a fence
// command for the multi-process tests in e2e/).
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xenft/xenft/xen"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == hangChildArg {
		for {
			time.Sleep(time.Hour)
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// xlCall is one invocation: parsed arguments, the loaded sim, and where
// output goes.
type xlCall struct {
	st     *store
	state  stateFile
	sim    *xen.Sim
	stdout io.Writer
	stderr io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	// A test that counts calls must not miss one: no record, no call.
	if err := recordCall(args); err != nil {
		fmt.Fprintf(stderr, "fakexl: %v\n", err)
		return 1
	}
	// Global options come before the subcommand, as with xl's getopt.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && len(args[0]) > 1 {
		if strings.Trim(args[0], "-vfNtT") != "" {
			fmt.Fprint(stderr, usage)
			return 1
		}
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 1
	}
	verb, rest := args[0], args[1:]
	handler, ok := verbs[verb]
	if !ok {
		fmt.Fprint(stderr, "command not implemented\n")
		return 1
	}
	st, err := openStore(os.Getenv("FAKEXL_STATE"))
	if err != nil {
		fmt.Fprintf(stderr, "fakexl: %v\n", err)
		return 1
	}
	defer st.close()
	state, err := st.load()
	if err != nil {
		fmt.Fprintf(stderr, "fakexl: %v\n", err)
		return 1
	}
	c := &xlCall{st: st, state: state, stdout: stdout, stderr: stderr, sim: &xen.Sim{
		Host:           envOr("FAKEXL_HOST", "(none)"),
		Rate:           envUint("FAKEXL_RATE", 0),
		TotalMemoryMiB: envUint("FAKEXL_TOTAL_MEMORY", 0),
		Dom0MemoryMiB:  envUint("FAKEXL_DOM0_MEMORY", 0),
	}}
	if err := c.sim.Import(state.Sim); err != nil {
		fmt.Fprintf(stderr, "fakexl: %v\n", err)
		return 1
	}
	switch st.fault(verb) {
	case "fail":
		return c.fail(verb, rest)
	case "hang":
		if verb == "save" { // hang inside the save: the guest is suspended by then
			if _, pos := flags(rest, "cpD"); len(pos) > 0 {
				c.persistSuspended(pos[0])
			}
		}
		st.hang()
	case "truncate":
		defer func() { c.truncateSaved(rest) }()
	}
	code := handler(c, rest)
	c.state.Sim = c.sim.Export()
	if err := st.save(c.state); err != nil {
		fmt.Fprintf(stderr, "fakexl: %v\n", err)
		return 1
	}
	return code
}

// fail is the "fail" fault: the verb fails the way real xl fails at it, and
// the domain is left as xl leaves it.
func (c *xlCall) fail(verb string, args []string) int {
	id := 0
	defer func() { c.state.Sim = c.sim.Export(); c.st.save(c.state) }()
	switch verb {
	case "save":
		_, pos := flags(args, "cpD")
		if len(pos) >= 2 {
			// Real xl writes straight to the target, so an interrupted save
			// leaves a partial image behind; the domain keeps running.
			if d, ok := c.lookup(pos[0]); ok {
				id = d.ID
				c.partialImage(pos[0], pos[1])
			}
		}
		fmt.Fprint(c.stderr, msgSaveNoSpace(id))
	case "restore":
		fmt.Fprint(c.stderr, msgRestoreCut(c.allocID())) // xl took an id for the domain it could not build
	case "pause", "unpause":
		// xl's way to fail at these: libxl's error, the domain unchanged, exit 0.
		verbing := map[string]string{"pause": "Pausing", "unpause": "Unpausing"}[verb]
		if len(args) > 0 {
			if d, ok := c.lookup(args[0]); ok {
				id = d.ID
			}
		}
		fmt.Fprintf(c.stderr, "libxl: error: libxl_domain.c:587:libxl_domain_%s: Domain %d:%s domain: Invalid argument\n", verb, id, verbing)
		return 0
	default:
		fmt.Fprintf(c.stderr, "libxl: error: fakexl: injected failure of %s\n", verb)
	}
	return 1
}

// allocID takes a domain id as xl does for a domain it then fails to build.
func (c *xlCall) allocID() int {
	st := c.sim.Export()
	st.NextID++
	c.sim.Import(st)
	return st.NextID
}

const usage = "Usage xl [-vfNtT] <subcommand> [args]\n\n" +
	"xl full list of subcommands:\n\n" +
	" create              Create a domain from config file <filename>\n" +
	" list                List information about all/some domains\n" +
	" destroy             Terminate a domain immediately\n" +
	" pause               Pause execution of a domain\n" +
	" unpause             Unpause a paused domain\n" +
	" save                Save a domain state to restore later\n" +
	" restore             Restore a domain from a saved state\n" +
	" info                Get information about Xen host\n" +
	" domid               Convert a domain name to domain id\n" +
	" domname             Convert a domain id to domain name\n"

// flags splits xl-style arguments: single-letter options from the set
// allowed (combinable, "-pe"), up to the first non-option or "--".
func flags(args []string, allowed string) (map[byte]bool, []string) {
	set := map[byte]bool{}
	for i, a := range args {
		if a == "--" {
			return set, args[i+1:]
		}
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			return set, args[i:]
		}
		for j := 1; j < len(a); j++ {
			if strings.IndexByte(allowed, a[j]) < 0 {
				return nil, nil
			}
			set[a[j]] = true
		}
	}
	return set, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envUint(key string, def uint64) uint64 {
	n, err := strconv.ParseUint(os.Getenv(key), 10, 64)
	if err != nil {
		return def
	}
	return n
}

func isNumeric(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
