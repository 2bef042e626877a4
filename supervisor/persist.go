package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

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

// pending is the union of changes not yet written, and the outbox parts
// (events) staged with them.
type pending struct {
	meta               bool
	hosts, vms, groups map[string]bool
	outbox             []outboxPart
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
	return !p.meta && len(p.hosts)+len(p.vms)+len(p.groups)+len(p.outbox) == 0
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

// writeConcurrency bounds the entry writes in flight: a batch of restore
// results changes dozens of VMs, and one acknowledged write after another
// would hold up the next decision by a round trip each.
const writeConcurrency = 32

// write stores the pending entries of st (deleting those st no longer has)
// and the staged outbox parts, concurrently, and clears them, returning the
// parts written (to be published). On error everything stays pending.
func (p *pending) write(ctx context.Context, kv jetstream.KeyValue, st *core.State) ([]outboxPart, error) {
	type op struct {
		key string
		val []byte // nil: delete
	}
	var ops []op
	add := func(key string, v any, present bool) error {
		if !present {
			ops = append(ops, op{key: key})
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		ops = append(ops, op{key, b})
		return nil
	}
	var errs []error
	if p.meta {
		errs = append(errs, add(keyMeta, st.Meta, true))
	}
	for name := range p.hosts {
		h, ok := st.Hosts[name]
		errs = append(errs, add(keyHost+name, h, ok))
	}
	for name := range p.vms {
		v, ok := st.VMs[name]
		errs = append(errs, add(keyVM+name, v, ok))
	}
	for name := range p.groups {
		g, ok := st.Groups[name]
		errs = append(errs, add(keyGroup+name, g, ok))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, part := range p.outbox {
		ops = append(ops, op{part.key, part.data})
	}
	results := make([]error, len(ops))
	sem := make(chan struct{}, writeConcurrency)
	var wg sync.WaitGroup
	for i, o := range ops {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			if o.val == nil {
				if err = kv.Delete(ctx, o.key); errors.Is(err, jetstream.ErrKeyNotFound) {
					err = nil
				}
			} else {
				_, err = kv.Put(ctx, o.key, o.val)
			}
			if err != nil {
				results[i] = fmt.Errorf("write %s: %w", o.key, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(results...); err != nil {
		return nil, err
	}
	written := p.outbox
	p.meta, p.outbox = false, nil
	clear(p.hosts)
	clear(p.vms)
	clear(p.groups)
	return written, nil
}

// LoadState reads the decision state a supervisor persisted (nil, nil when
// none was): for a new leader, `xenft status` and the demo's view.
func LoadState(ctx context.Context, kv jetstream.KeyValue) (*core.State, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("read supervisor state: %w", err)
	}
	st := core.State{Hosts: map[string]*core.Host{}, VMs: map[string]*core.VM{}, Groups: map[string]*core.Group{}}
	found := false
	err = initialEntries(ctx, w, func(e jetstream.KeyValueEntry) error {
		if e.Operation() != jetstream.KeyValuePut {
			return nil
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
			return fmt.Errorf("supervisor state entry %s is unreadable: %w", key, derr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	return &st, nil
}

// initialEntries passes each value w holds when it starts to fn, in the
// order delivered, and stops the watcher; it returns fn's first error, or
// ctx's.
func initialEntries(ctx context.Context, w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry) error) error {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return nil // the initial values are all delivered
			}
			if err := fn(e); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
