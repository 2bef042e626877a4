package detector_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/events/eventstest"
)

// ourGoroutines are the functions whose goroutines must be gone once Run
// returned.
var ourGoroutines = []string{
	"xenft/detector.(*Monitor)",
	"xenft/detector.(*Beacon)",
	"xenft/detector.(*publisher)",
	"xenft/detector.(*pluginRunner)",
}

// run starts r in the background and returns a stop function that cancels it
// and waits (bounded) for Run to return nil. It is also registered as cleanup.
func run(t *testing.T, name string, r interface{ Run(context.Context) error }) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run returned %v", name, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: Run did not return within 10s of cancel", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fastConfig is a detector for beats every 100 ms, so tests take seconds.
func fastConfig(id string) detector.Config {
	cfg := detector.DefaultConfig()
	cfg.ID = id
	cfg.ExpectedInterval = 100 * time.Millisecond
	cfg.AcceptablePause = 150 * time.Millisecond
	cfg.MinStdDev = 30 * time.Millisecond
	cfg.MaxSilence = 2 * time.Second
	cfg.Tick = 20 * time.Millisecond
	// Probing starts 250 ms before the failure deadline (about 0.41 s of
	// silence), every 40 ms, each waiting 200 ms: generous, so that a loaded
	// machine running the tests with -race still gets answers in time.
	cfg.ProbeLead = 250 * time.Millisecond
	cfg.ProbeInterval = 40 * time.Millisecond
	cfg.ProbeTimeout = 200 * time.Millisecond
	return cfg
}

func fastBeacon() detector.BeaconConfig {
	return detector.BeaconConfig{Interval: 100 * time.Millisecond, InventoryInterval: 100 * time.Millisecond, InventoryTimeout: 50 * time.Millisecond}
}

// agentBus is a separate connection per agent, as on real hosts.
func agentBus(t *testing.T, s *embedded.Server, name string) *events.Bus {
	t.Helper()
	cfg := eventstest.BusConfig(s)
	cfg.ClientName = name
	b, err := events.Connect(cfg, eventstest.Logger(t, hclog.Warn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// countEvents is how many events of type typ about host the stream holds.
func countEvents(t *testing.T, b *events.Bus, typ events.Type, host string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.JetStream().Stream(ctx, b.Names().Stream())
	if err != nil {
		t.Fatal(err)
	}
	subj := b.Subjects().Event(typ, host)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

// streamEvents returns every event of typ about host in the stream, oldest
// first.
func streamEvents(t *testing.T, b *events.Bus, typ events.Type, host string) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want := int(countEvents(t, b, typ, host))
	if want == 0 {
		return nil
	}
	cons, err := b.JetStream().OrderedConsumer(ctx, b.Names().Stream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.Subjects().Event(typ, host)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for len(out) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read %s of %s: %v", typ.Short(), host, err)
		}
		ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatalf("stream holds an invalid event: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// logBuffer is an hclog sink tests can search, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuffer) logger(t *testing.T) hclog.Logger {
	// Also to the test log, for failures.
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: ioMulti{l, testWriter{t}}})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type ioMulti []interface{ Write([]byte) (int, error) }

func (m ioMulti) Write(p []byte) (int, error) {
	for _, w := range m {
		if _, err := w.Write(p); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// inventory is a HostInventory whose answers a test changes.
type inventory struct {
	mu      sync.Mutex
	domains []detector.DomainSummary
	free    uint64
	err     error
	hang    bool
}

func (i *inventory) set(f func(*inventory)) { i.mu.Lock(); defer i.mu.Unlock(); f(i) }

func (i *inventory) Domains(ctx context.Context) ([]detector.DomainSummary, error) {
	i.mu.Lock()
	hang, err, doms := i.hang, i.err, append([]detector.DomainSummary(nil), i.domains...)
	i.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return doms, err
}

func (i *inventory) FreeMemoryMiB(context.Context) (uint64, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.free, i.err
}

var errToolstack = errors.New("xl: toolstack busy")
