package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/supervisor/core"
)

// The decision state is kept per entry in the xenft_state bucket: "meta",
// "host.<name>", "vm.<name>", "group.<name>". After each batch only the
// entries the core changed are written (core.TakeChanges), so a cycle costs a
// few small writes whatever the cluster's size, and no value comes near
// NATS's 1 MiB message limit (the whole state is 1.7 MB at 10,000 VMs).
const (
	keyMeta   = "meta"
	keyHost   = "host."
	keyVM     = "vm."
	keyGroup  = "group."
	legacyKey = "core" // the whole state as one document (earlier versions)
)

// pending is the union of changes not yet written.
type pending struct {
	meta               bool
	hosts, vms, groups map[string]bool
}

func newPending() *pending {
	return &pending{hosts: map[string]bool{}, vms: map[string]bool{}, groups: map[string]bool{}}
}

func (p *pending) add(c core.Changes) {
	p.meta = p.meta || c.Meta
	for _, h := range c.Hosts {
		p.hosts[h] = true
	}
	for _, v := range c.VMs {
		p.vms[v] = true
	}
	for _, g := range c.Groups {
		p.groups[g] = true
	}
}

func (p *pending) empty() bool {
	return !p.meta && len(p.hosts)+len(p.vms)+len(p.groups) == 0
}

// all marks every entry of st (and the meta) for writing.
func (p *pending) all(st *core.State) {
	p.meta = true
	for h := range st.Hosts {
		p.hosts[h] = true
	}
	for v := range st.VMs {
		p.vms[v] = true
	}
	for g := range st.Groups {
		p.groups[g] = true
	}
}

// write stores the pending entries of st (deleting those st no longer has)
// and clears them.
func (p *pending) write(ctx context.Context, kv jetstream.KeyValue, st *core.State) error {
	put := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		if _, err := kv.Put(ctx, key, b); err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		return nil
	}
	del := func(key string) error {
		if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		return nil
	}
	if p.meta {
		if err := put(keyMeta, st.Meta); err != nil {
			return err
		}
		p.meta = false
	}
	for name := range p.hosts {
		var err error
		if h, ok := st.Hosts[name]; ok {
			err = put(keyHost+name, h)
		} else {
			err = del(keyHost + name)
		}
		if err != nil {
			return err
		}
		delete(p.hosts, name)
	}
	for name := range p.vms {
		var err error
		if v, ok := st.VMs[name]; ok {
			err = put(keyVM+name, v)
		} else {
			err = del(keyVM + name)
		}
		if err != nil {
			return err
		}
		delete(p.vms, name)
	}
	for name := range p.groups {
		var err error
		if g, ok := st.Groups[name]; ok {
			err = put(keyGroup+name, g)
		} else {
			err = del(keyGroup + name)
		}
		if err != nil {
			return err
		}
		delete(p.groups, name)
	}
	return nil
}

// LoadState reads the decision state a supervisor persisted (nil, nil when
// none was): for a new leader, `xenft status` and the demo's view.
func LoadState(ctx context.Context, kv jetstream.KeyValue) (*core.State, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("read supervisor state: %w", err)
	}
	defer func() { _ = w.Stop() }()
	st := core.State{Hosts: map[string]*core.Host{}, VMs: map[string]*core.VM{}, Groups: map[string]*core.Group{}}
	found := false
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e == nil {
			break // the initial values are all delivered
		}
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		key, val := e.Key(), e.Value()
		var derr error
		switch {
		case key == keyMeta:
			found, derr = true, json.Unmarshal(val, &st.Meta)
		case strings.HasPrefix(key, keyHost):
			var h core.Host
			derr = json.Unmarshal(val, &h)
			st.Hosts[strings.TrimPrefix(key, keyHost)] = &h
		case strings.HasPrefix(key, keyVM):
			var v core.VM
			derr = json.Unmarshal(val, &v)
			st.VMs[strings.TrimPrefix(key, keyVM)] = &v
		case strings.HasPrefix(key, keyGroup):
			var g core.Group
			derr = json.Unmarshal(val, &g)
			st.Groups[strings.TrimPrefix(key, keyGroup)] = &g
		}
		if derr != nil {
			return nil, fmt.Errorf("supervisor state entry %s is unreadable: %w", key, derr)
		}
	}
	if !found {
		return nil, nil
	}
	return &st, nil
}
