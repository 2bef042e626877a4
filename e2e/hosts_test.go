//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
	"github.com/xenft/xenft/xen"
)

// vm is one VM of the workload every scenario protects.
type vm struct {
	name, group, host string
	policy            core.RestartPolicy
}

// The workload: an MPI job of three VMs that roll back together, one per
// host on n1-n3, and a VM on its own beside mpi-0 on n1 that may be
// cold-started. n4 starts empty, so a failed host's VMs have somewhere to go.
var workload = []vm{
	{name: "mpi-0", group: "mpi", host: "n1", policy: core.PolicyRestore},
	{name: "mpi-1", group: "mpi", host: "n2", policy: core.PolicyRestore},
	{name: "mpi-2", group: "mpi", host: "n3", policy: core.PolicyRestore},
	{name: "web", group: "web", host: "n1", policy: core.PolicyRestoreOrCold},
}

var groups = []string{"mpi", "web"}

const vmMemoryMiB = 8

// vmNames are the names of the workload's VMs, or of those in the groups
// given.
func vmNames(inGroups ...string) []string {
	var out []string
	for _, v := range workload {
		if len(inGroups) == 0 || slices.Contains(inGroups, v.group) {
			out = append(out, v.name)
		}
	}
	return out
}

func (c *cluster) xlEnv(host string) []string {
	return []string{"FAKEXL_STATE=" + filepath.Join(c.dir, "xl-"+host), "FAKEXL_HOST=" + host}
}

// xl runs host's fake xl, as an operator in its dom0 would.
func (c *cluster) xl(host string, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fakeXL, args...)
	cmd.Env = append(os.Environ(), c.xlEnv(host)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("xl %s on %s: %v\n%s", strings.Join(args, " "), host, err, out)
	}
	return string(out)
}

// failNextXL arms a fault switch of host's fake xl: the next call of verb
// fails the way real xl fails at it.
func (c *cluster) failNextXL(host, verb string) {
	c.t.Helper()
	dir := filepath.Join(c.dir, "xl-"+host, "faults")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, verb), []byte("fail"), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// bootWorkload creates every VM's domain on its host and registers it.
func (c *cluster) bootWorkload() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vms, err := c.bus.KV(ctx, c.bus.Names().VMs())
	if err != nil {
		c.t.Fatal(err)
	}
	grps, err := c.bus.KV(ctx, c.bus.Names().Groups())
	if err != nil {
		c.t.Fatal(err)
	}
	inv := supervisor.NewInventory(vms, grps)
	for _, v := range workload {
		cfg := filepath.Join(c.dir, v.name+".cfg")
		body := fmt.Sprintf("name = %q\ntype = \"pv\"\nmemory = %d\nvcpus = 1\n", v.name, vmMemoryMiB)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			c.t.Fatal(err)
		}
		c.xl(v.host, "create", cfg)
		spec := supervisor.VMSpec{VMConfig: core.VMConfig{Name: v.name, Group: v.group, MemoryMiB: vmMemoryMiB, Policy: v.policy}, Host: v.host, ConfigPath: cfg}
		if err := inv.PutVM(ctx, spec); err != nil {
			c.t.Fatal(err)
		}
	}
}

// hostLease reads host's self-fence lease from the hosts bucket.
func (c *cluster) hostLease(host string) (protocol.HostLease, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var l protocol.HostLease
	kv, err := c.bus.KV(ctx, c.bus.Names().Hosts())
	if err != nil {
		return l, false
	}
	e, err := kv.Get(ctx, host)
	if err != nil {
		return l, false
	}
	return l, json.Unmarshal(e.Value(), &l) == nil
}

// guest is one copy of a VM on one host, as the host's fake xl keeps it.
type guest struct {
	host    string
	running bool   // not paused, suspended or crashed
	base    uint64 // the progress it was created (0) or restored with
	seed    uint64 // the workload's identity, kept by checkpoints
}

func (g guest) String() string {
	state := "running"
	if !g.running {
		state = "stopped"
	}
	return fmt.Sprintf("%s(%s, from %d)", g.host, state, g.base)
}

// guests reads the domains of every host from the fake xl's state files
// (written by atomic rename, so a read never sees half a state).
func (c *cluster) guests() map[string][]guest {
	c.t.Helper()
	out, err := c.readGuests()
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// readGuests is guests for a goroutine other than the test's (the soak's
// checker), which may not fail the test with t.Fatal.
func (c *cluster) readGuests() (map[string][]guest, error) {
	out := map[string][]guest{}
	for _, h := range hosts {
		var st struct {
			Sim xen.SimState `json:"sim"`
		}
		b, err := os.ReadFile(filepath.Join(c.dir, "xl-"+h, "state.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil {
			return nil, fmt.Errorf("state of %s: %w", h, err)
		}
		for _, d := range st.Sim.Domains {
			running := d.Pauses == 0 && !d.Suspended && !d.Crashed
			out[d.Name] = append(out[d.Name], guest{host: h, running: running, base: d.Base, seed: d.Seed})
		}
	}
	return out, nil
}

// runsExactlyOnce waits until each of vms exists on exactly one host and
// runs there, continuously for stable, and returns where they run. It
// fails the test at the deadline with the last placement it saw.
func (c *cluster) runsExactlyOnce(vms []string, stable, timeout time.Duration) map[string]guest {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var since time.Time // when the condition last became true
	var last map[string][]guest
	for {
		last = c.guests()
		ok := true
		for _, name := range vms {
			if g := last[name]; len(g) != 1 || !g[0].running {
				ok = false
			}
		}
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= stable:
			out := map[string]guest{}
			for _, name := range vms {
				out[name] = last[name][0]
			}
			return out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("after %s: not every VM of %v runs exactly once for %s: %v", timeout, vms, stable, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cut is a committed checkpoint of a group and what each member's image
// holds.
type cut struct {
	checkpointer.Record
	images map[string]xen.ImageHeader // by VM
}

// checkpoint asks the leading supervisor for a checkpoint of group and
// waits until it is committed; it retries while no supervisor leads yet or
// the leader has not yet seen every member run.
func (c *cluster) checkpoint(group string) checkpointer.Record {
	c.t.Helper()
	var rec checkpointer.Record
	var err error
	c.eventually(90*time.Second, func() bool {
		var rep supervisor.CheckpointReply
		rep, err = supervisor.RequestCheckpoint(context.Background(), c.bus, group, true, 30*time.Second)
		if err != nil || rep.Record == nil {
			return false
		}
		rec = *rep.Record
		return true
	}, func() string { return fmt.Sprintf("no checkpoint of %s committed: %v", group, err) })
	c.logf("checkpoint %s/%d committed", group, rec.Seq)
	return rec
}

// latestVerified finds the group's latest committed checkpoint whose every
// image verifies, reading the images as a restore would, and the progress
// each holds: what a rollback of the group must resume from.
func (c *cluster) latestVerified(group string) cut {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	kv, err := c.bus.KV(ctx, c.bus.Names().Checkpoints())
	if err != nil {
		c.t.Fatal(err)
	}
	// The object store and the catalog's bucket read from any replica
	// (direct gets), and one that has not yet applied a checkpoint just
	// committed says the image does not exist, or has no record of it
	// ("no committed checkpoint that verifies (0 rejected)", seen beside a
	// CPU hog): read again until no image is missing and a record is found.
	// A read can also stall: the object store's chunks came more than 5 s
	// apart once ("read pipe: i/o timeout", make e2e alone). Only a
	// verdict of corruption is final; anything else is read again, each
	// attempt with its own deadline.
	var rec checkpointer.Record
	var rejected []checkpointer.Rejected
	c.eventually(90*time.Second, func() bool {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		rec, rejected, err = checkpointer.NewCatalog(kv).LatestVerified(actx, group, c.images)
		if err != nil && len(rejected) == 0 {
			return false
		}
		for _, r := range rejected {
			if !errors.Is(r.Reason, store.ErrCorrupt) {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("images of %s not read: %v (%v)", group, rejected, err) })
	if err != nil {
		c.t.Fatalf("latest verified checkpoint of %s: %v (rejected: %v)", group, err, rejected)
	}
	out := cut{Record: rec, images: map[string]xen.ImageHeader{}}
	for _, m := range rec.Members {
		out.images[m.VM] = c.imageHeader(ctx, m.ImageKey)
	}
	return out
}

// imageHeader reads the header of a sim image in the store.
func (c *cluster) imageHeader(ctx context.Context, key string) xen.ImageHeader {
	c.t.Helper()
	f, err := os.CreateTemp(c.dir, "image-*")
	if err != nil {
		c.t.Fatal(err)
	}
	f.Close()
	defer os.Remove(f.Name())
	// The whole image, verified, and read again when a damaged replica
	// served it (as the restarter does: store.CorruptReads).
	for attempt := 1; ; attempt++ {
		err = c.copyImage(ctx, key, f.Name())
		if err == nil || !errors.Is(err, store.ErrCorrupt) || attempt == store.CorruptReads {
			break
		}
	}
	if err != nil {
		c.t.Fatalf("read image %s: %v", key, err)
	}
	h, err := xen.ReadImageHeader(f.Name())
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

// copyImage copies the image key into the file path, verifying it.
func (c *cluster) copyImage(ctx context.Context, key, path string) error {
	rc, _, err := c.images.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("open image %s: %w", key, err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// resumedFrom checks that each member of the cut runs from the progress its
// image holds: it was restored from that checkpoint and no other.
func (c *cluster) resumedFrom(running map[string]guest, ck cut) {
	c.t.Helper()
	for vm, img := range ck.images {
		g, ok := running[vm]
		switch {
		case !ok:
			c.t.Errorf("%s is not running", vm)
		case g.seed != img.Seed:
			c.t.Errorf("%s on %s is another workload (seed %x) than the one checkpointed (%x)", vm, g.host, g.seed, img.Seed)
		case g.base != img.Progress:
			c.t.Errorf("%s on %s resumed from progress %d; checkpoint %s/%d holds %d", vm, g.host, g.base, ck.Group, ck.Seq, img.Progress)
		}
	}
}

// untouched checks that each of vms still runs the domain it was created
// as: never restored anywhere.
func (c *cluster) untouched(running map[string]guest, vms ...string) {
	c.t.Helper()
	for _, vm := range vms {
		if g := running[vm]; g.base != 0 {
			c.t.Errorf("%s on %s was restored (from progress %d); it should have kept running", vm, g.host, g.base)
		}
	}
}

// pastCut waits until every member of the cut has run well beyond it, so
// that a rollback to it is visible.
func (c *cluster) pastCut(ck cut) {
	c.t.Helper()
	c.eventually(30*time.Second, func() bool {
		for vm, img := range ck.images {
			g := c.guests()[vm]
			if len(g) != 1 || !c.progressed(g[0].host, vm, img.Progress+1000) {
				return false
			}
		}
		return true
	}, says("members of %s/%d did not run past it", ck.Group, ck.Seq))
}

func (c *cluster) progressed(host, vm string, beyond uint64) bool {
	var n uint64
	_, err := fmt.Sscan(c.xl(host, "sim-progress", vm), &n)
	return err == nil && n > beyond
}
