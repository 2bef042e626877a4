// Command bus measures the event bus: publish→consume latency (p50, p99, max)
// and throughput of xenft events through JetStream on an embedded server with
// its file store, as the supervisor's durable consumer sees them.
//
//	go run ./bench/bus            # 20,000 events
//	go run ./bench/bus -quick     # 5,000 events
//
// Latency is measured one event at a time (publish, wait for the consumer to
// receive it) so queueing does not inflate it; throughput is measured
// separately with up to -window publishes in flight.
//
// Each run is made twice on fresh servers, with server.sync "always" (xenft's
// default: every write reaches the disk before it is acknowledged) and with
// nats-server's lazy default (a background sync every 2 minutes), so the
// cost of durability is measured side by side; the JSON line's plain keys
// are the "always" run's.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
)

func main() {
	quick := flag.Bool("quick", false, "fewer events (for make bench)")
	n := flag.Int("n", 20000, "events for the throughput run")
	lat := flag.Int("latency-samples", 2000, "events for the latency run")
	window := flag.Int("window", 256, "publishes in flight in the throughput run")
	flag.Parse()
	if *quick {
		*n, *lat = 5000, 1000
	}
	always, err := run(*n, *lat, *window, embedded.SyncAlways)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/bus:", err)
		os.Exit(1)
	}
	lazy, err := run(*n, *lat, *window, lazySync)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/bus:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]any{
		"sync":           embedded.SyncAlways,
		"latency_p50_ms": always.latP50, "latency_p99_ms": always.latP99, "latency_max_ms": always.latMax,
		"ack_p50_ms": always.ackP50, "ack_p99_ms": always.ackP99,
		"events_per_sec": always.perSec, "events": *n, "latency_samples": *lat,
		"dropped":           always.dropped + lazy.dropped,
		"ack_p50_ms_always": always.ackP50, "ack_p99_ms_always": always.ackP99,
		"ack_p50_ms_lazy": lazy.ackP50, "ack_p99_ms_lazy": lazy.ackP99,
		"events_per_sec_always": always.perSec, "events_per_sec_lazy": lazy.perSec,
	})
	fmt.Println(string(out))
}

// lazySync is nats-server's own default: a background sync every 2 minutes.
const lazySync = "2m"

// result is one run's figures, in milliseconds and events per second.
type result struct {
	latP50, latP99, latMax float64 // publish → the durable consumer has it
	ackP50, ackP99         float64 // publish → the server's acknowledgement
	perSec                 int
	dropped                uint64
}

func run(n, latN, window int, sync string) (result, error) {
	dir, err := os.MkdirTemp("", "xenft-bench-bus")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: os.Stderr})
	scfg := embedded.DefaultConfig()
	scfg.Port, scfg.DataDir, scfg.Sync = -1, dir, sync
	srv, err := embedded.Start(scfg, log, 10*time.Second)
	if err != nil {
		return result{}, err
	}
	defer srv.Shutdown()
	bcfg := events.DefaultBusConfig()
	bcfg.URLs = []string{srv.ClientURL()}
	pub, err := events.Connect(bcfg, log) // over TCP, as a remote detector would
	if err != nil {
		return result{}, err
	}
	defer pub.Close()
	sub, err := events.Connect(bcfg, log)
	if err != nil {
		return result{}, err
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := pub.EnsureResources(ctx); err != nil {
		return result{}, err
	}

	received := make(chan time.Time, 1024)
	var got atomic.Int64
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sub.Consume(cctx, events.ConsumeConfig{Durable: "bench"}, func(_ context.Context, ev events.Event, _ events.Meta) error {
			got.Add(1)
			select {
			case received <- time.Now():
			default:
			}
			return nil
		})
	}()
	defer func() { ccancel(); <-done }()

	// Latency: one event in flight at a time.
	lats := make([]time.Duration, 0, latN)
	acks := make([]time.Duration, 0, latN)
	for i := 0; i < latN; i++ {
		ev, err := sample(i)
		if err != nil {
			return result{}, err
		}
		start := time.Now()
		if err := pub.Publish(ctx, ev); err != nil {
			return result{}, err
		}
		acks = append(acks, time.Since(start))
		select {
		case at := <-received:
			lats = append(lats, at.Sub(start))
		case <-time.After(10 * time.Second):
			return result{}, fmt.Errorf("event %d not consumed within 10s", i)
		}
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })

	// Throughput: async publishes with a bounded window, until the consumer
	// has acknowledged all of them.
	base := got.Load()
	js := pub.JetStream()
	sem := make(chan struct{}, window)
	start := time.Now()
	for i := 0; i < n; i++ {
		ev, err := sample(latN + i)
		if err != nil {
			return result{}, err
		}
		data, err := events.Encode(ev)
		if err != nil {
			return result{}, err
		}
		sem <- struct{}{}
		f, err := js.PublishAsync(ev.NATSSubject(pub.Subjects()), data, jetstream.WithMsgID(ev.ID))
		if err != nil {
			return result{}, err
		}
		go func() {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				fmt.Fprintln(os.Stderr, "publish:", err)
			}
			<-sem
		}()
	}
	pubDone := time.Since(start)
	deadline := time.Now().Add(2 * time.Minute)
	for got.Load()-base < int64(n) {
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("consumer got %d of %d events", got.Load()-base, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)

	pct := func(d []time.Duration, p float64) float64 { return round3(ms(d[int(p*float64(len(d)-1))])) }
	fmt.Printf("bus: embedded nats-server, file store, sync %s, GOMAXPROCS=%d, %s/%s\n", sync, runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("latency (publish with ack -> durable consumer receives), %d events one at a time:\n", latN)
	fmt.Printf("  p50 %.3f ms   p99 %.3f ms   max %.3f ms\n", pct(lats, 0.50), pct(lats, 0.99), ms(lats[len(lats)-1]))
	fmt.Printf("acknowledgement (publish -> the server's ack): p50 %.3f ms   p99 %.3f ms\n", pct(acks, 0.50), pct(acks, 0.99))
	fmt.Printf("throughput, %d events, %d in flight: published in %s, consumed and acked in %s: %.0f events/s\n",
		n, window, pubDone.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return result{
		latP50: pct(lats, 0.50), latP99: pct(lats, 0.99), latMax: round3(ms(lats[len(lats)-1])),
		ackP50: pct(acks, 0.50), ackP99: pct(acks, 0.99),
		perSec: int(float64(n) / elapsed.Seconds()), dropped: sub.Drops().Total(),
	}, nil
}

func sample(i int) (events.Event, error) {
	return events.New("bench", time.Now(), events.NodeFailed{
		Host: fmt.Sprintf("n%d", i%200), Incarnation: "i1", Phi: 8.5, LastBeat: time.Now(),
		LastSeq: uint64(i), Detector: "bench", Reason: events.FailedByPhi,
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func round3(f float64) float64   { return float64(int(f*1000)) / 1000 }
