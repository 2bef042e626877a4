package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/agent"
	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
	"github.com/xenft/xenft/xen"
)

// The real roles on a secured server (TLS, an nkey each, per-role
// permissions), images in the NATS object store: the supervisor leads, the
// agents' leases are written and their beats reach the detector, the
// leader grants them their leases (n2.lab's subject escapes its dots), a
// group is checkpointed on schedule and on an operator's request, the
// operator's status reaches both agents with vm.peek, a site and the
// operator report faults, a monitor tails the events; when a host dies the
// detector fails it and its VM is restored on the other host from its
// image. The server refuses nothing any of them does: every call each role
// makes is in its permissions, and no role needs more (the table in
// events/auth).
func TestSecuredClusterRunsEveryRole(t *testing.T) {
	sup1, det1 := events.Publisher{Role: events.RoleSupervisor, Name: "sup-1"}, events.Publisher{Role: events.RoleDetector, Name: "det-1"}
	n1, n2 := events.Publisher{Role: events.RoleAgent, Name: "n1"}, events.Publisher{Role: events.RoleAgent, Name: "n2.lab"}
	admin, mon := events.Publisher{Role: events.RoleOperator, Name: "admin"}, events.Publisher{Role: events.RoleMonitor, Name: "mon"}
	ipmi := events.Publisher{Role: events.RoleSite, Name: "ipmi"}
	s := eventstest.SecuredServer(t, sup1, det1, n1, n2, admin, mon, ipmi)
	log := eventstest.Logger(t, hclog.Warn)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Every role but the supervisor waits for the stream and buckets; the
	// server's own connection made them (eventstest.SecuredServer).
	connect := func(id events.Publisher, buckets ...string) *events.Bus {
		b := s.Bus(t, id, events.As(id.Role, id.Name))
		if err := b.AwaitResources(ctx, buckets...); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return b
	}
	images := func(id events.Publisher) store.ImageStore {
		b := connect(id, events.NamesFor("").Images())
		st, err := openStore(ctx, StoreConfig{Backend: "nats"}, b)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return st
	}

	// The operator registers vm1 on n1 in a group checkpointed every second.
	op := connect(admin)
	vmsKV, err := op.KV(ctx, op.Names().VMs())
	if err != nil {
		t.Fatal(err)
	}
	groupsKV, err := op.KV(ctx, op.Names().Groups())
	if err != nil {
		t.Fatal(err)
	}
	inv := supervisor.NewInventory(vmsKV, groupsKV)
	if err := inv.PutVM(ctx, supervisor.VMSpec{VMConfig: core.VMConfig{Name: "vm1", Group: "g", MemoryMiB: 4, Policy: core.PolicyRestore}, Host: "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := inv.PutGroup(ctx, supervisor.GroupSettings{Name: "g", CheckpointInterval: supervisor.Duration(time.Second), Retain: 2}); err != nil {
		t.Fatal(err)
	}

	sims := map[string]*xen.Sim{}
	stops := map[string]context.CancelFunc{}
	for _, id := range []events.Publisher{n1, n2} {
		host := id.Name
		sim := &xen.Sim{Host: host, TotalMemoryMiB: 1024, Dom0MemoryMiB: 256}
		sims[host] = sim
		dir := t.TempDir()
		if host == "n1" {
			if err := bootSimDomains(ctx, sim, []string{"vm1:4"}, filepath.Join(dir, "cfg")); err != nil {
				t.Fatal(err)
			}
		}
		cfg := DefaultConfig()
		cfg.Agent.Host = host
		cfg.Agent.StateDir = filepath.Join(dir, "state")
		cfg.Agent.Checkpoint.SpoolDir = filepath.Join(dir, "spool")
		cfg.Agent.Restarter.SpoolDir = filepath.Join(dir, "restore")
		cfg.Agent.Restarter.Fence.SelfTimeout = demoSelfFence
		cfg.Agent.Restarter.Fence.ActionTimeout = demoActionTimeout
		cfg.Agent.Restarter.Fence.RenewInterval = 500 * time.Millisecond
		cfg.Heartbeat.Interval = 200 * time.Millisecond
		ag, err := agent.New(agentConfig(cfg), sim, connect(id, op.Names().Hosts()), images(id), log)
		if err != nil {
			t.Fatal(err)
		}
		hctx, stop := context.WithCancel(ctx)
		stops[host] = stop
		wg.Add(1)
		go func() { defer wg.Done(); _ = ag.Run(hctx) }()
	}

	dcfg := detector.DefaultConfig()
	dcfg.ID = det1.Name
	dcfg.ExpectedInterval = 200 * time.Millisecond
	m, err := detector.NewMonitor(connect(det1), dcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()

	scfg := supervisor.DefaultConfig()
	scfg.ID = sup1.Name
	scfg.CheckpointInterval = time.Second
	scfg.Policy.FenceSelfTimeout, scfg.Policy.FenceMargin = demoSelfFence, demoFenceMargin
	sbus := s.Bus(t, sup1, events.As(sup1.Role, sup1.Name))
	if err := sbus.EnsureResources(ctx); err != nil {
		t.Fatalf("the supervisor creates the stream and buckets: %v", err)
	}
	sup, err := supervisor.New(ctx, sbus, images(sup1), scfg, log)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = sup.Run(ctx) }()

	// The monitor tails the events.
	var mu sync.Mutex
	var seen []string
	mbus := connect(mon)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = mbus.Tail(ctx, events.TailConfig{Since: time.Now().Add(-time.Minute)}, func(_ context.Context, ev events.Event, m events.Meta) error {
			mu.Lock()
			seen = append(seen, ev.Type.Short()+" "+ev.EntityID()+" by "+m.Publisher.String())
			mu.Unlock()
			return nil
		})
	}()
	saw := func(what string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range seen {
				if e == what {
					return true
				}
			}
			return false
		}
	}

	eventstest.Eventually(t, 30*time.Second, saw("supervisor.leader sup-1 by supervisor/sup-1"), "sup-1 does not lead")
	hosts, err := sbus.KV(ctx, sbus.Names().Hosts())
	if err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 30*time.Second, func() bool {
		_, err1 := hosts.Get(ctx, "n1")
		_, err2 := hosts.Get(ctx, "n2.lab")
		return err1 == nil && err2 == nil
	}, "the agents' leases are not in the hosts bucket")
	ckv, err := op.KV(ctx, op.Names().Checkpoints())
	if err != nil {
		t.Fatal(err)
	}
	cat := checkpointer.NewCatalog(ckv)
	eventstest.Eventually(t, 60*time.Second, func() bool { _, err := cat.Latest(ctx, "g"); return err == nil }, "no checkpoint of g committed")

	// The operator's commands: checkpoint now, a request to the leader,
	// status (vm.peek to both agents), vm list, checkpoint list, a fault.
	if _, err := supervisor.RequestCheckpoint(ctx, op, "g", true, 60*time.Second); err != nil {
		t.Fatalf("checkpoint now as operator/admin: %v", err)
	}
	if err := supervisor.RequestOperator(ctx, op, supervisor.OperatorRequest{Op: supervisor.OpResume, By: "admin"}, 30*time.Second); err != nil {
		t.Fatalf("restarts resume as operator/admin: %v", err)
	}
	var rep statusReport
	eventstest.Eventually(t, 30*time.Second, func() bool {
		rep, err = collectStatus(ctx, op)
		return err == nil && len(rep.Hosts) == 2 && rep.Hosts[0].Reached && rep.Hosts[1].Reached
	}, "status as operator/admin does not reach both agents: %+v, %v", &rep, &err)
	var list protocol.ListReply
	eventstest.Eventually(t, 30*time.Second, func() bool {
		err = op.Command(ctx, "n2.lab", protocol.VerbPeek, protocol.PeekRequest{}, &list, 5*time.Second)
		return err == nil && !list.Fence.LastGrant.IsZero()
	}, "the leader grants n2.lab no lease: %+v, %v", &list, &err)
	if vms, err := inv.VMs(ctx); err != nil || len(vms) != 1 {
		t.Fatalf("vm list as operator/admin: %v, %v", vms, err)
	}
	if recs, err := cat.List(ctx, "g"); err != nil || len(recs) == 0 {
		t.Fatalf("checkpoint list as operator/admin: %v, %v", recs, err)
	}
	fault := func(b *events.Bus, by string) {
		ev, err := events.New("xenft/test", time.Now(), events.NodeFault{Host: "n2.lab", Severity: events.SeverityOK, Reason: "fans fine", Detector: by})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, ev); err != nil {
			t.Fatalf("node.fault as %s: %v", b.Publisher(), err)
		}
	}
	fault(op, "admin")
	fault(connect(ipmi), "ipmi")
	eventstest.Eventually(t, 30*time.Second, saw("node.fault n2.lab by site/ipmi"), "the monitor did not see the site's fault")

	// n1 dies.
	stops["n1"]()
	_ = sims["n1"].Destroy(ctx, "vm1")
	eventstest.Eventually(t, 60*time.Second, saw("node.failed n1 by detector/det-1"), "n1 not failed by det-1")
	eventstest.Eventually(t, 60*time.Second, func() bool {
		doms, err := sims["n2.lab"].List(ctx)
		for _, d := range doms {
			if err == nil && d.Name == "vm1" && d.State == xen.StateRunning {
				return true
			}
		}
		return false
	}, "vm1 not restored on n2.lab")
	eventstest.Eventually(t, 30*time.Second, saw("vm.restarted vm1 by supervisor/sup-1"), "no vm.restarted for vm1")
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("the server refused %d operations of the roles:\n%s", len(v), strings.Join(v, "\n"))
	}
}
