package supervisor_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
)

// leader records what an elector's lead callback saw.
type leader struct {
	mu    sync.Mutex
	terms []uint64
	alive bool
}

func (l *leader) lead(ctx context.Context, term uint64) {
	l.mu.Lock()
	l.terms = append(l.terms, term)
	l.alive = true
	l.mu.Unlock()
	<-ctx.Done()
	l.mu.Lock()
	l.alive = false
	l.mu.Unlock()
}

func (l *leader) state() (bool, []uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alive, append([]uint64(nil), l.terms...)
}

func elector(t *testing.T, b *events.Bus, id string) *supervisor.Elector {
	kv, err := b.KV(context.Background(), b.Names().Leader())
	if err != nil {
		t.Fatal(err)
	}
	return supervisor.NewElector(kv, id, b.Config().LeaderTTL, eventstest.Logger(t, hclog.Warn))
}

func TestSecondSupervisorTakesOverWhenTheLeaderDies(t *testing.T) {
	s := eventstest.Server(t)
	b1, b2 := eventstest.Bus(t, s), eventstest.Bus(t, s)
	ttl := b1.Config().LeaderTTL
	var l1, l2 leader
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); elector(t, b1, "s1").Run(ctx, l1.lead) }()
	eventstest.Eventually(t, 5*time.Second, func() bool { a, _ := l1.state(); return a }, "s1 never led")
	wg.Add(1)
	go func() { defer wg.Done(); elector(t, b2, "s2").Run(ctx, l2.lead) }()

	// s1 stays the only leader while it renews (several TTLs).
	deadline := time.Now().Add(2 * ttl)
	for time.Now().Before(deadline) {
		if a, _ := l2.state(); a {
			t.Fatal("s2 led while s1 held the lease")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// s1's process dies: its connection goes without releasing the key.
	b1.Close()
	died := time.Now()
	eventstest.Eventually(t, 3*ttl, func() bool { a, _ := l2.state(); return a }, "s2 did not take over")
	took := time.Since(died)
	t.Logf("takeover after %s (ttl %s, renew every %s)", took.Round(time.Millisecond), ttl, ttl/3)
	eventstest.Eventually(t, ttl, func() bool { a, _ := l1.state(); return !a }, "s1 still believes it leads")
	_, t1 := l1.state()
	_, t2 := l2.state()
	if len(t1) != 1 || len(t2) != 1 || t2[0] <= t1[0] {
		t.Fatalf("terms s1 %v, s2 %v: the successor's term must be higher", t1, t2)
	}
	kv, _ := b2.KV(context.Background(), b2.Names().Leader())
	if l, err := supervisor.Current(context.Background(), kv); err != nil || l.Holder != "s2" || l.Term != t2[0] {
		t.Fatalf("lease = %+v, %v", l, err)
	}
}

func TestCleanStopHandsOverWithoutWaitingForTheTTL(t *testing.T) {
	s := eventstest.Server(t)
	b1, b2 := eventstest.Bus(t, s), eventstest.Bus(t, s)
	var l1, l2 leader
	ctx1, stop1 := context.WithCancel(context.Background())
	ctx2, stop2 := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop1(); stop2(); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); elector(t, b1, "s1").Run(ctx1, l1.lead) }()
	eventstest.Eventually(t, 5*time.Second, func() bool { a, _ := l1.state(); return a }, "s1 never led")
	go func() { defer wg.Done(); elector(t, b2, "s2").Run(ctx2, l2.lead) }()
	stop1()
	eventstest.Eventually(t, b1.Config().LeaderTTL, func() bool { a, _ := l2.state(); return a }, "s2 did not take over after a clean stop")
}

// A leader that cannot lead (its decision core stopped, so lead returned)
// must let go of the lease, or no supervisor leads at all while it renews.
func TestLeaderThatStopsLeadingLetsAnotherLead(t *testing.T) {
	s := eventstest.Server(t)
	b1, b2 := eventstest.Bus(t, s), eventstest.Bus(t, s)
	ttl := b1.Config().LeaderTTL
	var broken sync.WaitGroup
	broken.Add(1)
	var once sync.Once
	var l2 leader
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var s1Terms []uint64
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		elector(t, b1, "s1").Run(ctx, func(ctx context.Context, term uint64) {
			mu.Lock()
			s1Terms = append(s1Terms, term)
			mu.Unlock()
			once.Do(broken.Done)
			// Returns at once, leading nothing, as lead does when its
			// shell cannot run.
		})
	}()
	broken.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); elector(t, b2, "s2").Run(ctx, l2.lead) }()
	// Well within the TTL: a released key is taken on s2's next try.
	eventstest.Eventually(t, ttl, func() bool { a, _ := l2.state(); return a }, "s2 never led while s1 held a lease it did not use")
	_, t2 := l2.state()
	mu.Lock()
	defer mu.Unlock()
	if len(s1Terms) == 0 || t2[0] <= s1Terms[0] {
		t.Fatalf("terms s1 %v, s2 %v: the successor's term must be higher", s1Terms, t2)
	}
}

// Terms never go backwards, even when the bus loses its newest
// acknowledged writes (docs/architecture.md "Durability"): the leader
// bucket is wiped and recreated under a waiting supervisor, as a power loss
// under a lazy sync policy could leave it, so its revisions start again
// below the term the old leader used. The successor's term is still higher,
// because it saw the old leader's term while it waited.
func TestTermsNeverGoBackwardsWhenTheBusLosesItsNewestWrites(t *testing.T) {
	s := eventstest.Server(t)
	b1, b2 := eventstest.Bus(t, s), eventstest.Bus(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	kv, err := b1.KV(ctx, b1.Names().Leader())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // revisions the old leader's term is above
		if _, err := kv.Put(ctx, "filler", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var l1, l2 leader
	ctx1, stop1 := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); elector(t, b1, "s1").Run(ctx1, l1.lead) }()
	eventstest.Eventually(t, 5*time.Second, func() bool { a, _ := l1.state(); return a }, "s1 never led")
	e2 := elector(t, b2, "s2")
	wg.Add(1)
	go func() { defer wg.Done(); e2.Run(ctx, l2.lead) }()
	_, t1 := l1.state()
	eventstest.Eventually(t, 5*time.Second, func() bool { return e2.Floor() >= t1[0] }, "s2 never saw s1's term %d", t1[0])

	// s1 dies and the bucket loses everything it acknowledged.
	stop1()
	eventstest.Eventually(t, 5*time.Second, func() bool { a, _ := l1.state(); return !a }, "s1 still leads")
	if err := b1.JetStream().DeleteKeyValue(ctx, b1.Names().Leader()); err != nil {
		t.Fatal(err)
	}
	if err := b1.EnsureResources(ctx); err != nil {
		t.Fatal(err)
	}
	eventstest.Eventually(t, 3*b1.Config().LeaderTTL, func() bool { a, _ := l2.state(); return a }, "s2 did not take over")
	_, t2 := l2.state()
	if t2[0] <= t1[0] {
		t.Fatalf("s2 leads with term %d after s1's term %d: a term went backwards", t2[0], t1[0])
	}
	entry, err := kv.Get(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	if entry.Revision() > t1[0] {
		t.Fatalf("the recreated bucket is at revision %d, above the old term %d: the test lost nothing", entry.Revision(), t1[0])
	}
}

// An agent reports (in its host lease) that it obeyed a term above the
// leader's: the bus handed that term out twice, or another leader acted
// since. The leader steps down and, leading again, takes a term above the
// agent's, so the agents obey it (docs/architecture.md "Durability").
func TestALeaderBelowATermAnAgentObeyedStepsDownAndComesBackAboveIt(t *testing.T) {
	s := eventstest.Server(t)
	bus := eventstest.Bus(t, s)
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	runSupervisor(t, ctx, &wg, bus, st)
	leaderKV, err := bus.KV(ctx, bus.Names().Leader())
	if err != nil {
		t.Fatal(err)
	}
	var first supervisor.Lease
	eventstest.Eventually(t, 10*time.Second, func() bool {
		first, err = supervisor.Current(ctx, leaderKV)
		return err == nil && first.Term != 0
	}, "s1 never led")

	obeyed := first.Term + 100
	hosts, err := bus.KV(ctx, bus.Names().Hosts())
	if err != nil {
		t.Fatal(err)
	}
	lease, _ := json.Marshal(protocol.HostLease{Host: "n1", Incarnation: "i1", RenewedAt: time.Now().UTC(),
		RenewIntervalMs: 1000, SelfTimeoutMs: 20000, ObeyedTerm: obeyed})
	if _, err := hosts.Put(ctx, "n1", lease); err != nil {
		t.Fatal(err)
	}
	var now supervisor.Lease
	eventstest.Eventually(t, 4*bus.Config().LeaderTTL, func() bool {
		now, err = supervisor.Current(ctx, leaderKV)
		return err == nil && now.Term > obeyed
	}, "the leader's term never rose above the obeyed term %d (it was %d)", obeyed, first.Term)
}
