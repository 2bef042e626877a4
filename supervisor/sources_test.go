package supervisor

import (
	"testing"
	"time"
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
