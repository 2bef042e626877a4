package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
	"github.com/xenft/xenft/events/eventstest"
)

var (
	sup1  = events.Publisher{Role: events.RoleSupervisor, Name: "sup-1"}
	det1  = events.Publisher{Role: events.RoleDetector, Name: "det-1"}
	n1    = events.Publisher{Role: events.RoleAgent, Name: "n1"}
	n2    = events.Publisher{Role: events.RoleAgent, Name: "n2"}
	ipmi  = events.Publisher{Role: events.RoleSite, Name: "ipmi"}
	mon   = events.Publisher{Role: events.RoleMonitor, Name: "mon"}
	admin = events.Publisher{Role: events.RoleOperator, Name: "admin"}
)

// dial connects to s as id with a plain NATS client: its seed, the CA, its
// own inbox prefix, and no error handler of xenft's.
func dial(t *testing.T, s *eventstest.Secured, id events.Publisher, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	seed, err := nats.NkeyOptionFromSeed(filepath.Join(s.Dir, auth.SeedFile(id.Role, id.Name)))
	if err != nil {
		t.Fatal(err)
	}
	all := append([]nats.Option{seed, nats.RootCAs(filepath.Join(s.Dir, auth.CAFile)), nats.CustomInboxPrefix(events.InboxPrefix(id)),
		nats.Timeout(5 * time.Second), nats.NoReconnect(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}, opts...)
	nc, err := nats.Connect(s.ClientURL(), all...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// refused reports whether the server refused nc's last operation on
// subject. The server answers a refused publish or subscription with an
// error before it answers the ping that follows, and the client records
// that error before it returns from the flush: after FlushTimeout the
// answer is known, with no wait beyond one round trip.
func refused(t *testing.T, nc *nats.Conn, op, subject string) bool {
	t.Helper()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush after %s %s: %v", op, subject, err)
	}
	err := nc.LastError()
	return err != nil && errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), op+` to "`+subject+`"`)
}

func mayPublish(t *testing.T, nc *nats.Conn, subject string) bool {
	t.Helper()
	if err := nc.Publish(subject, []byte(`{}`)); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return !refused(t, nc, "Publish", subject)
}

func maySubscribe(t *testing.T, nc *nats.Conn, subject string) bool {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	defer sub.Unsubscribe()
	return !refused(t, nc, "Subscription", subject)
}

// What each role may and may not do, checked against a real server with
// TLS and each identity's own nkey. The may-lists are what the roles need
// (TestSecuredClusterRunsEveryRole in cmd/xenft runs the roles themselves
// on a secured server); the may-not lists are the forgeries each
// credential must not be able to commit.
func TestWhatEachRoleMayPublishAndSubscribeTo(t *testing.T) {
	s := eventstest.SecuredServer(t, sup1, det1, n1, n2, ipmi, mon, admin)
	for _, tc := range []struct {
		id                       events.Publisher
		pub, notPub, sub, notSub []string
	}{{
		id: sup1,
		pub: []string{"xenft.cmd.n1.vm.destroy", "xenft.cmd.n2.checkpoint.capture", "xenft.events.node.fenced.n1.supervisor.sup-1",
			"xenft.events.vm.restarting.vm1.supervisor.sup-1", "$KV.xenft_state.core", "$KV.xenft_leader.leader", "$KV.xenft_checkpoints.g.1",
			"$JS.API.STREAM.UPDATE.XENFT_EVENTS", "$JS.API.CONSUMER.MSG.NEXT.XENFT_EVENTS.xenft-supervisor"},
		notPub: []string{"xenft.events.node.failed.n1.supervisor.sup-1", "xenft.events.node.fenced.n1.supervisor.sup-2",
			"xenft.events.node.fenced.n1.anonymous._", "xenft.hb.n1", "$KV.xenft_hosts.n1", "$JS.API.STREAM.DELETE.XENFT_EVENTS",
			"$JS.API.STREAM.PURGE.XENFT_EVENTS", "xenft.supervisor.op"},
		sub:    []string{"xenft.hb.*", "xenft.supervisor.op", "xenft.supervisor.checkpoint", "xenft.supervisor.hostlease.*", "_INBOX.supervisor.sup-1.x"},
		notSub: []string{"_INBOX.>", "_INBOX.agent.n1.x", "xenft.cmd.n1.>", "xenft.events.>"},
	}, {
		id:  det1,
		pub: []string{"xenft.events.node.failed.n1.detector.det-1", "xenft.events.node.suspect.n1.detector.det-1", "xenft.events.node.fault.n1.detector.det-1", "xenft.hb.probe.n1"},
		notPub: []string{"xenft.events.node.failed.n1.detector.det-2", "xenft.events.node.failed.n1.site.ipmi", "xenft.events.node.fenced.n1.detector.det-1",
			"xenft.events.node.failed.n1.anonymous._", "xenft.cmd.n1.vm.peek", "xenft.hb.n1", "$KV.xenft_hosts.n1", "xenft.supervisor.op"},
		sub:    []string{"xenft.hb.*", "_INBOX.detector.det-1.x"},
		notSub: []string{"xenft.cmd.>", "xenft.hb.probe.n1", "_INBOX.>"},
	}, {
		id: n1,
		pub: []string{"xenft.hb.n1", "$KV.xenft_hosts.n1", "xenft.events.vm.failed.vm1.agent.n1", "xenft.supervisor.hostlease.n1",
			"$O.xenft_images.C.abc", "$JS.API.STREAM.MSG.GET.OBJ_xenft_images"},
		notPub: []string{
			// a fault, whoever it claims to be from
			"xenft.events.node.failed.n2.agent.n1", "xenft.events.node.failed.n2.detector.det-1", "xenft.events.node.failed.n2.anonymous._",
			"xenft.events.node.fault.n2.site.ipmi", "xenft.events.vm.failed.vm1.agent.n2",
			// another host's heartbeat, lease, grant; any command
			"xenft.hb.n2", "$KV.xenft_hosts.n2", "xenft.supervisor.hostlease.n2", "xenft.cmd.n2.vm.destroy", "xenft.cmd.n1.vm.destroy",
			// the supervisor's buckets; consumers (nats-server#8274); purges
			"$KV.xenft_leader.leader", "$KV.xenft_state.core", "$KV.xenft_vms.vm1", "$JS.API.CONSUMER.CREATE.OBJ_xenft_images.x",
			"$JS.API.STREAM.PURGE.OBJ_xenft_images", "$JS.API.STREAM.UPDATE.KV_xenft_hosts",
			// a reply to a request it never received
			"_INBOX.supervisor.sup-1.abc"},
		sub:    []string{"xenft.cmd.n1.>", "xenft.hb.probe.n1", "_INBOX.agent.n1.x"},
		notSub: []string{"xenft.cmd.n2.>", "xenft.cmd.>", "xenft.hb.probe.n2", "xenft.hb.*", "xenft.events.>", "_INBOX.>"},
	}, {
		id:  ipmi,
		pub: []string{"xenft.events.node.fault.n1.site.ipmi"},
		notPub: []string{"xenft.events.node.failed.n1.site.ipmi", "xenft.events.node.fault.n1.site.other", "xenft.events.node.fault.n1.detector.det-1",
			"xenft.events.node.fault.n1.anonymous._", "xenft.hb.n1", "xenft.cmd.n1.vm.peek", "$KV.xenft_hosts.n1"},
		notSub: []string{"xenft.events.>", "xenft.hb.*", "_INBOX.>"},
	}, {
		id:  mon,
		pub: []string{"$JS.API.STREAM.INFO.XENFT_EVENTS", "$JS.API.CONSUMER.CREATE.XENFT_EVENTS.xenft_tail_1", "$JS.API.CONSUMER.MSG.NEXT.XENFT_EVENTS.xenft_tail_1"},
		notPub: []string{"xenft.events.node.fault.n1.monitor.mon", "xenft.events.node.failed.n1.anonymous._", "xenft.hb.n1", "xenft.hb.probe.n1",
			"xenft.cmd.n1.vm.peek", "xenft.supervisor.op", "xenft.supervisor.checkpoint", "$KV.xenft_vms.vm1", "$KV.xenft_hosts.n1",
			"$KV.xenft_state.core", "$O.xenft_images.M.x", "$JS.API.CONSUMER.MSG.NEXT.XENFT_EVENTS.xenft-supervisor",
			"$JS.API.CONSUMER.DELETE.XENFT_EVENTS.xenft-supervisor", "$JS.API.CONSUMER.CREATE.XENFT_EVENTS.xenft-supervisor",
			"$JS.API.STREAM.DELETE.XENFT_EVENTS", "$JS.API.STREAM.PURGE.XENFT_EVENTS", "$JS.API.CONSUMER.CREATE.KV_xenft_state.x"},
		sub:    []string{"xenft.events.>", "_INBOX.monitor.mon.x"},
		notSub: []string{"xenft.hb.*", "xenft.cmd.>", "xenft.supervisor.op", "_INBOX.>"},
	}, {
		id: admin,
		pub: []string{"xenft.events.node.fault.n1.operator.admin", "xenft.supervisor.op", "xenft.supervisor.checkpoint", "xenft.cmd.n1.vm.peek",
			"$KV.xenft_vms.vm1", "$KV.xenft_groups.g"},
		notPub: []string{"xenft.cmd.n1.vm.list", "xenft.cmd.n1.vm.destroy", "xenft.events.node.failed.n1.operator.admin",
			"xenft.events.node.fault.n1.operator.root", "$KV.xenft_state.core", "$KV.xenft_leader.leader", "$KV.xenft_hosts.n1",
			"$KV.xenft_checkpoints.g.1", "xenft.hb.n1"},
		sub:    []string{"xenft.events.>", "_INBOX.operator.admin.x"},
		notSub: []string{"xenft.hb.*", "xenft.cmd.>", "_INBOX.>"},
	}} {
		t.Run(tc.id.String(), func(t *testing.T) {
			nc, err := dial(t, s, tc.id)
			if err != nil {
				t.Fatalf("connect as %s: %v", tc.id, err)
			}
			for _, subj := range tc.pub {
				if !mayPublish(t, nc, subj) {
					t.Errorf("%s may not publish %s", tc.id, subj)
				}
			}
			for _, subj := range tc.notPub {
				if mayPublish(t, nc, subj) {
					t.Errorf("%s may publish %s", tc.id, subj)
				}
			}
			for _, subj := range tc.sub {
				if !maySubscribe(t, nc, subj) {
					t.Errorf("%s may not subscribe to %s", tc.id, subj)
				}
			}
			for _, subj := range tc.notSub {
				if maySubscribe(t, nc, subj) {
					t.Errorf("%s may subscribe to %s", tc.id, subj)
				}
			}
		})
	}
}

// The bus of a role whose publish the server refuses (an agent's seed
// claiming another host) learns it at once: ErrPermissionDenied, long
// before the request timeout, and the stream does not hold the event; so
// does a bus whose bus.identity is not its seed's, a monitor opening a
// bucket and an agent tailing the events.
func TestARefusedPublishFailsAtOnceWithErrPermissionDenied(t *testing.T) {
	s := eventstest.SecuredServer(t, n1, mon)
	cfg := s.BusConfig(n1)
	cfg.RequestTimeout = time.Minute
	b, err := events.Connect(cfg, eventstest.Logger(t, 0), events.As(events.RoleAgent, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := events.New("xenft/agent/n1", time.Now(), events.NodeFailed{Host: "n2", Incarnation: "x", Phi: 9, LastBeat: time.Now(), LastSeq: 1, Detector: "n1", Reason: events.FailedByPhi})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = b.Publish(ctx, ev)
	if !errors.Is(err, events.ErrPermissionDenied) || !strings.Contains(err.Error(), "agent/n1") || !strings.Contains(err.Error(), "xenft.events.node.failed.n2.agent.n1") {
		t.Fatalf("node.failed from agent/n1: %v, want ErrPermissionDenied naming the identity and subject", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the refusal took %s", d)
	}
	// The bus as another identity than its seed's: every publish refused.
	cfg.Identity = "agent/n2"
	b2, err := events.Connect(cfg, eventstest.Logger(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.AwaitResources(ctx); !errors.Is(err, events.ErrPermissionDenied) {
		t.Fatalf("AwaitResources with n1's seed as agent/n2: %v, want ErrPermissionDenied (its inbox is not n1's)", err)
	}
	// A bucket or a reader the credential may not open fails at once too.
	mb := s.Bus(t, mon, events.As(mon.Role, mon.Name))
	if _, err := mb.KV(ctx, mb.Names().State()); !errors.Is(err, events.ErrPermissionDenied) {
		t.Fatalf("monitor/mon opening the supervisor's state: %v, want ErrPermissionDenied", err)
	}
	if err := b.Tail(ctx, events.TailConfig{}, func(context.Context, events.Event, events.Meta) error { return nil }); !errors.Is(err, events.ErrPermissionDenied) {
		t.Fatalf("agent/n1 tailing the events: %v, want ErrPermissionDenied", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the refusals took %s", d)
	}
	// The stream holds nothing: the server dropped the refused publish.
	st, err := mb.JetStream().Stream(ctx, mb.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("the stream holds %d events", n)
	}
}
