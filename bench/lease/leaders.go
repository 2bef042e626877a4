package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/xenft/xenft/events/embedded"
)

// leaderPoll is how often the watch samples the streams' leaders.
const leaderPoll = 50 * time.Millisecond

// leadership is what one stream's leadership did during a condition.
type leadership struct {
	Stream     string
	Changes    int           // a different server took the lead
	Leaderless time.Duration // sampled time with no server leading
}

// watchLeaders samples, in process, which server leads each stream, until
// the returned stop is called; stop waits for the sampler and returns what
// it saw. An election in the replicated buckets stalls every put to them,
// which a slow spell in the figures may be. Only a cluster has leaders to
// watch: with one server it returns nothing.
func watchLeaders(ctx context.Context, servers []*embedded.Server, streams ...string) (stop func() []leadership) {
	if len(servers) < 2 {
		return func() []leadership { return nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make([]leadership, len(streams))
	last := make([]string, len(streams))
	for i, s := range streams {
		out[i].Stream = s
		last[i] = leaderOf(servers, s)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(leaderPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for i, s := range streams {
				l := leaderOf(servers, s)
				switch {
				case l == "":
					out[i].Leaderless += leaderPoll
				case l != last[i] && last[i] != "":
					out[i].Changes++
				}
				if l != "" {
					last[i] = l
				}
			}
		}
	})
	return sync.OnceValue(func() []leadership {
		cancel()
		wg.Wait()
		return out
	})
}

// leaderOf names the server that leads stream, or "".
func leaderOf(servers []*embedded.Server, stream string) string {
	for _, s := range servers {
		if s.NATS().JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return s.Name()
		}
	}
	return ""
}

func (l leadership) String() string {
	return fmt.Sprintf("%s: %d leader changes, %.2fs without a leader", l.Stream, l.Changes, l.Leaderless.Seconds())
}
