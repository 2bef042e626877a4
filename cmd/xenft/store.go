package main

import (
	"context"
	"fmt"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/store"
)

// openRoleStore opens the image store of a long-running role (an agent, a
// supervisor). The nats backend gets a connection of its own, named
// name+"-images": images are tens to hundreds of MiB, and on the role's
// control connection a heartbeat, a lease renewal or a leader-lease update
// queued behind an upload's chunks. Beside a CPU hog (make e2e) every
// agent's beats and lease renewals stopped for 4 s during the first
// checkpoint's uploads: the detectors failed the hosts and the agents fenced
// themselves. The returned close ends that connection (a no-op for dir).
// opts name the role's identity (events.As), which its credential's
// permissions are bound to on this connection too.
func openRoleStore(ctx context.Context, c StoreConfig, busCfg events.BusConfig, name string, a *app, opts ...events.ConnectOption) (store.ImageStore, func(), error) {
	if c.Backend != "nats" {
		st, err := store.NewDir(c.Dir)
		return st, func() {}, err
	}
	bus, err := connectWithRetry(ctx, busCfg, name+"-images", a, await(events.NamesFor(busCfg.Prefix).Images()), opts...)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, c, bus)
	if err != nil {
		bus.Close()
		return nil, nil, err
	}
	return st, bus.Close, nil
}

// StoreConfig is the "store" section: where checkpoint images live. Agents
// write there and the supervisor prunes there, so all must name the same.
type StoreConfig struct {
	// Backend is "dir" (a directory every host mounts: local for one host,
	// NFS/Lustre/GPFS for many) or "nats" (the xenft_images object store).
	Backend string `mapstructure:"backend"`
	// Dir is the root of the dir backend.
	Dir string `mapstructure:"dir"`
}

// Validate names the offending key under section.
func (c StoreConfig) Validate(section string) error {
	switch c.Backend {
	case "dir":
		if c.Dir == "" {
			return fmt.Errorf("%s.dir: required when %s.backend is dir", section, section)
		}
	case "nats":
	default:
		return fmt.Errorf("%s.backend: %q is not one of dir, nats", section, c.Backend)
	}
	return nil
}

// openStore opens the configured image store.
func openStore(ctx context.Context, c StoreConfig, bus *events.Bus) (store.ImageStore, error) {
	if c.Backend == "nats" {
		obj, err := bus.Images(ctx)
		if err != nil {
			return nil, fmt.Errorf("image object store: %w", err)
		}
		chunks, err := bus.ImagesStream(ctx)
		if err != nil {
			return nil, fmt.Errorf("image object store: %w", err)
		}
		return store.NewNATS(obj, store.LeaderChunks(bus.Conn(), chunks.CachedInfo().Config.Name)), nil
	}
	return store.NewDir(c.Dir)
}
