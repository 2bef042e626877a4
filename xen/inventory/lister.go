package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/xenft/xenft/xen"
)

// DomainLister is what a Lister needs of a xen driver.
type DomainLister interface {
	List(ctx context.Context) ([]xen.Domain, error)
}

// ErrClosed is returned by a Lister after Close.
var ErrClosed = errors.New("domain lister closed")

// Listing is one listing of the host's domains.
type Listing struct {
	Domains []xen.Domain
	// Begun is when the listing began: it reflects no change older than
	// this, and may miss any change after it.
	Begun time.Time
}

// ListerStats counts a Lister's work.
type ListerStats struct {
	Listings uint64 // driver listings begun
	Failures uint64 // of those, failed, timed out or abandoned
	Cached   uint64 // answers from the last listing, without a driver call
	Joined   uint64 // answers from a listing begun for another caller
}

// Lister lets every part of an agent that watches the host's domains share
// one toolstack listing: on a real dom0 each `xl list` is an exec that takes
// the toolstack's lock, and the VM watcher and the beacon listing on their
// own schedules kept a small dom0 busy. Each caller says how old a listing
// it accepts (List's since); the Lister answers from its last listing when
// that is recent enough, joins a listing in flight that is, and otherwise
// runs one, one at a time.
//
// A listing runs on a goroutine the Lister owns, bounded by its timeout and
// cancelled when every caller waiting for it has given up (or on Close);
// each caller waits no longer than its own ctx. A failed listing is
// reported to everyone waiting for it and never kept. All methods are safe
// for concurrent use.
type Lister struct {
	driver  DomainLister
	timeout time.Duration
	base    context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	last     *Listing // the newest successful listing
	inflight *call    // the listing running for callers, if any
	subs     []chan struct{}
	stats    ListerStats
}

// call is one listing in flight and its outcome.
type call struct {
	begun   time.Time
	cancel  context.CancelFunc
	waiters int           // callers waiting for it (under Lister.mu)
	done    chan struct{} // closed once res and err are set
	res     Listing
	err     error
}

// NewLister lists through driver, each listing bounded by timeout (which
// must be positive: a hung toolstack must not hold every caller).
func NewLister(driver DomainLister, timeout time.Duration) (*Lister, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("domain lister: timeout must be positive, got %s", timeout)
	}
	base, stop := context.WithCancel(context.Background())
	return &Lister{driver: driver, timeout: timeout, base: base, stop: stop}, nil
}

// List returns a listing begun at or after since. A caller that must see
// every change made before some moment (the VM watcher, after reading its
// command generation) passes that moment; one that tolerates an age passes
// time.Now().Add(-age). The domains are the caller's own copy.
func (l *Lister) List(ctx context.Context, since time.Time) (Listing, error) {
	for {
		l.mu.Lock()
		switch c := l.inflight; {
		case l.closed:
			l.mu.Unlock()
			return Listing{}, ErrClosed
		case l.last != nil && !l.last.Begun.Before(since):
			l.stats.Cached++
			ls := *l.last
			l.mu.Unlock()
			ls.Domains = slices.Clone(ls.Domains)
			return ls, nil
		case c != nil && !c.begun.Before(since):
			l.stats.Joined++
			c.waiters++
			l.mu.Unlock()
			return l.wait(ctx, c)
		case c != nil:
			// Begun too early for this caller: one listing at a time, so
			// let it end and look again.
			l.mu.Unlock()
			select {
			case <-c.done:
				continue
			case <-ctx.Done():
				return Listing{}, fmt.Errorf("list domains: %w", ctx.Err())
			}
		default:
			c := l.start()
			c.waiters++
			l.mu.Unlock()
			return l.wait(ctx, c)
		}
	}
}

// ListSince is List for callers that need only the domains (the
// restarter's watcher).
func (l *Lister) ListSince(ctx context.Context, since time.Time) ([]xen.Domain, error) {
	ls, err := l.List(ctx, since)
	return ls.Domains, err
}

// start begins a listing; l.mu is held.
func (l *Lister) start() *call {
	ctx, cancel := context.WithTimeout(l.base, l.timeout)
	// Taken before the driver is called, so Begun never claims more than
	// the listing saw.
	c := &call{begun: time.Now(), cancel: cancel, done: make(chan struct{})}
	l.inflight = c
	l.stats.Listings++
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer cancel()
		doms, err := l.driver.List(ctx)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.inflight == c {
			l.inflight = nil
		}
		if err != nil {
			l.stats.Failures++
			c.err = fmt.Errorf("list domains: %w", err)
			close(c.done)
			return
		}
		c.res = Listing{Domains: doms, Begun: c.begun}
		if l.last == nil || c.begun.After(l.last.Begun) {
			l.last = &c.res
		}
		// Signalled before the callers are released: whoever got this
		// listing finds its signal already pending.
		for _, s := range l.subs {
			select {
			case s <- struct{}{}:
			default: // one pending signal says it all
			}
		}
		close(c.done)
	}()
	return c
}

// wait waits for c on behalf of one caller counted in c.waiters.
func (l *Lister) wait(ctx context.Context, c *call) (Listing, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		l.mu.Lock()
		select {
		case <-c.done: // ended meanwhile: take it after all
			l.mu.Unlock()
		default:
			// Nobody left to want it: stop the toolstack rather than let
			// an abandoned listing hold its lock.
			if c.waiters--; c.waiters == 0 {
				c.cancel()
				if l.inflight == c {
					l.inflight = nil
				}
			}
			l.mu.Unlock()
			return Listing{}, fmt.Errorf("list domains: %w", ctx.Err())
		}
	}
	if c.err != nil {
		return Listing{}, c.err
	}
	return Listing{Domains: slices.Clone(c.res.Domains), Begun: c.res.Begun}, nil
}

// Listed returns a channel signalled after every successful listing, made
// for whichever caller: the beacon takes a listing the VM watcher caused at
// once instead of waiting for its own round. The channel holds one pending
// signal; it is never closed.
func (l *Lister) Listed() <-chan struct{} {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.subs = append(l.subs, ch)
	l.mu.Unlock()
	return ch
}

// Stats returns the counters.
func (l *Lister) Stats() ListerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Close cancels a listing in flight, waits for its goroutine to end, and
// makes later calls fail with ErrClosed. Callers waiting get its error.
func (l *Lister) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.stop()
	l.wg.Wait()
}
