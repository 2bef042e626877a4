package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
)

// childConfig is the renewers' process's configuration (its flags).
type childConfig struct {
	URLs       []string
	Hosts      int
	Interval   time.Duration
	Duration   time.Duration
	PutTimeout time.Duration
	Upload     string // "", "shared", "own"
	Uploaders  int
	UploadMiB  int
}

// childReport is the renewers' process's last line of output.
type childReport struct {
	WindowUs     int64     `json:"window_us"`
	Renewals     []renewal `json:"renewals"`
	Skipped      []int     `json:"skipped"` // per host: ticks with three puts still in flight
	Uploads      int       `json:"uploads"`
	UploadBytes  int64     `json:"upload_bytes"`
	UploadErrors int       `json:"upload_errors"`
	UploadError  string    `json:"upload_error,omitempty"` // the first one
	CPUSeconds   float64   `json:"cpu_s"`                  // user+system during the window
}

// renewal is one lease put: when it was sent (since the window began), how
// long until its acknowledgement or failure.
type renewal struct {
	Host   int   `json:"h"`
	SentUs int64 `json:"s"`
	LatUs  int64 `json:"l"`
	Failed bool  `json:"f,omitempty"`
}

// host is one simulated agent's connections.
type host struct {
	name   string
	lease  *events.Bus // the lease puts (and, with upload "shared", the uploads)
	own    *events.Bus // the uploads' own connection (upload "own")
	kv     jetstream.KeyValue
	images *store.NATS // nil if this host does not upload
}

// runRenewers is the child process: connect, say "ready", wait for "go" on
// stdin, renew (and upload) for the window, print the report. Its lifetime
// is bounded on its own, so it ends even if its parent cannot kill it.
func runRenewers(ctx context.Context, cfg childConfig) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.PutTimeout+2*time.Minute)
	defer cancel()
	log := hclog.New(&hclog.LoggerOptions{Name: "renewers", Level: hclog.Warn, Output: os.Stderr})
	hosts, closeAll, err := connectHosts(ctx, cfg, log)
	defer closeAll()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	// The parent writes "go" once hogs run or the cgroup holds this
	// process; EOF means the parent is gone.
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "go" {
		return fmt.Errorf("waiting for go on stdin: got %q: %v", line, err)
	}
	rep := measure(ctx, cfg, hosts)
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func connectHosts(ctx context.Context, cfg childConfig, log hclog.Logger) ([]*host, func(), error) {
	var hosts []*host
	closeAll := func() {
		for _, h := range hosts {
			h.lease.Close()
			if h.own != nil {
				h.own.Close()
			}
		}
	}
	connect := func(name string) (*events.Bus, error) {
		bcfg := events.DefaultBusConfig()
		bcfg.URLs, bcfg.ClientName = cfg.URLs, name
		return events.Connect(bcfg, log.Named(name))
	}
	for i := 0; i < cfg.Hosts; i++ {
		h := &host{name: fmt.Sprintf("h%02d", i)}
		b, err := connect("bench-lease-" + h.name)
		if err != nil {
			return nil, closeAll, err
		}
		h.lease = b
		hosts = append(hosts, h)
		if h.kv, err = b.KV(ctx, b.Names().Hosts()); err != nil {
			return nil, closeAll, err
		}
		if cfg.Upload == "" || i >= cfg.Uploaders {
			continue
		}
		up := b
		if cfg.Upload == "own" {
			if h.own, err = connect("bench-lease-" + h.name + "-images"); err != nil {
				return nil, closeAll, err
			}
			up = h.own
		}
		obj, err := up.Images(ctx)
		if err != nil {
			return nil, closeAll, err
		}
		chunks, err := up.ImagesStream(ctx)
		if err != nil {
			return nil, closeAll, err
		}
		h.images = store.NewNATS(obj, store.LeaderChunks(up.Conn(), chunks.CachedInfo().Config.Name))
	}
	return hosts, closeAll, nil
}

// recorder collects the renewals of every host.
type recorder struct {
	t0       time.Time
	mu       sync.Mutex
	renewals []renewal
}

func (r *recorder) add(hostIdx int, sent time.Time, lat time.Duration, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.renewals = append(r.renewals, renewal{Host: hostIdx, SentUs: sent.Sub(r.t0).Microseconds(), LatUs: lat.Microseconds(), Failed: failed})
}

func measure(ctx context.Context, cfg childConfig, hosts []*host) childReport {
	var image []byte
	if cfg.Upload != "" {
		image = make([]byte, cfg.UploadMiB<<20)
		rng := rand.NewChaCha8([32]byte{1})
		_, _ = rng.Read(image)
	}
	cpu0 := cpuTime()
	rec := &recorder{t0: time.Now()}
	window, stop := context.WithDeadline(ctx, rec.t0.Add(cfg.Duration))
	defer stop()
	rep := childReport{Skipped: make([]int, len(hosts))}
	var mu sync.Mutex // rep's upload fields
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { rep.Skipped[i] = renewLoop(ctx, window, cfg, i, h, rec) })
		if h.images == nil {
			continue
		}
		wg.Go(func() {
			n, size, errs, first := uploadLoop(ctx, window, cfg, h, image)
			mu.Lock()
			defer mu.Unlock()
			rep.Uploads += n
			rep.UploadBytes += size
			rep.UploadErrors += errs
			if rep.UploadError == "" && first != nil {
				rep.UploadError = first.Error()
			}
		})
	}
	wg.Wait()
	rep.WindowUs = cfg.Duration.Microseconds()
	rep.Renewals = rec.renewals
	rep.CPUSeconds = (cpuTime() - cpu0).Seconds()
	return rep
}

// renewLoop is restarter.renewLoop's shape: a renewal at once and then every
// interval, each in a goroutine of its own, skipped while three are in
// flight. It starts none after the window ends, waits for those in flight
// (each bounded by the put timeout) and returns how many it skipped.
func renewLoop(ctx, window context.Context, cfg childConfig, idx int, h *host, rec *recorder) int {
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, renewalsInFlight)
	skipped := 0
	for window.Err() == nil {
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				sent, err := renewOnce(ctx, cfg, h)
				rec.add(idx, sent, time.Since(sent), err != nil)
			})
		default:
			skipped++
		}
		select {
		case <-window.Done():
		case <-t.C:
		}
	}
	return skipped
}

// renewOnce puts a lease as restarter.renewOnce does and returns when it
// was sent.
func renewOnce(ctx context.Context, cfg childConfig, h *host) (time.Time, error) {
	sent := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.PutTimeout)
	defer cancel()
	val, err := json.Marshal(protocol.HostLease{
		Host: h.name, Incarnation: "bench", RenewedAt: sent.UTC(),
		RenewIntervalMs: cfg.Interval.Milliseconds(), SelfTimeoutMs: 20000,
	})
	if err != nil {
		return sent, err
	}
	_, err = h.kv.Put(ctx, h.name, val)
	return sent, err
}

// uploadLoop uploads image under a new key and deletes it again, one after
// the other, until the window ends or maxUploads is reached. An upload the
// window's end interrupts is neither counted nor an error.
func uploadLoop(ctx, window context.Context, cfg childConfig, h *host, image []byte) (n int, size int64, errs int, first error) {
	maxUploads := int(cfg.Duration/(10*time.Millisecond)) + 1
	for seq := 0; seq < maxUploads && window.Err() == nil; seq++ {
		key := store.ImageKey("bench-lease", uint64(seq), h.name)
		_, err := h.images.Put(window, key, bytes.NewReader(image))
		if window.Err() != nil {
			break
		}
		if err != nil {
			errs++
			if first == nil {
				first = err
			}
			pause(window, 100*time.Millisecond) // a failing store is not hammered
			continue
		}
		n++
		size += int64(len(image))
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := h.images.Delete(dctx, key); err != nil && !errors.Is(err, context.Canceled) && first == nil {
			first = err
		}
		cancel()
	}
	return n, size, errs, first
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
