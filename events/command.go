package events

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/xenft/xenft/events/command"
)

// Commands are request/reply on <prefix>.cmd.<host>.<verb>: the supervisor
// (or its checkpoint coordinator) asks one host's agent to act and waits for
// the reply. The protocol (handlers, the reply envelope, error codes) is
// package command; this file is its transport.

// VerbPeek is the agents' read-only listing of their domains
// (restarter/protocol): it takes no epoch and changes nothing, so per-role
// permissions let an operator send it (xenft status), where every other
// command is the supervisors' alone.
const VerbPeek = "vm.peek"

// ServeCommands answers host's commands with handlers (keyed by verb, e.g.
// "checkpoint.pause") until ctx ends, then waits for running handlers.
// Each command runs in its own goroutine, at most maxConcurrent at once, so a
// long save does not hold up a pause of another domain. Unknown verbs and
// undecodable requests are answered with an error, never dropped silently;
// they, and the requests handlers refuse as bad_request or stale_epoch, are
// counted in Ignored and logged at most once per IgnoreLogEvery. A
// message a JetStream consumer delivered (FromConsumer) is not a command:
// it is counted and logged the same way, and neither run nor answered.
func (b *Bus) ServeCommands(ctx context.Context, host string, handlers map[string]command.Handler, maxConcurrent int) error {
	if maxConcurrent <= 0 {
		maxConcurrent = 16
	}
	prefix := b.subjects.Command(host, "")
	sem := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	log := b.log.Named("commands")
	sub, err := b.nc.Subscribe(b.subjects.HostCommands(host), func(m *nats.Msg) {
		verb := m.Subject[len(prefix):]
		if FromConsumer(m) {
			// Replayed by a JetStream consumer, not sent by a supervisor.
			b.ignored.Ignore(log, IgnoredInvalidRequest, "command", "verb", verb, "host", host,
				"error", "delivered by a JetStream consumer ("+m.Reply+"), not sent by a supervisor")
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.answer(ctx, m, host, verb, handlers[verb], log)
		}()
	})
	if err != nil {
		return fmt.Errorf("subscribe to commands of %s: %w", host, err)
	}
	if err := b.nc.FlushTimeout(b.cfg.RequestTimeout); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe to commands of %s: %w", host, err)
	}
	<-ctx.Done()
	_ = sub.Unsubscribe()
	wg.Wait()
	return ErrStopped
}

func (b *Bus) answer(ctx context.Context, m *nats.Msg, host, verb string, h command.Handler, log hclog.Logger) {
	rep := command.Answer(ctx, verb, h, m.Data)
	if e := rep.Error; e != nil {
		// A refused request is ignored input: the sender learns why from
		// the reply, the operator from a rate-limited line and a counter.
		// Other failures are the work failing, logged each time.
		switch e.Code {
		case command.CodeBadRequest:
			b.ignored.Ignore(log, IgnoredInvalidRequest, "command", "verb", verb, "host", host, "error", e.Message)
		case command.CodeStaleEpoch:
			b.ignored.Ignore(log, IgnoredStaleEpoch, "command", "verb", verb, "host", host, "error", e.Message)
		default:
			log.Warn("command failed", "verb", verb, "code", e.Code, "error", e.Message)
		}
	}
	data, _ := json.Marshal(rep)
	if m.Reply != "" {
		if err := m.Respond(data); err != nil {
			log.Warn("cannot reply", "verb", verb, "error", err)
		}
	}
}

// Command sends verb to host's agent and decodes the result into reply (which
// may be nil). It waits at most timeout (RequestTimeout if zero). A failure
// reported by the agent is a *command.Error; no answer at all (no agent, or it
// is too slow, or the connection dropped meanwhile) is a *command.Error with
// command.CodeRetryable; a command the server's permissions refuse is a
// permanent *command.Error that also matches ErrPermissionDenied.
func (b *Bus) Command(ctx context.Context, host, verb string, req, reply any, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = b.cfg.RequestTimeout
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s on %s: encode request: %w", verb, host, err)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := b.cancelOnReconnect(rctx, cancel)
	subject := b.subjects.Command(host, verb)
	wctx, refused := b.denied.watch(rctx, subject)
	msg, err := b.nc.RequestWithContext(wctx, subject, body)
	lost := stop()
	if derr := refused(); derr != nil {
		// Permanent: this connection's credential will not be let through.
		return fmt.Errorf("%w: %w", &command.Error{Host: host, Verb: verb, Code: command.CodePermanent, Message: "refused by the server"}, b.deniedError(derr))
	}
	if err != nil {
		if lost {
			return &command.Error{Host: host, Verb: verb, Code: command.CodeRetryable,
				Message: "no answer: the connection to NATS dropped while waiting, so the reply may be lost (commands are idempotent: send again)"}
		}
		return &command.Error{Host: host, Verb: verb, Code: command.CodeRetryable, Message: "no answer: " + err.Error()}
	}
	return command.Decode(host, verb, msg.Data, reply)
}

// EpochGuard remembers the newest leader term an agent has obeyed and refuses
// commands from older terms: a supervisor that lost its lease but has not yet
// noticed cannot act on a host after its successor has. The zero value is
// ready and keeps the term in memory; NewEpochGuard makes one that starts
// from a persisted term and persists every newer one before admitting it.
// It is safe for concurrent use.
type EpochGuard struct {
	mu      sync.Mutex
	term    uint64
	persist func(term uint64) error
}

// NewEpochGuard starts at term (the newest one obeyed before, read back from
// where persist writes) and calls persist with each newer term before it
// admits a command of that term: after a restart the agent still refuses a
// term older than one it obeyed, even if the bus has forgotten that term.
func NewEpochGuard(term uint64, persist func(term uint64) error) *EpochGuard {
	return &EpochGuard{term: term, persist: persist}
}

// Admit accepts e if its term is not older than any seen, and remembers it.
// A newer term that cannot be persisted is refused as retryable: obeying a
// term the agent might forget would let an older leader act again.
func (g *EpochGuard) Admit(e Epoch) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.Term < g.term {
		return &command.Error{Code: command.CodeStaleEpoch, ObeyedTerm: g.term,
			Message: fmt.Sprintf("epoch term %d is older than term %d already obeyed", e.Term, g.term)}
	}
	if e.Term > g.term && g.persist != nil {
		if err := g.persist(e.Term); err != nil {
			return &command.Error{Code: command.CodeRetryable, Message: fmt.Sprintf("cannot persist leader term %d before obeying it: %v", e.Term, err)}
		}
	}
	g.term = e.Term
	return nil
}

// Term is the newest term admitted.
func (g *EpochGuard) Term() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.term
}

// reconnectPoll is how often a command waiting for its reply looks whether
// the connection dropped.
const reconnectPoll = 250 * time.Millisecond

// cancelOnReconnect cancels a command's wait when the connection reconnects
// meanwhile: a reply sent while the client was disconnected is lost, and
// waiting for it would hold the command until its timeout (command_timeout,
// 5 minutes: the soak saw a group's restored members stay paused that long
// after the leader's link to its server was cut). stop ends the watch and
// reports whether it cancelled.
func (b *Bus) cancelOnReconnect(ctx context.Context, cancel context.CancelFunc) (stop func() bool) {
	start := b.nc.Stats().Reconnects
	done := make(chan struct{})
	var lost atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := wall.NewTicker(reconnectPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.Chan():
				if b.nc.Stats().Reconnects != start {
					lost.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return func() bool {
		close(done)
		wg.Wait()
		return lost.Load()
	}
}
