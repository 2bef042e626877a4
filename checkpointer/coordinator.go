package checkpointer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/store"
)

// Commander sends a command to a host's agent (events.Bus does).
type Commander interface {
	Command(ctx context.Context, host, verb string, req, reply any, timeout time.Duration) error
}

// Publisher stores an event in the stream (events.Bus does).
type Publisher interface {
	Publish(ctx context.Context, ev events.Event) error
}

// GroupSpec is what the coordinator needs to know of a group.
type GroupSpec struct {
	Name    string
	Members []Member // VM and Host set; image fields ignored
	// ResumeEarly unpauses each member as soon as its own save ends instead
	// of after the whole group is saved: less downtime, relying on TCP
	// retransmission for messages between members in flight at the cut.
	ResumeEarly bool
	// Retain is how many committed checkpoints to keep (0: the default).
	Retain int
}

// CoordinatorConfig is the checkpoint part of the supervisor's configuration.
type CoordinatorConfig struct {
	// PauseTimeout bounds the capture barrier: every member saved to its
	// host's spool and its disk snapshot taken, or the checkpoint aborts.
	PauseTimeout time.Duration `mapstructure:"pause_timeout"`
	// SaveTimeout bounds each member's upload into the store.
	SaveTimeout time.Duration `mapstructure:"save_timeout"`
	// CommandTimeout bounds resume and abort commands.
	CommandTimeout time.Duration `mapstructure:"command_timeout"`
	// Retain is the default number of committed checkpoints kept per group.
	Retain int `mapstructure:"retain"`
}

// DefaultCoordinatorConfig: a capture barrier of 30 s tolerates a slow
// snapshot hook and a few GiB of memory written to a local disk; three checkpoints let a rollback step back twice past corrupt images.
func DefaultCoordinatorConfig() CoordinatorConfig {
	return CoordinatorConfig{PauseTimeout: 30 * time.Second, SaveTimeout: 10 * time.Minute, CommandTimeout: 30 * time.Second, Retain: 3}
}

// Validate names the offending key under section.
func (c CoordinatorConfig) Validate(section string) error {
	var errs []error
	for k, d := range map[string]time.Duration{"pause_timeout": c.PauseTimeout, "save_timeout": c.SaveTimeout, "command_timeout": c.CommandTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must be positive, got %s", section, k, d))
		}
	}
	if c.Retain < MinRetain {
		errs = append(errs, fmt.Errorf("%s.retain: must be at least %d (the previous checkpoint is the fallback if the newest commit is lost), got %d", section, MinRetain, c.Retain))
	}
	return errors.Join(errs...)
}

// Coordinator drives coordinated checkpoints of groups (DESIGN.md
// "Coordinated checkpoints of a group"). The leading supervisor runs one;
// Checkpoint may be called for different groups concurrently, and calls for
// the same group are serialised (the catalog also refuses a second one).
type Coordinator struct {
	clock   clock.Clock
	cmd     Commander
	pub     Publisher
	catalog *Catalog
	store   store.ImageStore
	cfg     CoordinatorConfig
	id      string
	log     hclog.Logger

	mu     sync.Mutex
	groups map[string]*sync.Mutex
}

// NewCoordinator returns a coordinator named id (the supervisor's id).
func NewCoordinator(id string, cmd Commander, pub Publisher, cat *Catalog, st store.ImageStore, cfg CoordinatorConfig, log hclog.Logger, opts ...Option) *Coordinator {
	return &Coordinator{clock: clock.Build(opts).Clock, cmd: cmd, pub: pub, catalog: cat, store: st, cfg: cfg, id: id, log: log.Named("coordinator"), groups: map[string]*sync.Mutex{}}
}

func (c *Coordinator) lock(group string) func() {
	c.mu.Lock()
	m, ok := c.groups[group]
	if !ok {
		m = &sync.Mutex{}
		c.groups[group] = m
	}
	c.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Checkpoint takes one coordinated checkpoint of g and returns the committed
// record. On any failure it aborts: members are unpaused, partial images
// deleted, the record marked aborted and checkpoint.aborted published; the
// group's previous committed checkpoint stays its latest.
func (c *Coordinator) Checkpoint(ctx context.Context, g GroupSpec, epoch events.Epoch) (Record, error) {
	if len(g.Members) == 0 {
		return Record{}, fmt.Errorf("group %s has no members", g.Name)
	}
	defer c.lock(g.Name)()
	start := c.clock.Now()
	rec, err := c.catalog.Begin(ctx, g.Name, g.Members, epoch, c.id)
	if err != nil {
		return Record{}, err
	}
	log := c.log.With("group", g.Name, "seq", rec.Seq)
	c.publish(ctx, events.CheckpointStarted{Group: g.Name, Seq: rec.Seq, Members: eventMembers(g.Members), Epoch: epoch})

	members, failed, err := c.run(ctx, g, rec, epoch)
	if err != nil {
		log.Warn("checkpoint failed, aborting", "member", failed.VM, "host", failed.Host, "error", err)
		c.abort(context.WithoutCancel(ctx), rec, err.Error(), failed)
		return Record{}, fmt.Errorf("checkpoint %s/%d aborted: %w", g.Name, rec.Seq, err)
	}
	committed, err := c.catalog.Commit(ctx, rec, members)
	if err != nil {
		// Another coordinator moved the record (it thought we were dead):
		// our images are not referenced by a committed record.
		c.deleteImages(context.WithoutCancel(ctx), rec)
		return Record{}, fmt.Errorf("commit %s/%d: %w", g.Name, rec.Seq, err)
	}
	dur := c.clock.Since(start)
	log.Info("checkpoint committed", "duration", dur, "members", len(members))
	c.publish(ctx, events.CheckpointCommitted{Group: g.Name, Seq: rec.Seq, Images: eventImages(members), DurationMs: dur.Milliseconds(), Epoch: epoch})
	retain := g.Retain
	if retain <= 0 {
		retain = c.cfg.Retain
	}
	if err := c.Prune(ctx, g.Name, retain); err != nil {
		log.Warn("retention failed", "error", err)
	}
	return committed, nil
}

// run is the protocol after Begin: the capture barrier, the resumes, then the
// uploads. It returns the members with their images, or the member that
// failed.
func (c *Coordinator) run(ctx context.Context, g GroupSpec, rec Record, epoch events.Epoch) ([]Member, Member, error) {
	members := append([]Member(nil), g.Members...)
	// Phase 1: capture every member (each stays paused unless resuming
	// early). No member resumes before all are captured.
	pctx, cancel := context.WithTimeout(ctx, c.cfg.PauseTimeout)
	i, err := parallel(pctx, len(members), func(ctx context.Context, i int) error {
		var rep CaptureReply
		err := c.cmd.Command(ctx, members[i].Host, VerbCapture, CaptureRequest{Group: g.Name, Seq: rec.Seq, VM: members[i].VM, Epoch: epoch, ResumeEarly: g.ResumeEarly}, &rep, c.cfg.PauseTimeout)
		members[i].DiskSnapshot, members[i].PausedMs = rep.DiskSnapshot, rep.PausedMs
		return err
	})
	cancel()
	if err != nil {
		return nil, members[i], fmt.Errorf("capture barrier: %s: %w", members[i].VM, err)
	}
	// Phase 2: the cut is complete; resume everyone. A member that cannot
	// be resumed may have been unpaused by its agent's max_pause before the
	// barrier closed, so the cut is not trusted: abort.
	if !g.ResumeEarly {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.CommandTimeout)
		i, err = parallel(rctx, len(members), func(ctx context.Context, i int) error {
			var rep ResumeReply
			err := c.cmd.Command(ctx, members[i].Host, VerbResume, ResumeRequest{Group: g.Name, Seq: rec.Seq, VM: members[i].VM, Epoch: epoch}, &rep, c.cfg.CommandTimeout)
			members[i].PausedMs = rep.PausedMs
			return err
		})
		cancel()
		if err != nil {
			return nil, members[i], fmt.Errorf("resume: %s: %w", members[i].VM, err)
		}
	}
	// Phase 3: upload the images while the members run.
	sctx, cancel := context.WithTimeout(ctx, c.cfg.SaveTimeout)
	defer cancel()
	i, err = parallel(sctx, len(members), func(ctx context.Context, i int) error {
		var rep UploadReply
		key := store.ImageKey(g.Name, rec.Seq, members[i].VM)
		err := c.cmd.Command(ctx, members[i].Host, VerbUpload, UploadRequest{Group: g.Name, Seq: rec.Seq, VM: members[i].VM, Epoch: epoch, ImageKey: key}, &rep, c.cfg.SaveTimeout)
		if err == nil {
			members[i].ImageKey, members[i].Size, members[i].SHA256 = key, rep.Size, rep.SHA256
		}
		return err
	})
	if err != nil {
		return nil, members[i], fmt.Errorf("upload: %s: %w", members[i].VM, err)
	}
	return members, Member{}, nil
}

// parallel runs f for 0..n-1 concurrently and returns the index and error of
// the first failure, cancelling the others' context as soon as one fails.
func parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() { results <- result{i, f(ctx, i)} }()
	}
	first := result{i: -1}
	for j := 0; j < n; j++ {
		r := <-results
		if r.err != nil && first.err == nil {
			first = r
			cancel()
		}
	}
	if first.err != nil {
		return first.i, first.err
	}
	return -1, nil
}

// abort unpauses every member, deletes partial images, marks the record
// aborted and publishes why.
func (c *Coordinator) abort(ctx context.Context, rec Record, reason string, failed Member) {
	var wg sync.WaitGroup
	for _, m := range rec.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.cmd.Command(ctx, m.Host, VerbAbort, AbortRequest{Group: rec.Group, Seq: rec.Seq, VM: m.VM, Epoch: rec.Epoch}, nil, c.cfg.CommandTimeout); err != nil {
				c.log.Warn("abort not acknowledged; the agent's max_pause will unpause", "vm", m.VM, "host", m.Host, "error", err)
			}
		}()
	}
	wg.Wait()
	c.deleteImages(ctx, rec)
	if _, err := c.catalog.Abort(ctx, rec, reason); err != nil {
		c.log.Warn("cannot mark checkpoint aborted", "group", rec.Group, "seq", rec.Seq, "error", err)
	}
	c.publish(ctx, events.CheckpointAborted{Group: rec.Group, Seq: rec.Seq, Reason: truncate(reason, 1000), VM: failed.VM, Host: failed.Host, Epoch: rec.Epoch})
}

func (c *Coordinator) deleteImages(ctx context.Context, rec Record) {
	infos, err := c.store.List(ctx, store.CheckpointPrefix(rec.Group, rec.Seq))
	if err != nil {
		c.log.Warn("cannot list partial images", "group", rec.Group, "seq", rec.Seq, "error", err)
		return
	}
	for _, in := range infos {
		if err := c.store.Delete(ctx, in.Key); err != nil {
			c.log.Warn("cannot delete image", "key", in.Key, "error", err)
		}
	}
}

// Recover aborts every checkpoint left preparing by a coordinator that died
// mid-protocol: it unpauses the members (their agents also do so on their own
// after max_pause), deletes partial images and marks the records aborted. A
// new leader calls it before it takes any checkpoint.
func (c *Coordinator) Recover(ctx context.Context) error {
	groups, err := c.catalog.Groups(ctx)
	if err != nil {
		return err
	}
	for _, g := range groups {
		recs, err := c.catalog.List(ctx, g)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.State != Preparing {
				continue
			}
			unlock := c.lock(g)
			c.log.Warn("aborting a checkpoint left preparing by a previous coordinator", "group", g, "seq", r.Seq, "coordinator", r.Coordinator)
			c.abort(ctx, r, "coordinator "+r.Coordinator+" lost mid-protocol", Member{})
			unlock()
		}
	}
	return nil
}

// MinRetain is the fewest committed checkpoints kept per group. Pruning
// right after a commit must never leave the group with that commit alone:
// if the bus loses its newest acknowledged writes (a power loss under a lazy
// sync policy, a corrupted replica), the commit record can vanish, and the
// previous consistent cut is then the only one left to roll back to.
const MinRetain = 2

// Prune keeps the newest retain (at least MinRetain) committed checkpoints of
// group and deletes older records and their images, and aborted records older
// than the oldest kept one.
func (c *Coordinator) Prune(ctx context.Context, group string, retain int) error {
	retain = max(retain, MinRetain)
	recs, err := c.catalog.List(ctx, group)
	if err != nil {
		return err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq > recs[j].Seq })
	kept := 0
	var errs []error
	for _, r := range recs {
		switch {
		case r.State == Preparing:
			continue
		case r.State == Committed && kept < retain:
			kept++
			continue
		case r.State == Aborted && kept < retain:
			continue // recent aborts stay as history until retention passes them
		}
		c.deleteImages(ctx, r)
		if err := c.catalog.Delete(ctx, r); err != nil {
			errs = append(errs, err)
			continue
		}
		if r.State == Committed {
			c.publish(ctx, events.CheckpointDeleted{Group: group, Seq: r.Seq, Reason: fmt.Sprintf("retention: keep the last %d", retain)})
		}
	}
	return errors.Join(errs...)
}

func (c *Coordinator) publish(ctx context.Context, p events.Payload) {
	ev, err := events.New("xenft/supervisor/"+c.id, c.clock.Now(), p)
	if err == nil {
		err = c.pub.Publish(ctx, ev)
	}
	if err != nil {
		c.log.Warn("cannot publish event", "type", p.EventType(), "error", err)
	}
}

func eventMembers(ms []Member) []events.Member {
	out := make([]events.Member, len(ms))
	for i, m := range ms {
		out[i] = events.Member{VM: m.VM, Host: m.Host}
	}
	return out
}

func eventImages(ms []Member) []events.CheckpointImage {
	out := make([]events.CheckpointImage, len(ms))
	for i, m := range ms {
		out[i] = events.CheckpointImage{VM: m.VM, Host: m.Host, ImageKey: m.ImageKey, Size: m.Size, SHA256: m.SHA256, PausedMs: m.PausedMs, DiskSnapshot: m.DiskSnapshot}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
