package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/xenft/xenft/internal/clock"
)

// The core counts a host silent after fence_self_timeout between two of its
// fed beats: the feed must come well within it, however short.
func TestBeatFeedComesWellWithinTheSelfFenceTimeout(t *testing.T) {
	for _, c := range []struct{ selfTimeout, want time.Duration }{
		{10 * time.Second, beatFeedEvery},
		{3 * time.Second, 750 * time.Millisecond},
		{0, beatFeedEvery},
	} {
		if got := beatFeedInterval(c.selfTimeout); got != c.want {
			t.Errorf("fence_self_timeout %s: beats fed every %s, want %s", c.selfTimeout, got, c.want)
		}
	}
}

// A watch that cannot start (its bucket has no leader during a failover)
// is started again until it runs, and stops for good only with its context.
func TestWatchesAreStartedAgainUntilTheLeadershipEnds(t *testing.T) {
	sh := &shell{s: &Supervisor{clock: clock.Real()}, log: hclog.NewNullLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		sh.keepWatching(ctx, "test", func(ctx context.Context) error {
			calls++
			if calls < 3 {
				return errors.New("no leader")
			}
			cancel()
			<-ctx.Done()
			return nil
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("keepWatching did not return after its context ended")
	}
	if calls != 3 {
		t.Fatalf("watch started %d times, want 3 (twice failing, then running)", calls)
	}
}
