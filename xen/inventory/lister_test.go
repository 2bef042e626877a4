package inventory_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/xen"
	"github.com/xenft/xenft/xen/inventory"
	"github.com/xenft/xenft/xen/xentest"
)

// gated is the fake xl behind a gate: every List records when it was
// called and, while the gate is shut, waits for it to open before running xl.
type gated struct {
	xl *xen.XL

	mu     sync.Mutex
	gate   chan struct{} // nil: open
	starts []time.Time
}

func (g *gated) List(ctx context.Context) ([]xen.Domain, error) {
	g.mu.Lock()
	g.starts = append(g.starts, time.Now())
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.xl.List(ctx)
}

func (g *gated) shut() (open func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan struct{})
	g.gate = ch
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		close(ch)
		g.gate = nil
	}
}

func (g *gated) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.starts)
}

func newLister(t *testing.T, d inventory.DomainLister, timeout time.Duration) *inventory.Lister {
	t.Helper()
	l, err := inventory.NewLister(d, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		eventstest.NoGoroutines(t, 5*time.Second, "inventory.(*Lister)")
	})
	return l
}

func names(doms []xen.Domain) []string {
	var out []string
	for _, d := range doms {
		out = append(out, d.Name)
	}
	return out
}

// result is one caller's answer.
type result struct {
	ls    inventory.Listing
	since time.Time
	err   error
}

// listAll starts n callers at once, each accepting listings begun at or after
// since, and returns their answers on a channel.
func listAll(ctx context.Context, l *inventory.Lister, n int, since time.Time) <-chan result {
	out := make(chan result, n)
	for range n {
		go func() {
			ls, err := l.List(ctx, since)
			out <- result{ls, since, err}
		}()
	}
	return out
}

// Callers that arrive while a listing they accept is running share it: one
// xl list for all of them, and each gets its own copy of the domains.
func TestListerCoalescesConcurrentCallers(t *testing.T) {
	h := xentest.NewFakeHost(t, "n1")
	h.Boot(t, "web", 64)
	g := &gated{xl: h.XL}
	l := newLister(t, g, 10*time.Second)

	open := g.shut()
	const n = 8
	answers := listAll(context.Background(), l, n, time.Now())
	eventstest.Eventually(t, 10*time.Second, func() bool { return l.Stats().Joined == n-1 }, "callers did not join one listing: %+v", l.Stats())
	open()
	var got [][]xen.Domain
	for range n {
		r := <-answers
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !slices.Equal(names(r.ls.Domains), []string{"web"}) {
			t.Fatalf("listing %v, want [web]", names(r.ls.Domains))
		}
		got = append(got, r.ls.Domains)
	}
	if c := g.calls(); c != 1 {
		t.Fatalf("%d listings for %d concurrent callers, want 1", c, n)
	}
	got[0][0].Name = "scribbled"
	if got[1][0].Name != "web" {
		t.Fatal("callers share one slice of domains")
	}
	// A caller that accepts the last listing's age gets it without xl.
	if _, err := l.List(context.Background(), time.Now().Add(-time.Minute)); err != nil || g.calls() != 1 {
		t.Fatalf("cached listing: %v, %d calls", err, g.calls())
	}
}

// A caller never gets a listing begun before its bound: not the cached one,
// and not one in flight that began too early, which it lets end and then
// follows with its own. A domain created before the bound is always there.
func TestListerNeverServesOlderThanTheBound(t *testing.T) {
	h := xentest.NewFakeHost(t, "n1")
	g := &gated{xl: h.XL}
	l := newLister(t, g, 10*time.Second)
	ctx := context.Background()

	first, err := l.List(ctx, time.Now())
	if err != nil || len(first.Domains) != 0 {
		t.Fatalf("first listing %v, %v; want none", names(first.Domains), err)
	}
	h.Boot(t, "web", 64)
	since := time.Now()
	ls, err := l.List(ctx, since)
	if err != nil || ls.Begun.Before(since) || !slices.Equal(names(ls.Domains), []string{"web"}) {
		t.Fatalf("after boot: %v begun %s before the bound, %v; want [web], not before", names(ls.Domains), since.Sub(ls.Begun), err)
	}

	// A listing in flight that began before the next bound.
	open := g.shut()
	early := listAll(ctx, l, 1, time.Now())
	eventstest.Eventually(t, 10*time.Second, func() bool { return g.calls() == 3 }, "no listing in flight")
	h.Boot(t, "db", 64)
	since = time.Now()
	late := listAll(ctx, l, 1, since)
	open()
	if r := <-early; r.err != nil {
		t.Fatal(r.err)
	}
	r := <-late
	if r.err != nil || r.ls.Begun.Before(since) || !slices.Equal(names(r.ls.Domains), []string{"web", "db"}) {
		t.Fatalf("late caller: %v, begun %s before its bound, %v; want [web db]", names(r.ls.Domains), since.Sub(r.ls.Begun), r.err)
	}
	if c := g.calls(); c != 4 {
		t.Fatalf("%d listings, want 4 (the late caller could not use the early one)", c)
	}

	// Many callers with random tolerances: every answer respects its own.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			since := time.Now().Add(-time.Duration(i%7) * 3 * time.Millisecond)
			ls, err := l.List(ctx, since)
			switch {
			case err != nil:
				errs <- err
			case ls.Begun.Before(since):
				errs <- errors.New("a listing begun " + since.Sub(ls.Begun).String() + " before its caller's bound")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("200 callers: %d xl listings; %+v", g.calls()-4, l.Stats())
}

// A listing that fails or times out is reported to every caller waiting for
// it and is not kept: the next caller, however tolerant, lists again.
func TestListerFailureReachesEveryWaiterAndIsNotCached(t *testing.T) {
	for _, tc := range []struct {
		fault string
		want  error
	}{
		{"fail", nil},
		{"hang", xen.ErrTimeout},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			h := xentest.NewFakeHost(t, "n1")
			h.Boot(t, "web", 64)
			g := &gated{xl: h.XL}
			l := newLister(t, g, 2*time.Second)
			ctx := context.Background()
			if _, err := l.List(ctx, time.Now()); err != nil {
				t.Fatal(err)
			}

			h.Fault(t, "list", tc.fault)
			open := g.shut()
			const n = 5
			answers := listAll(ctx, l, n, time.Now())
			eventstest.Eventually(t, 10*time.Second, func() bool { return l.Stats().Joined == n-1 }, "callers did not join: %+v", l.Stats())
			open()
			for range n {
				r := <-answers
				if r.err == nil {
					t.Fatalf("a caller got %v from a listing that failed", names(r.ls.Domains))
				}
				if tc.want != nil && !errors.Is(r.err, tc.want) {
					t.Fatalf("error %v, want %v", r.err, tc.want)
				}
			}
			// The good listing before the failure is still the last one:
			// a caller tolerant enough gets it, one that is not lists again.
			if ls, err := l.List(ctx, time.Now().Add(-time.Hour)); err != nil || len(ls.Domains) != 1 || g.calls() != 2 {
				t.Fatalf("tolerant caller: %v, %v, %d calls", names(ls.Domains), err, g.calls())
			}
			since := time.Now()
			ls, err := l.List(ctx, since)
			if err != nil || ls.Begun.Before(since) || g.calls() != 3 {
				t.Fatalf("after the failure: %v, %v, %d calls; want a new listing", names(ls.Domains), err, g.calls())
			}
			if st := l.Stats(); st.Failures != 1 {
				t.Errorf("stats %+v, want one failure", st)
			}
		})
	}
}

// A caller waits no longer than its own ctx; when every caller has given
// up, the listing is stopped (the hung xl killed), and the next caller
// starts afresh.
func TestListerAbandonedListingIsStopped(t *testing.T) {
	h := xentest.NewFakeHost(t, "n1")
	h.Boot(t, "web", 64)
	g := &gated{xl: h.XL}
	l := newLister(t, g, time.Minute)
	h.Fault(t, "list", "hang")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	answers := listAll(ctx, l, 3, time.Now())
	for range 3 {
		if r := <-answers; !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("caller past its deadline: %v", r.err)
		}
	}
	eventstest.Eventually(t, 10*time.Second, func() bool { return l.Stats().Failures == 1 }, "the abandoned listing still runs: %+v", l.Stats())
	ls, err := l.List(context.Background(), time.Now())
	if err != nil || !slices.Equal(names(ls.Domains), []string{"web"}) {
		t.Fatalf("after an abandoned listing: %v, %v", names(ls.Domains), err)
	}
}

// Listed signals each successful listing; Close ends a listing in flight and
// every later call.
func TestListerSignalsListingsAndCloses(t *testing.T) {
	h := xentest.NewFakeHost(t, "n1")
	g := &gated{xl: h.XL}
	l, err := inventory.NewLister(g, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	listed := l.Listed()
	if _, err := l.List(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-listed:
	default:
		t.Fatal("no signal after a listing")
	}

	g.shut() // never opened: the listing hangs until Close
	answer := listAll(context.Background(), l, 1, time.Now())
	eventstest.Eventually(t, 10*time.Second, func() bool { return g.calls() == 2 }, "no listing in flight")
	l.Close()
	if r := <-answer; r.err == nil {
		t.Fatal("a listing cut short by Close succeeded")
	}
	select {
	case <-listed:
		t.Fatal("a failed listing was signalled")
	default:
	}
	if _, err := l.List(context.Background(), time.Time{}); !errors.Is(err, inventory.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	eventstest.NoGoroutines(t, 5*time.Second, "inventory.(*Lister)")

	if _, err := inventory.NewLister(g, 0); err == nil {
		t.Fatal("a lister without a timeout")
	}
}
