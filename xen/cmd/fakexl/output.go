package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/xenft/xenft/xen"
)

// Output formats of real xl 4.17, reproduced from the captures in
// xen/testdata (format strings from the observed column widths; the tests in
// this directory compare against the real text).

const listHeader = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"

// listRow formats one `xl list` row: name left-justified in 40 columns,
// then %5d %5lu %5d, five spaces, the six state flags, two spaces, %8.1f.
func listRow(name string, id int, memMiB uint64, vcpus int, flags string, cpu time.Duration) string {
	return fmt.Sprintf("%-40s %5d %5d %5d     %s  %8.1f\n", name, id, memMiB, vcpus, flags, cpu.Seconds())
}

// jnode is an ordered JSON value, so that keys come out in xl's order.
type jnode struct {
	obj [][2]any // key, value pairs for an object; nil with arr/leaf otherwise
	arr []any
	isO bool
	isA bool
}

func obj(kv ...any) jnode {
	n := jnode{isO: true}
	for i := 0; i+1 < len(kv); i += 2 {
		n.obj = append(n.obj, [2]any{kv[i], kv[i+1]})
	}
	return n
}

func arr(v ...any) jnode { return jnode{isA: true, arr: v} }

// writeJSON prints like libyajl's beautifier as xl uses it: four spaces per
// level, `"key": value`, and an empty object as "{", an empty line, "}".
func writeJSON(b *strings.Builder, v any, depth int) {
	ind := strings.Repeat("    ", depth)
	in := ind + "    "
	switch n := v.(type) {
	case jnode:
		switch {
		case n.isO:
			b.WriteString("{\n")
			for i, kv := range n.obj {
				if i > 0 {
					b.WriteString(",\n")
				}
				fmt.Fprintf(b, "%s%q: ", in, kv[0])
				writeJSON(b, kv[1], depth+1)
			}
			b.WriteString("\n" + ind + "}")
		case n.isA:
			b.WriteString("[\n")
			for i, e := range n.arr {
				if i > 0 {
					b.WriteString(",\n")
				}
				b.WriteString(in)
				writeJSON(b, e, depth+1)
			}
			b.WriteString("\n" + ind + "]")
		}
	case string:
		q, _ := json.Marshal(n)
		b.Write(q)
	default:
		fmt.Fprint(b, n)
	}
}

// dom0Config is Domain-0's entry in `xl list -l`, as the real one prints.
func dom0Config(memMiB uint64) jnode {
	return obj(
		"c_info", obj("type", "pv", "name", "Domain-0"),
		"b_info", obj(
			"max_memkb", memMiB*1024,
			"target_memkb", memMiB*1024-1, // sic: xl shows one KiB less for dom0
			"sched_params", obj("sched", "credit2", "weight", 256, "cap", 0),
			"type.pv", obj(), "arch_arm", obj(), "arch_x86", obj(),
		),
	)
}

// domainConfig renders a guest's config the way libxl reports it for a PV
// guest: defaults filled in, optional keys only when set.
func domainConfig(d xen.Domain, cfg *xen.Config) jnode {
	typ := d.Type
	vcpus := make([]any, d.VCPUs)
	for i := range vcpus {
		vcpus[i] = i
	}
	b := obj(
		"max_vcpus", d.VCPUs,
		"avail_vcpus", arr(vcpus...),
		"max_memkb", d.MemoryMiB*1024,
		"target_memkb", d.MemoryMiB*1024,
		"video_memkb", 0,
		"sched_params", obj("sched", "credit2", "weight", 256, "cap", 0),
		"claim_mode", "True",
	)
	for _, kv := range [][2]string{{"kernel", cfg.Kernel}, {"cmdline", cfg.Extra}, {"ramdisk", cfg.Ramdisk}} {
		if kv[1] != "" {
			b.obj = append(b.obj, [2]any{kv[0], kv[1]})
		}
	}
	b.obj = append(b.obj,
		[2]any{"type." + typ, obj()},
		[2]any{"arch_arm", obj()},
		[2]any{"arch_x86", obj("msr_relaxed", "False")},
	)
	c := obj(
		"c_info", obj("type", typ, "name", d.Name, "domid", uint32(0xffffffff), "uuid", d.UUID, "run_hotplug_scripts", "True"),
		"b_info", b,
		"on_reboot", "restart",
	)
	if cfg.OnCrash != "" {
		c.obj = append(c.obj, [2]any{"on_crash", cfg.OnCrash})
	}
	c.obj = append(c.obj, [2]any{"on_soft_reset", "soft_reset"})
	return c
}

// listJSON is the whole `xl list -l` output: an array and an empty line.
func listJSON(entries []jnode) string {
	items := make([]any, len(entries))
	for i, e := range entries {
		items[i] = e
	}
	var b strings.Builder
	writeJSON(&b, arr(items...), 0)
	b.WriteString("\n\n")
	return b.String()
}

// configInfoLen is the "info 0x3/0x0/N" number xl prints on save and
// restore: the length of the image's optional data (a u32 length and the
// config JSON).
func configInfoLen(c jnode) int {
	var b strings.Builder
	writeJSON(&b, c, 0)
	return 4 + b.Len() + 1
}

// infoText is `xl info` with the sim's memory; the other lines are the
// nested lab's (xen/testdata/lab/01-xl-info.txt).
func infoText(host string, hi xen.HostInfo) string {
	lines := [][2]string{
		{"host", host},
		{"release", "6.1.0-56-amd64"},
		{"version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"},
		{"machine", "x86_64"},
		{"nr_cpus", fmt.Sprint(hi.NrCPUs)},
		{"max_cpu_id", fmt.Sprint(hi.NrCPUs - 1)},
		{"nr_nodes", "1"},
		{"cores_per_socket", fmt.Sprint(hi.NrCPUs)},
		{"threads_per_core", "1"},
		{"cpu_mhz", "2599.998"},
		{"hw_caps", "1fcbf3fd:f6d8320b:e4500800:00000077:00000005:01884329:0000020c:00000000"},
		{"virt_caps", "pv hvm hap gnttab-v1 gnttab-v2"},
		{"total_memory", fmt.Sprint(hi.TotalMemoryMiB)},
		{"free_memory", fmt.Sprint(hi.FreeMemoryMiB)},
		{"sharing_freed_memory", "0"},
		{"sharing_used_memory", "0"},
		{"outstanding_claims", "0"},
		{"free_cpus", "0"},
		{"xen_major", "4"},
		{"xen_minor", "17"},
		{"xen_extra", ".7"},
		{"xen_version", "4.17.7"},
		{"xen_caps", "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "},
		{"xen_scheduler", "credit2"},
		{"xen_pagesize", "4096"},
		{"platform_params", "virt_start=0xffff800000000000"},
		{"xen_changeset", ""},
		{"xen_commandline", "console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M dom0_max_vcpus=1 loglvl=all guest_loglvl=all noreboot"},
		{"cc_compiler", "x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0"},
		{"cc_compile_by", "pkg-xen-devel"},
		{"cc_compile_domain", "lists.alioth.debian.org"},
		{"cc_compile_date", "Wed Nov  4 16:52:28 UTC 2026"},
		{"build_id", "151b373fd64b321593bf987fd923cd10dabadac4"},
		{"xend_config_format", "4"},
	}
	var b strings.Builder
	for _, kv := range lines {
		fmt.Fprintf(&b, "%-23s: %s\n", kv[0], kv[1])
	}
	return b.String()
}

// Error texts of real xl (see xen/testdata/lab and xen/testdata/xl-interface).
// The %d is a domain id; where xl allocated an id for a domain it then
// failed to build, the fake allocates one too, so later ids match.

func msgInvalidID(dom string) string { return dom + " is an invalid domain identifier (rc=-6)\n" }

func msgExists(id int, name string) string {
	return fmt.Sprintf("libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain %d:Domain with name %q already exists.\n", id, name) +
		fmt.Sprintf("libxl: error: libxl_create.c:1296:initiate_domain_create: Domain %d:cannot make domain: -6\n", id) +
		msgDestroyFailed(id)
}

func msgDestroyFailed(id int) string {
	return fmt.Sprintf("libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain %d:Non-existant domain\n", id) +
		fmt.Sprintf("libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain %d:Unable to destroy guest\n", id) +
		fmt.Sprintf("libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain %d:Destruction of domain failed\n", id)
}

func msgLoading(path string, info int, cfgFrom string) string {
	return fmt.Sprintf("Loading new save file %s (new xl fmt info 0x3/0x0/%d)\n", path, info) +
		" Savefile contains xl domain config in JSON format\n" +
		fmt.Sprintf("Parsing config from %s\n", cfgFrom)
}

const msgRestoreOK = "xc: info: Found x86 PV domain from Xen 4.17\n" +
	"xc: info: Restoring domain\n" +
	"xc: info: Restore successful\n" +
	"xc: info: XenStore: mfn 0x13cafb, dom 0, evt 1\n" +
	"xc: info: Console: mfn 0x13cafa, dom 0, evt 2\n"

func msgRestoreCut(id int) string {
	return "xc: info: Found x86 PV domain from Xen 4.17\n" +
		"xc: info: Restoring domain\n" +
		"xc: error: Failed to read Record Header from stream (0 = Success): Internal error\n" +
		"xc: error: Restore failed (0 = Success): Internal error\n" +
		"libxl: error: libxl_stream_read.c:850:libxl__xc_domain_restore_done: restoring domain: Success\n" +
		fmt.Sprintf("libxl: error: libxl_create.c:1640:domcreate_rebuild_done: Domain %d:cannot (re-)build domain: -3\n", id) +
		msgDestroyFailed(id)
}

func msgSuspendTimeout(id int) string {
	return fmt.Sprintf("libxl: error: libxl_dom_suspend.c:269:domain_suspend_common_pvcontrol_suspending: Domain %d:guest didn't acknowledge suspend, cancelling request\n", id) +
		"xc: error: Domain has not been suspended: shutdown 0, reason 255: Internal error\n" +
		"xc: error: Save failed (0 = Success): Internal error\n" +
		fmt.Sprintf("libxl: error: libxl_stream_write.c:347:libxl__xc_domain_save_done: Domain %d:saving domain: domain did not respond to suspend request: Success\n", id) +
		"Failed to save domain, resuming domain\n" +
		fmt.Sprintf("xc: error: Dom %d not suspended: (shutdown 0, reason 255): Internal error\n", id) +
		fmt.Sprintf("libxl: error: libxl_dom_suspend.c:666:domain_resume_done: Domain %d:xc_domain_resume failed: Invalid argument\n", id)
}

// msgSaveNoSpace is the real ENOSPC failure, used by the "fail" fault.
func msgSaveNoSpace(id int) string {
	return "xc: error: Failed to write page data to stream (28 = No space left on device): Internal error\n" +
		"xc: error: Save failed (28 = No space left on device): Internal error\n" +
		fmt.Sprintf("libxl: error: libxl_stream_write.c:347:libxl__xc_domain_save_done: Domain %d:saving domain: domain responded to suspend request: No space left on device\n", id) +
		"Failed to save domain, resuming domain\n"
}

// saveProgress is xl's non-tty progress chatter for a save.
func saveProgress(frames uint64) string {
	var b strings.Builder
	for k := uint64(1); k <= 16; k++ {
		n := frames * k / 16
		fmt.Fprintf(&b, "xc: progress: Frames: %d/%d%5d%%\n", n, frames, n*100/max(frames, 1))
	}
	b.WriteString("xc: progress: End of stream: 0/0    0%\n")
	return b.String()
}
