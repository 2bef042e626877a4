package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/xenft/xenft/xen"
)

// xlHeaderLen is the size of xl's own save-file header (magic, byte order,
// flags, optional data length): a file shorter than this makes real xl say
// "truncated reading header".
const xlHeaderLen = 48

func (c *xlCall) save(args []string) int {
	set, pos := flags(args, "cpD")
	if set == nil || len(pos) < 2 || len(pos) > 3 {
		return c.usageErr("save", "requires at least 2 arguments")
	}
	dom, path := pos[0], pos[1]
	opts := xen.SaveOptions{Mode: xen.SaveStop}
	switch {
	case set['p']:
		opts.Mode = xen.SaveLeavePaused
	case set['c']:
		opts.Mode = xen.SaveKeepRunning
	}
	if len(pos) == 3 {
		opts.ConfigPath = pos[2]
	}
	if dom == "0" || dom == "Domain-0" {
		return c.saveDom0(path)
	}
	d, ok, code := c.resolve(dom)
	if code != 0 {
		return code
	}
	if !ok {
		fmt.Fprintf(c.stderr, "libxl: error: libxl_dom.c:1216:libxl__userdata_path: unable to find domain info for domain %d: No such file or directory\n"+
			"unable to retrieve domain configuration\n", d.ID)
		return 1
	}
	if !dirExists(path) {
		fmt.Fprintf(c.stderr, "Failed to open temp file %s for writing\n", path)
		return 1
	}
	cfg, _ := c.sim.Config(d.Name)
	if opts.ConfigPath != "" {
		if cfg, _ = xen.LoadConfig(opts.ConfigPath); cfg == nil {
			cfg, _ = c.sim.Config(d.Name)
		}
	}
	fmt.Fprintf(c.stderr, "Saving to %s new xl format (info 0x3/0x0/%d)\n", path, configInfoLen(domainConfig(d, cfg)))
	fmt.Fprintf(c.stderr, "xc: info: Saving domain %d, type x86 PV\n", d.ID)
	if !d.State.Alive() || d.State == xen.StatePaused {
		// A paused guest cannot acknowledge the suspend request. Real xl
		// has already opened (and emptied) the target, waits 60 s, gives up
		// and leaves the domain as it was.
		os.WriteFile(path, nil, 0o644)
		time.Sleep(suspendTimeout())
		fmt.Fprint(c.stderr, msgSuspendTimeout(d.ID))
		return 1
	}
	c.persistSuspended(d.Name)
	if err := c.sim.Save(ctx, d.Name, path, opts); err != nil {
		fmt.Fprintf(c.stderr, "libxl: error: fakexl: %v\nFailed to save domain, resuming domain\n", err)
		return 1
	}
	fmt.Fprint(c.stderr, saveProgress(d.MemoryMiB*256))
	return 0
}

// persistSuspended records the domain as suspended before the image is
// written, so that a fake xl killed mid-save leaves what a killed real one
// leaves: a suspended guest ("---ss-") that unpause cannot wake. The normal
// end of the call stores the real outcome over it.
func (c *xlCall) persistSuspended(dom string) {
	snap := &xen.Sim{}
	snap.Import(c.sim.Export())
	snap.Suspend(ctx, dom)
	st := c.state
	st.Sim = snap.Export()
	c.st.save(st)
}

// saveDom0 is xl's failure to save dom0 (xen/testdata/xl-interface), which
// leaves a small junk file behind.
func (c *xlCall) saveDom0(path string) int {
	os.WriteFile(path, make([]byte, 455), 0o644)
	fmt.Fprintf(c.stderr, "Saving to %s new xl format (info 0x3/0x0/383)\n"+
		"xc: info: Saving domain 0, type x86 PV\n"+
		"xc: error: Failed to map shared info frame at mfn 0xbfd6a (3 = No such process): Internal error\n"+
		"xc: error: Save failed (3 = No such process): Internal error\n"+
		"libxl: error: libxl_stream_write.c:347:libxl__xc_domain_save_done: saving domain: domain did not respond to suspend request: No such process\n"+
		"Failed to save domain, resuming domain\n"+
		"xc: error: Dom 0 not suspended: (shutdown 0, reason 255): Internal error\n"+
		"libxl: error: libxl_dom_suspend.c:666:domain_resume_done: xc_domain_resume failed: Invalid argument\n", path)
	return 1
}

func suspendTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("FAKEXL_SUSPEND_TIMEOUT")); err == nil {
		return d
	}
	return 60 * time.Second
}

func (c *xlCall) restore(args []string) int {
	set, pos := flags(args, "ped")
	if set == nil || len(pos) < 1 || len(pos) > 2 {
		return c.usageErr("restore", "requires 1 or 2 arguments")
	}
	opts := xen.RestoreOptions{Paused: set['p']}
	path := pos[len(pos)-1]
	cfgFrom := "<saved>"
	if len(pos) == 2 {
		opts.ConfigPath, cfgFrom = pos[0], pos[0]
	}
	f, err := os.Open(path)
	if err != nil {
		if isNotExist(err) {
			fmt.Fprint(c.stderr, "Can't open restore file: No such file or directory\n")
		} else {
			fmt.Fprintf(c.stderr, "Can't open restore file: %v\n", err)
		}
		return 1
	}
	head := make([]byte, xlHeaderLen)
	n, _ := io.ReadFull(f, head)
	f.Close()
	if n < xlHeaderLen {
		fmt.Fprintf(c.stderr, "libxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading header from %s\n"+
			"xl: fatal error: xl_vmcontrol.c:713: Protocol error: libxl_read_exactly( ctx, restore_fd, &hdr, sizeof(hdr), restore_source, \"header\")\n", path)
		return 1
	}
	if string(head[:len(xen.SimImageMagic)]) != xen.SimImageMagic {
		fmt.Fprint(c.stderr, "File has wrong magic number - corrupt or for a different tool?\n")
		return 1
	}
	h, herr := xen.ReadImageHeader(path)
	name := h.Name
	cfg, _ := xen.ParseConfig(h.Config)
	if opts.ConfigPath != "" {
		if cfg, err = xen.LoadConfig(opts.ConfigPath); err != nil {
			fmt.Fprintf(c.stderr, "Failed to parse config: %v\n", err)
			return 1
		}
		name = cfg.Name
	}
	if cfg == nil {
		cfg = &xen.Config{}
	}
	info := configInfoLen(domainConfig(xen.Domain{Name: name, UUID: h.UUID, Type: "pv", MemoryMiB: h.MemoryBytes >> 20, VCPUs: max(cfg.VCPUs, 1)}, cfg))
	fmt.Fprint(c.stderr, msgLoading(path, info, cfgFrom))
	// xl claims the name before it reads the pages, so a name in use wins
	// over a bad image, as it does with real xl.
	if _, taken := c.lookup(name); taken && name != "" {
		fmt.Fprint(c.stderr, msgExists(c.allocID(), name))
		return 1
	}
	if herr == nil {
		err = c.sim.Restore(ctx, path, opts)
	} else {
		err = herr
	}
	switch {
	case err == nil:
		fmt.Fprint(c.stderr, msgRestoreOK)
		return 0
	case errors.Is(err, xen.ErrBadImage):
		fmt.Fprint(c.stderr, msgRestoreCut(c.allocID()))
		return 1
	default:
		return c.buildFailed(name, err, 1)
	}
}

// partialImage leaves what an interrupted real save leaves: the first part
// of an image at the target path.
func (c *xlCall) partialImage(dom, path string) {
	tmp := filepath.Join(c.st.dir, "partial.img")
	defer os.Remove(tmp)
	if err := c.sim.Save(ctx, dom, tmp, xen.SaveOptions{Mode: xen.SaveKeepRunning}); err != nil {
		os.WriteFile(path, nil, 0o644)
		return
	}
	data, _ := os.ReadFile(tmp)
	os.WriteFile(path, data[:len(data)/2], 0o644)
}

// truncateSaved is the "truncate" fault: the save reported success but the
// image on disk is cut in half, as a full disk or a bad store could leave it.
func (c *xlCall) truncateSaved(args []string) {
	_, pos := flags(args, "cpD")
	if len(pos) < 2 {
		return
	}
	if fi, err := os.Stat(pos[1]); err == nil {
		os.Truncate(pos[1], fi.Size()/2)
	}
}
