package events

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A burst of one reason logs one line; the next line, once the interval has
// passed, says how many were not logged. Reasons are limited apart.
func TestIgnoredInputsLogOneLinePerReasonPerInterval(t *testing.T) {
	var out bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Name: "test", Output: &out, Level: hclog.Info})
	now := t0
	ig := &IgnoredInputs{now: func() time.Time { return now }}
	for i := 0; i < 5; i++ {
		ig.Ignore(log, IgnoredUnknownHost, "node.fault", "host", "n9")
	}
	ig.Ignore(log, IgnoredDuplicate, "heartbeat", "host", "n1")
	now = now.Add(IgnoreLogEvery - time.Millisecond)
	ig.Ignore(log, IgnoredUnknownHost, "node.fault", "host", "n9")
	now = now.Add(time.Millisecond)
	ig.Ignore(log, IgnoredUnknownHost, "node.fault", "host", "n8")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3 (first unknown_host, first duplicate, unknown_host after the interval):\n%s", len(lines), out.String())
	}
	for i, want := range []string{
		"[WARN]  test: ignored input: reason=unknown_host input=node.fault host=n9 total=1 suppressed_since_last=0",
		"[INFO]  test: ignored input: reason=duplicate input=heartbeat host=n1 total=1 suppressed_since_last=0",
		"[WARN]  test: ignored input: reason=unknown_host input=node.fault host=n8 total=7 suppressed_since_last=5",
	} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d = %q, want it to end with %q", i, lines[i], want)
		}
	}
	if got := ig.Snapshot(); len(got) != 2 || got[IgnoredUnknownHost] != 7 || got[IgnoredDuplicate] != 1 {
		t.Fatalf("snapshot = %v", got)
	}
	if ig.Total() != 8 {
		t.Fatalf("total = %d, want 8", ig.Total())
	}
}

// The zero value counts, a nil logger only counts, and concurrent use is safe
// (run with -race).
func TestIgnoredInputsZeroValueAndConcurrency(t *testing.T) {
	var ig IgnoredInputs
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				ig.Ignore(nil, IgnoredInvalidEvent, "event")
				ig.Inc(IgnoredStaleEpoch)
				_ = ig.Snapshot()
			}
		}()
	}
	wg.Wait()
	if s := ig.Snapshot(); s[IgnoredInvalidEvent] != 800 || s[IgnoredStaleEpoch] != 800 {
		t.Fatalf("snapshot = %v", s)
	}
	s := ig.Snapshot()
	s[IgnoredInvalidEvent] = 0
	if ig.Snapshot()[IgnoredInvalidEvent] != 800 {
		t.Fatal("a snapshot shares the counters")
	}
}
