package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xenft/xenft/xen"
)

var verbs map[string]func(*xlCall, []string) int

func init() {
	verbs = map[string]func(*xlCall, []string) int{
		"list":         (*xlCall).list,
		"create":       (*xlCall).create,
		"pause":        (*xlCall).pause,
		"unpause":      (*xlCall).unpause,
		"destroy":      (*xlCall).destroy,
		"save":         (*xlCall).save,
		"restore":      (*xlCall).restore,
		"info":         (*xlCall).info,
		"domid":        (*xlCall).domid,
		"domname":      (*xlCall).domname,
		"sim-progress": (*xlCall).simProgress,
		"sim-crash":    (*xlCall).simCrash,
		"sim-poweroff": (*xlCall).simPowerOff,
	}
}

var ctx = context.Background()

// usageErr is for argument errors; real xl prints the subcommand's usage
// and exits 2 (the text here is shorter).
func (c *xlCall) usageErr(verb, why string) int {
	fmt.Fprintf(c.stderr, "'xl %s' %s.\n\nUsage: xl [-v] %s\n", verb, why, verb)
	return 2
}

// lookup resolves a domain name or numeric id, as xl does.
func (c *xlCall) lookup(dom string) (xen.Domain, bool) {
	doms, _ := c.sim.List(ctx)
	for _, d := range doms {
		if d.Name == dom || (isNumeric(dom) && fmt.Sprint(d.ID) == dom) {
			return d, true
		}
	}
	return xen.Domain{}, false
}

// resolve is lookup plus xl's error for a bad name; ok=false means the
// caller must exit 1. Unknown numeric ids are left to each verb, because
// xl reports them differently per verb.
func (c *xlCall) resolve(dom string) (xen.Domain, bool, int) {
	d, ok := c.lookup(dom)
	if ok {
		return d, true, 0
	}
	if !isNumeric(dom) {
		fmt.Fprint(c.stderr, msgInvalidID(dom))
		return d, false, 1
	}
	return xen.Domain{Name: dom, ID: atoi(dom)}, false, 0
}

func (c *xlCall) dom0MiB() uint64 { return envUint("FAKEXL_DOM0_MEMORY", 1536) }

func (c *xlCall) list(args []string) int {
	set, pos := flags(args, "lv")
	if set == nil {
		return c.usageErr("list", "invalid option")
	}
	doms, _ := c.sim.List(ctx)
	showDom0 := true
	if len(pos) > 0 {
		if pos[0] == "0" || pos[0] == "Domain-0" {
			doms = nil
		} else {
			d, ok, code := c.resolve(pos[0])
			if code != 0 {
				return code
			}
			if !ok {
				fmt.Fprintf(c.stderr, "Error: Domain '%s' does not exist.\n", pos[0])
				return 1
			}
			doms, showDom0 = []xen.Domain{d}, false
		}
	}
	if set['l'] {
		var entries []jnode
		if showDom0 {
			entries = append(entries, obj("domid", 0, "config", dom0Config(c.dom0MiB())))
		}
		for _, d := range doms {
			cfg, _ := c.sim.Config(d.Name)
			entries = append(entries, obj("domid", d.ID, "config", domainConfig(d, cfg)))
		}
		fmt.Fprint(c.stdout, listJSON(entries))
		return 0
	}
	var b strings.Builder
	b.WriteString(listHeader)
	if showDom0 {
		// dom0 is charged a tenth of the wall time since the fake host "booted".
		b.WriteString(listRow("Domain-0", 0, c.dom0MiB(), 1, "r-----", time.Since(c.state.Started)/10))
	}
	for _, d := range doms {
		b.WriteString(listRow(d.Name, d.ID, d.MemoryMiB, d.VCPUs, d.Flags, d.CPUTime))
	}
	fmt.Fprint(c.stdout, b.String())
	return 0
}

func (c *xlCall) create(args []string) int {
	set, pos := flags(args, "pqe")
	if set == nil || len(pos) < 1 {
		return c.usageErr("create", "requires a config file")
	}
	cfgPath := pos[0]
	fmt.Fprintf(c.stderr, "Parsing config from %s\n", cfgPath)
	cfg, err := xen.LoadConfig(cfgPath)
	if err != nil {
		// Not captured from real xl: libxlu's wording for these cases.
		fmt.Fprintf(c.stderr, "Failed to parse config: %v\n", err)
		return 3
	}
	if err := c.sim.Create(ctx, cfgPath); err != nil {
		return c.buildFailed(cfg.Name, err, 3)
	}
	if set['p'] {
		c.sim.Pause(ctx, cfg.Name)
	}
	return 0
}

// buildFailed prints xl's messages for a domain it could not build and
// takes the domain id xl would have used.
func (c *xlCall) buildFailed(name string, err error, code int) int {
	id := c.allocID()
	switch {
	case errors.Is(err, xen.ErrDomainExists):
		fmt.Fprint(c.stderr, msgExists(id, name))
	case errors.Is(err, xen.ErrNoMemory):
		fmt.Fprint(c.stderr, "failed to free memory for the domain\n")
	default:
		fmt.Fprintf(c.stderr, "libxl: error: fakexl: %v\n", err)
	}
	return code
}

func (c *xlCall) pause(args []string) int {
	if len(args) != 1 {
		return c.usageErr("pause", "requires exactly 1 argument")
	}
	d, ok, code := c.resolve(args[0])
	if code != 0 || (ok && d.ID == 0) {
		return code
	}
	if !ok { // unknown id: xl prints libxl's error and still exits 0
		fmt.Fprintf(c.stderr, "libxl: error: libxl_domain.c:587:libxl_domain_pause: Domain %d:Pausing domain: No such process\n", d.ID)
		return 0
	}
	c.sim.XLPause(ctx, d.Name)
	return 0
}

func (c *xlCall) unpause(args []string) int {
	if len(args) != 1 {
		return c.usageErr("unpause", "requires exactly 1 argument")
	}
	d, ok, code := c.resolve(args[0])
	if code != 0 {
		return code
	}
	if !ok {
		fmt.Fprintf(c.stderr, "libxl: error: libxl_dom.c:37:libxl__domain_type: unable to get domain type for domid=%d\n", d.ID)
		return 0
	}
	if err := c.sim.XLUnpause(ctx, d.Name); err != nil { // not paused: an error, and exit 0
		fmt.Fprintf(c.stderr, "libxl: error: libxl_domain.c:688:domain_unpause_done: Domain %d:Unpausing domain: Invalid argument\n", d.ID)
	}
	return 0
}

func (c *xlCall) destroy(args []string) int {
	set, pos := flags(args, "f")
	if set == nil || len(pos) != 1 {
		return c.usageErr("destroy", "requires exactly 1 argument")
	}
	if pos[0] == "0" || pos[0] == "Domain-0" {
		fmt.Fprint(c.stderr, "Not destroying domain 0; use -f to force.\n"+
			"This can only be done when using a disaggregated hardware domain and toolstack.\n\n")
		return 1
	}
	d, ok, code := c.resolve(pos[0])
	if code != 0 {
		return code
	}
	if !ok {
		fmt.Fprint(c.stderr, msgDestroyFailed(d.ID)+"destroy failed (rc=-21)\n")
		return 1
	}
	c.sim.Destroy(ctx, d.Name)
	return 0
}

func (c *xlCall) info(args []string) int {
	hi, _ := c.sim.HostInfo(ctx)
	fmt.Fprint(c.stdout, infoText(hi.Host, hi))
	return 0
}

func (c *xlCall) domid(args []string) int {
	if len(args) != 1 {
		return c.usageErr("domid", "requires exactly 1 argument")
	}
	d, ok := c.lookup(args[0])
	if !ok || isNumeric(args[0]) {
		fmt.Fprintf(c.stderr, "Can't get domid of domain name '%s', maybe this domain does not exist.\n", args[0])
		return 1
	}
	fmt.Fprintf(c.stdout, "%d\n", d.ID)
	return 0
}

func (c *xlCall) domname(args []string) int {
	if len(args) != 1 {
		return c.usageErr("domname", "requires exactly 1 argument")
	}
	d, ok := c.lookup(args[0])
	if !ok || !isNumeric(args[0]) {
		fmt.Fprintf(c.stderr, "Can't get domain name of domain id '%s', maybe this domain does not exist.\n", args[0])
		return 1
	}
	fmt.Fprintf(c.stdout, "%s\n", d.Name)
	return 0
}

func (c *xlCall) simProgress(args []string) int {
	if len(args) != 1 {
		return c.usageErr("sim-progress", "requires exactly 1 argument")
	}
	p, err := c.sim.Progress(args[0])
	if err != nil {
		fmt.Fprint(c.stderr, msgInvalidID(args[0]))
		return 1
	}
	fmt.Fprintf(c.stdout, "%d\n", p)
	return 0
}

func (c *xlCall) simCrash(args []string) int {
	if len(args) != 1 {
		return c.usageErr("sim-crash", "requires exactly 1 argument")
	}
	if err := c.sim.Crash(ctx, args[0]); err != nil {
		fmt.Fprint(c.stderr, msgInvalidID(args[0]))
		return 1
	}
	return 0
}

// simPowerOff takes every guest domain away at once, as a host losing power
// does: no shutdown, no save, nothing left to list. Multi-process tests use
// it as the fence command that powers a host off.
func (c *xlCall) simPowerOff(args []string) int {
	if len(args) != 0 {
		return c.usageErr("sim-poweroff", "takes no arguments")
	}
	st := c.sim.Export()
	st.Domains = nil
	if err := c.sim.Import(st); err != nil {
		fmt.Fprintf(c.stderr, "fakexl: %v\n", err)
		return 1
	}
	return 0
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// dirExists reports whether the directory that would hold path exists.
func dirExists(path string) bool {
	fi, err := os.Stat(filepath.Dir(path))
	return err == nil && fi.IsDir()
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
