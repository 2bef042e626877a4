package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/supervisor/core"
)

// dispatcher executes the core's actions: each command in its own goroutine
// with a deadline, its outcome fed back to the loop as a core.Result exactly
// once; events, staged in the outbox and persisted with the state, are
// published in order by one goroutine, which then purges their entries.
type dispatcher struct {
	sh  *shell
	wg  sync.WaitGroup
	pub chan outboxPart
}

func newDispatcher(sh *shell) *dispatcher {
	return &dispatcher{sh: sh, pub: make(chan outboxPart, 4096)}
}

// run starts the commands of one Apply (after start); its events went to
// the outbox (shell.stage) and reach announce once persisted.
func (d *dispatcher) run(ctx context.Context, acts []core.Action) {
	for _, a := range acts {
		if c, ok := a.(core.Command); ok {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.execute(ctx, c)
			}()
		}
	}
}

// announce queues persisted outbox parts for publishing, in order.
func (d *dispatcher) announce(ctx context.Context, parts []outboxPart) {
	for _, p := range parts {
		select {
		case d.pub <- p:
		case <-ctx.Done():
			return // left in the outbox: the next leader publishes them
		}
	}
}

// start starts the one goroutine that publishes this term's events in the
// order the core emitted them; it stops when ctx ends.
func (d *dispatcher) start(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-d.pub:
				d.publish(ctx, p)
			}
		}
	}()
}

// publishPatience bounds how long one event is retried while the stream is
// unavailable. Past it the part stays in the outbox for the next leader and
// later events go on: the publisher must never hold up decisions (the
// shell's hand-off to it would block once its queue is full).
const publishPatience = 30 * time.Second

// publish publishes the events of one part, retrying each while the stream
// is unavailable, then purges the part from the outbox.
func (d *dispatcher) publish(ctx context.Context, p outboxPart) {
	s := d.sh.s
	for _, ev := range p.events {
		bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
			backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(publishPatience))
		err := backoff.Retry(func() error { return s.bus.Publish(ctx, ev) }, backoff.WithContext(bo, ctx))
		if err != nil {
			if ctx.Err() == nil {
				d.sh.log.Error("cannot publish; the event stays in the outbox for the next leader", "type", ev.Type.Short(), "id", ev.ID, "error", err)
			}
			return
		}
	}
	pctx, cancel := context.WithTimeout(ctx, s.bus.RequestTimeout())
	defer cancel()
	if err := purgeOutboxEntry(pctx, s.bus.JetStream(), d.sh.stateKV.Bucket(), p.key); err != nil && ctx.Err() == nil {
		// Its events are out; a later leader publishes them again, and the
		// stream drops them if that is within its duplicate window.
		d.sh.log.Warn("cannot purge published events from the outbox", "key", p.key, "error", err)
	}
}

func (d *dispatcher) wait() { d.wg.Wait() }

// execute runs one command and feeds its result back.
func (d *dispatcher) execute(ctx context.Context, c core.Command) {
	outcome, msg := d.do(ctx, c)
	if ctx.Err() != nil {
		return // leadership ended: the next leader re-sends under its term
	}
	if outcome == "" {
		// Stale epoch: the agent obeys a newer leader, so this one lost
		// the lease; its answer is not fed back.
		d.sh.s.bus.Ignored().Ignore(d.sh.log, events.IgnoredStaleEpoch, "command reply", "command", c.String(), "error", msg)
		return
	}
	d.sh.log.Debug("command done", "command", c.String(), "outcome", outcome, "error", msg)
	_ = d.sh.feed(ctx, core.ResultOf(c, d.sh.s.clock.Now(), outcome, msg), false)
}

// do performs c and classifies the outcome (DESIGN "every failure classified
// as retryable or permanent"). An empty outcome means drop the answer.
func (d *dispatcher) do(ctx context.Context, c core.Command) (core.Outcome, string) {
	s := d.sh.s
	timeout := s.cfg.CommandTimeout
	var err error
	switch a := c.(type) {
	case core.FenceHost:
		return d.fence(ctx, a)
	case core.DestroyVM:
		err = s.bus.Command(ctx, a.Host, protocol.VerbDestroy, protocol.DestroyRequest{VM: a.VM, Epoch: epochOf(a.Epoch)}, nil, timeout)
		var ce *command.Error
		if errors.As(err, &ce) && ce.Code == command.CodeNotFound {
			return core.OutcomeOK, "" // the goal is no copy there
		}
	case core.RestoreVM:
		req, rerr := d.restoreRequest(ctx, a)
		if rerr != nil {
			return core.OutcomeImageCorrupt, rerr.Error()
		}
		err = s.bus.Command(ctx, a.Host, protocol.VerbRestore, req, nil, timeout)
		var ce *command.Error
		if errors.As(err, &ce) && ce.Code == command.CodeNotFound {
			return core.OutcomeImageCorrupt, err.Error()
		}
	case core.ColdStartVM:
		spec, serr := s.inventory.VM(ctx, a.VM)
		if serr != nil || spec.ConfigPath == "" {
			return core.OutcomePermanent, fmt.Sprintf("vm %s has no config path for a cold start", a.VM)
		}
		paused := a.Paused
		err = s.bus.Command(ctx, a.Host, protocol.VerbColdStart, protocol.ColdStartRequest{VM: a.VM, ConfigPath: spec.ConfigPath, Paused: &paused, Epoch: epochOf(a.Epoch)}, nil, timeout)
	case core.UnpauseVM:
		err = s.bus.Command(ctx, a.Host, protocol.VerbUnpause, protocol.UnpauseRequest{VM: a.VM, Epoch: epochOf(a.Epoch)}, nil, timeout)
	case core.CheckpointGroup:
		err = d.checkpoint(ctx, a)
	default:
		return core.OutcomePermanent, fmt.Sprintf("unknown command %T", c)
	}
	if ce := (*command.Error)(nil); errors.As(err, &ce) && ce.Code == command.CodeStaleEpoch {
		d.sh.obeyed(ce.Host, ce.ObeyedTerm)
	}
	return classify(err)
}

// classify maps an agent's answer to the core's outcomes.
func classify(err error) (core.Outcome, string) {
	if err == nil {
		return core.OutcomeOK, ""
	}
	var ce *command.Error
	if !errors.As(err, &ce) {
		return core.OutcomeRetryable, err.Error()
	}
	switch ce.Code {
	case command.CodeStaleEpoch:
		return "", ce.Error()
	case command.CodeRetryable:
		return core.OutcomeRetryable, ce.Error()
	case command.CodeNotReady:
		// Not the VM's failure: the core does not count it as an attempt.
		return core.OutcomeHostNotReady, ce.Error()
	case command.CodeCorrupt:
		return core.OutcomeImageCorrupt, ce.Error()
	}
	return core.OutcomePermanent, ce.Error()
}

// restoreRequest resolves the member's image in the catalog record the core
// chose.
func (d *dispatcher) restoreRequest(ctx context.Context, a core.RestoreVM) (protocol.RestoreRequest, error) {
	rec, err := d.sh.s.catalog.Get(ctx, a.Group, a.Seq)
	if err != nil {
		return protocol.RestoreRequest{}, err
	}
	if rec.State != checkpointer.Committed {
		return protocol.RestoreRequest{}, fmt.Errorf("checkpoint %s/%d is %s", a.Group, a.Seq, rec.State)
	}
	for _, m := range rec.Members {
		if m.VM == a.VM {
			paused := a.Paused
			return protocol.RestoreRequest{VM: a.VM, Group: a.Group, Seq: a.Seq, ImageKey: m.ImageKey, Size: m.Size, SHA256: m.SHA256,
				Paused: &paused, Epoch: epochOf(a.Epoch)}, nil
		}
	}
	return protocol.RestoreRequest{}, fmt.Errorf("checkpoint %s/%d holds no image of %s", a.Group, a.Seq, a.VM)
}

// checkpoint runs a drain checkpoint of a group the core asked for (before
// moving it off a degraded host).
func (d *dispatcher) checkpoint(ctx context.Context, a core.CheckpointGroup) error {
	spec, ok := d.sh.groupSpec(a.Group)
	if !ok {
		return fmt.Errorf("group %s has no running member", a.Group)
	}
	_, err := d.sh.s.coord.Checkpoint(ctx, spec, epochOf(a.Epoch))
	return err
}

func epochOf(e core.Epoch) events.Epoch { return events.Epoch{Term: e.Term, Seq: e.Seq} }
