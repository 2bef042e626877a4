package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/store"
)

// Supervisor is the runtime around the decisions: it competes for the lease
// and, while it leads, recovers checkpoints a predecessor left half done,
// runs each group's checkpoint schedule and answers on-demand requests.
type Supervisor struct {
	clock     clock.Clock // every timing decision reads it (WithClock)
	bus       *events.Bus
	cfg       Config
	log       hclog.Logger
	inventory *Inventory
	catalog   *checkpointer.Catalog
	coord     *checkpointer.Coordinator
	elector   *Elector
	stateKV   jetstream.KeyValue
	trust     trustPolicy  // supervisor.trusted_sources (trust.go)
	rejects   rejectNotice // rate limit of supervisor.input_rejected

	term  atomic.Uint64
	opSeq atomic.Uint64
}

// New wires a supervisor to the bus and an image store.
func New(ctx context.Context, bus *events.Bus, st store.ImageStore, cfg Config, log hclog.Logger, opts ...Option) (*Supervisor, error) {
	if err := cfg.Validate("supervisor"); err != nil {
		return nil, err
	}
	log = log.Named("supervisor")
	names := bus.Names()
	kvs := map[string]jetstream.KeyValue{}
	for _, b := range []string{names.VMs(), names.Groups(), names.Checkpoints(), names.Leader(), names.State()} {
		kv, err := bus.KV(ctx, b)
		if err != nil {
			return nil, err
		}
		kvs[b] = kv
	}
	s := &Supervisor{clock: clock.Real(), bus: bus, cfg: cfg, log: log, stateKV: kvs[names.State()]}
	s.trust, _ = newTrustPolicy(cfg.TrustedSources) // validated above
	for _, o := range opts {
		o(s)
	}
	s.inventory = NewInventory(kvs[names.VMs()], kvs[names.Groups()])
	s.catalog = checkpointer.NewCatalog(kvs[names.Checkpoints()])
	s.coord = checkpointer.NewCoordinator(cfg.ID, bus, bus, s.catalog, st, cfg.Checkpoint, log)
	s.elector = NewElectorOn(s.clock, kvs[names.Leader()], cfg.ID, bus.Config().LeaderTTL, log)
	return s, nil
}

// Inventory is the registered VMs and groups.
func (s *Supervisor) Inventory() *Inventory { return s.inventory }

// Run competes for leadership until ctx ends.
func (s *Supervisor) Run(ctx context.Context) error {
	s.elector.Run(ctx, s.lead)
	return nil
}

// epoch issues the next epoch of this leader's term.
func (s *Supervisor) epoch() events.Epoch {
	return events.Epoch{Term: s.term.Load(), Seq: s.opSeq.Add(1)}
}

// lead is one term of leadership; it returns when ctx ends (lease lost or
// stop), after every goroutine it started has returned.
func (s *Supervisor) lead(ctx context.Context, term uint64) {
	s.term.Store(term)
	s.opSeq.Store(0)
	if ev, err := events.New("xenft/supervisor/"+s.cfg.ID, s.clock.Now(), events.SupervisorLeader{Supervisor: s.cfg.ID, Term: term, Since: s.clock.Now().UTC()}); err == nil {
		if err := s.bus.Publish(ctx, ev.WithID(fmt.Sprintf("supervisor.leader/%d", term))); err != nil {
			s.log.Warn("cannot publish leadership", "error", err)
		}
	}
	if err := s.coord.Recover(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("checkpoint recovery incomplete", "error", err)
	}
	var wg sync.WaitGroup
	// The decision core's shell runs for the whole term; if it cannot run
	// (its state unreadable), this supervisor must not lead.
	ctx, stepDown := context.WithCancel(ctx)
	defer stepDown()
	sh := newShell(s, term, s.stateKV, stepDown)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sh.run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("decision core stopped; stepping down", "error", err)
			stepDown()
		}
	}()
	sched := newScheduler(ctx, &wg, s, sh)
	// Request handlers start through the gate, which closes before the
	// wait: a callback already running when we unsubscribe cannot add to
	// wg while Wait runs.
	var gateMu sync.Mutex
	gateOpen := true
	spawn := func(f func()) {
		gateMu.Lock()
		defer gateMu.Unlock()
		if !gateOpen {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	sub, err := s.bus.Conn().Subscribe(s.bus.Subjects().Supervisor("checkpoint"), func(m *nats.Msg) {
		if s.replayed(m) {
			return
		}
		spawn(func() { s.answerCheckpoint(ctx, sched, m) })
	})
	if err != nil {
		s.log.Error("cannot serve checkpoint requests", "error", err)
	}
	opSub, err := s.bus.Conn().Subscribe(s.bus.Subjects().Supervisor("op"), func(m *nats.Msg) {
		if s.replayed(m) {
			return
		}
		spawn(func() { s.answerOperator(ctx, sh, m) })
	})
	if err != nil {
		s.log.Error("cannot serve operator requests", "error", err)
	}
	sched.run(ctx)
	for _, sb := range []*nats.Subscription{sub, opSub} {
		if sb != nil {
			_ = sb.Unsubscribe()
		}
	}
	gateMu.Lock()
	gateOpen = false
	gateMu.Unlock()
	wg.Wait()
}

// replayed reports (and counts) a request a JetStream consumer delivered
// rather than a client sent (events.FromConsumer): it is not obeyed.
func (s *Supervisor) replayed(m *nats.Msg) bool {
	if !events.FromConsumer(m) {
		return false
	}
	s.bus.Ignored().Ignore(s.log, events.IgnoredInvalidInput, "request", "subject", m.Subject,
		"error", "delivered by a JetStream consumer ("+m.Reply+"), not sent by a client")
	return true
}

// CheckpointRequest asks the leader for a checkpoint of Group now.
type CheckpointRequest struct {
	Group string `json:"group"`
	Wait  bool   `json:"wait"`
}

// CheckpointReply is the leader's answer.
type CheckpointReply struct {
	Accepted bool                 `json:"accepted"`
	Record   *checkpointer.Record `json:"record,omitempty"`
	Error    string               `json:"error,omitempty"`
}

func (s *Supervisor) answerCheckpoint(ctx context.Context, sched *scheduler, m *nats.Msg) {
	var req CheckpointRequest
	reply := func(r CheckpointReply) {
		b, _ := json.Marshal(r)
		_ = m.Respond(b)
	}
	if err := json.Unmarshal(m.Data, &req); err != nil {
		reply(CheckpointReply{Error: "bad request: " + err.Error()})
		return
	}
	done, err := sched.now(ctx, req.Group)
	if err != nil {
		reply(CheckpointReply{Error: err.Error()})
		return
	}
	if !req.Wait {
		reply(CheckpointReply{Accepted: true})
		return
	}
	select {
	case res := <-done:
		if res.err != nil {
			reply(CheckpointReply{Accepted: true, Error: res.err.Error()})
			return
		}
		reply(CheckpointReply{Accepted: true, Record: &res.rec})
	case <-ctx.Done():
		reply(CheckpointReply{Accepted: true, Error: "leadership ended before the checkpoint finished"})
	}
}

// ErrNoLeader is returned when no supervisor answers a request.
var ErrNoLeader = errors.New("no supervisor is leading (is `xenft supervisor` running?)")

// RequestCheckpoint asks the leading supervisor for a checkpoint of group
// (the CLI's `xenft checkpoint now`).
func RequestCheckpoint(ctx context.Context, bus *events.Bus, group string, wait bool, timeout time.Duration) (CheckpointReply, error) {
	b, _ := json.Marshal(CheckpointRequest{Group: group, Wait: wait})
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := bus.Conn().RequestWithContext(ctx, bus.Subjects().Supervisor("checkpoint"), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return CheckpointReply{}, ErrNoLeader
	}
	if err != nil {
		return CheckpointReply{}, fmt.Errorf("checkpoint request: %w", err)
	}
	var rep CheckpointReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return CheckpointReply{}, fmt.Errorf("checkpoint reply: %w", err)
	}
	if rep.Error != "" {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}
