package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TailConfig describes an ephemeral, ordered view of the event stream for
// monitors: nothing is acknowledged and nothing is kept on the server.
type TailConfig struct {
	// Since starts the tail at events stored at or after this time; the zero
	// time starts with the next new event.
	Since time.Time
	// Filters are NATS subjects (see Subjects); empty means every event.
	Filters []string
}

// Tail delivers events from tc.Since on to h, each once and in stream order,
// until ctx ends (ErrStopped) or h returns an error (returned as is). Invalid
// events are logged, counted and skipped.
//
// Tail reads through a reader of its own, an ephemeral pull consumer, and
// remembers the stream sequence of the last event it delivered. When the
// reader fails (an error, missed heartbeats, a gap in its sequence) or
// stalls (a pull came back short while the stream's leader, asked before the
// pull, already held an event for it), Tail drops the reader and opens a new
// one at the next sequence, after a growing pause, and logs a warning. It does
// not use nats.go's ordered consumer: after the NATS server leading the stream
// or serving the client died, that one was seen to deliver nothing more, with
// no error, while events kept being stored (e2e, about 1 run in 5).
//
// Only a reader that cannot be created at all is an error: a missing stream or
// an invalid filter. Once delivering, Tail keeps trying until ctx ends or the
// bus is closed.
func (b *Bus) Tail(ctx context.Context, tc TailConfig, h Handler) error {
	filters := tc.Filters
	if len(filters) == 0 {
		filters = []string{b.subjects.AllEvents()}
	}
	t := &tailer{
		b:       b,
		log:     b.log.Named("tail"),
		filters: filters,
		since:   tc.Since,
		wait:    min(b.cfg.RequestTimeout, tailMaxWait),
	}
	defer t.close(ctx)
	if err := t.start(ctx); err != nil {
		return err
	}
	return t.follow(ctx, h)
}

const (
	// tailBatch is the most events one pull asks for.
	tailBatch = 64
	// tailMaxWait bounds one pull (and the bus's RequestTimeout bounds it
	// further): a pull that comes back short is when a stall is looked for,
	// so a stalled reader is replaced within about two of them.
	tailMaxWait = 3 * time.Second
	// The pause before opening a new reader grows from tailBackoffMin to
	// tailBackoffMax while readers keep failing.
	tailBackoffMin = 250 * time.Millisecond
	tailBackoffMax = 5 * time.Second
	// tailDeleteTimeout bounds deleting a dropped reader: the server deletes
	// it by itself after its inactive threshold anyway, so recovery does not
	// wait long for a server that is gone.
	tailDeleteTimeout = time.Second
)

// tailer is one Tail's state, owned by the goroutine that called Tail.
type tailer struct {
	b       *Bus
	log     hclog.Logger
	filters []string
	since   time.Time
	wait    time.Duration // one pull's longest wait

	reader jetstream.Consumer // nil between a failure and the next reader
	name   string             // the reader's consumer name
	rseq   uint64             // the reader's sequence of the last message it gave

	// last is the stream sequence of the last event delivered or skipped;
	// a new reader starts after it. started says last is known: the first
	// reader starts from Since or at the end of the stream instead.
	last    uint64
	started bool

	// stream and leaderLast are the stream as its leader last described it:
	// every event up to leaderLast was stored before the next pull began.
	stream     jetstream.Stream
	leaderLast uint64

	pause time.Duration // the next pause before a new reader
}

// start opens the first reader, retrying while the failure may pass (no
// JetStream leader yet, a server going away).
func (t *tailer) start(ctx context.Context) error {
	for {
		err := t.open(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ErrStopped
		case permanent(err):
			return fmt.Errorf("tail: %w", err)
		}
		t.log.Warn("cannot start the tail yet, retrying", "error", err, "in", t.nextPause())
		if !t.sleep(ctx) {
			return ErrStopped
		}
	}
}

// follow pulls from the reader and replaces it when it fails or stalls.
func (t *tailer) follow(ctx context.Context, h Handler) error {
	for {
		if t.reader == nil {
			if err := t.open(ctx); err != nil {
				if ctx.Err() != nil {
					return ErrStopped
				}
				if errors.Is(err, nats.ErrConnectionClosed) {
					return fmt.Errorf("tail: %w", err)
				}
				t.log.Warn("cannot open a new reader, retrying", "from_seq", t.last+1, "error", err, "in", t.nextPause())
				if !t.sleep(ctx) {
					return ErrStopped
				}
				continue
			}
		}
		full, err := t.pull(ctx, h)
		var stop *stopError
		switch {
		case errors.As(err, &stop):
			return stop.err
		case ctx.Err() != nil:
			return ErrStopped
		case err != nil:
			t.replace(ctx, "reader failed", err)
			continue
		case full:
			continue // more may be waiting: no need to look for a stall
		}
		if seq, stalled := t.stalled(ctx); stalled {
			t.replace(ctx, "reader stalled", fmt.Errorf("the stream holds event %d for this tail (leader at %d), not delivered within %s", seq, t.leaderLast, t.wait))
			continue
		}
		t.pause = 0
		t.observe(ctx)
	}
}

// open creates a reader: an ephemeral consumer without acks, held in memory
// by one server, which deletes it once unused for a while if this process
// goes away without deleting it.
func (t *tailer) open(ctx context.Context) error {
	name, err := readerName()
	if err != nil {
		return err
	}
	cfg := jetstream.ConsumerConfig{
		Name:              name,
		Description:       "xenft events tail",
		FilterSubjects:    t.filters,
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: max(30*time.Second, 6*t.b.cfg.RequestTimeout),
		Replicas:          1,
		MemoryStorage:     true,
	}
	switch {
	case t.started:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, t.last+1
	case !t.since.IsZero():
		since := t.since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cctx, cancel := context.WithTimeout(ctx, t.b.cfg.RequestTimeout)
	defer cancel()
	// Watch the subject the create goes to (the filters are in
	// FilterSubjects, which the subject does not name), so that a
	// credential that may not create readers is told.
	wctx, refused := t.b.denied.watch(cctx, "$JS.API.CONSUMER.CREATE."+t.b.names.Stream()+"."+name)
	reader, err := t.b.js.CreateConsumer(wctx, t.b.names.Stream(), cfg)
	if derr := refused(); derr != nil {
		err = t.b.deniedError(derr)
	}
	if err != nil {
		return fmt.Errorf("create reader of %s: %w", t.b.names.Stream(), err)
	}
	info := reader.CachedInfo()
	if !t.started {
		// Where the server placed the start (by time, or the end of the
		// stream): a later reader resumes from here even if this one
		// delivers nothing.
		t.last, t.started = info.Delivered.Stream, true
	}
	t.reader, t.name, t.rseq = reader, name, info.Delivered.Consumer
	return nil
}

// pull asks the reader for one batch and delivers it; full says the batch
// was complete, so more may be waiting. The pull ends with ctx; missed
// heartbeats end it early with an error.
func (t *tailer) pull(ctx context.Context, h Handler) (full bool, err error) {
	pctx, cancel := context.WithTimeout(ctx, t.wait)
	defer cancel() // also ends nats.go's goroutine of the pull
	batch, err := t.reader.Fetch(tailBatch, jetstream.FetchContext(pctx), jetstream.FetchHeartbeat(t.wait/3))
	if err != nil {
		return false, fmt.Errorf("pull: %w", err)
	}
	n := 0
	for msgs := batch.Messages(); ; {
		if ctx.Err() != nil {
			return false, ErrStopped
		}
		select {
		case <-ctx.Done():
			return false, ErrStopped
		case msg, ok := <-msgs:
			if !ok {
				// The pull's own deadline passing is a pull that came back
				// short, not a failure: the server's expiry notice was late.
				if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
					return false, fmt.Errorf("pull: %w", err)
				}
				return n == tailBatch, nil
			}
			n++
			if err := t.deliver(ctx, msg, h); err != nil {
				return false, err
			}
		}
	}
}

// errReaderGap is a reader that skipped some of its own messages: they were
// lost on the way (a connection that dropped), and without acks the server
// does not send them again.
var errReaderGap = errors.New("gap in the reader's sequence")

// deliver hands one message on in order, dropping it if invalid.
func (t *tailer) deliver(ctx context.Context, msg jetstream.Msg, h Handler) error {
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	if md.Sequence.Consumer != t.rseq+1 {
		return fmt.Errorf("%w: message %d after %d", errReaderGap, md.Sequence.Consumer, t.rseq)
	}
	t.rseq = md.Sequence.Consumer
	if md.Sequence.Stream <= t.last {
		return nil // delivered already
	}
	t.last = md.Sequence.Stream
	ev, derr := Decode(msg.Data())
	if derr != nil {
		t.b.dropInvalid(t.log, msg.Subject(), derr)
		return nil
	}
	m := Meta{Subject: msg.Subject(), Seq: md.Sequence.Stream, Delivered: md.NumDelivered, Stored: md.Timestamp,
		Publisher: t.b.subjects.PublisherOf(msg.Subject())}
	if err := h(ctx, ev, m); err != nil {
		return &stopError{err}
	}
	return nil
}

// stalled reports whether the stream's leader held, before the pull that
// just came back short began, an event for this tail that the reader did not
// deliver, and its sequence. Not knowing (no answer from the leader) is not
// a stall: the reader may be fine.
func (t *tailer) stalled(ctx context.Context) (uint64, bool) {
	if t.stream == nil || t.leaderLast <= t.last {
		return 0, false
	}
	cctx, cancel := context.WithTimeout(ctx, t.b.cfg.RequestTimeout)
	defer cancel()
	for _, f := range t.filters {
		// The first event at or after last+1 on one of the filters.
		m, err := t.stream.GetMsg(cctx, t.last+1, jetstream.WithGetMsgSubject(f))
		if err == nil && m.Sequence <= t.leaderLast {
			return m.Sequence, true
		}
	}
	return 0, false
}

// observe asks the stream's leader for its last sequence, the bound of the
// next stall check. On failure the previous bound stays: it is older, so
// still true.
func (t *tailer) observe(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, t.b.cfg.RequestTimeout)
	defer cancel()
	st, err := t.b.js.Stream(cctx, t.b.names.Stream())
	if err != nil {
		t.log.Debug("stream info failed", "error", err)
		return
	}
	t.stream, t.leaderLast = st, st.CachedInfo().State.LastSeq
}

// replace drops the reader and pauses; the next round opens a new one after
// the last event delivered.
func (t *tailer) replace(ctx context.Context, why string, err error) {
	t.log.Warn(why+"; reading again from the next event", "reader", t.name, "from_seq", t.last+1, "error", err, "in", t.nextPause())
	t.close(ctx)
	t.sleep(ctx)
}

// close deletes the reader, if any, best effort: even when ctx has ended.
func (t *tailer) close(ctx context.Context) {
	if t.reader == nil {
		return
	}
	if !t.b.nc.IsClosed() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(t.b.cfg.RequestTimeout, tailDeleteTimeout))
		_ = t.b.js.DeleteConsumer(dctx, t.b.names.Stream(), t.name)
		cancel()
	}
	t.reader, t.name = nil, ""
}

func (t *tailer) nextPause() time.Duration { return max(t.pause, tailBackoffMin) }

// sleep waits for the next pause, which it doubles up to tailBackoffMax; false
// if ctx ended first.
func (t *tailer) sleep(ctx context.Context) bool {
	d := t.nextPause()
	t.pause = min(2*d, tailBackoffMax)
	timer := wall.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.Chan():
		return true
	}
}

// permanent reports whether a reader cannot be created however long one
// tries: no such stream, a request the server refuses (or its permissions
// do), a closed bus.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, ErrPermissionDenied) ||
		(errors.As(err, &apiErr) && apiErr.Code == 400)
}

// readerName is a fresh consumer name: a replaced reader never collides
// with the one it replaces, which may still exist on a server.
func readerName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("reader name: %w", err)
	}
	return "xenft_tail_" + hex.EncodeToString(b[:]), nil
}

// stopError marks a handler error that ends a tail.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }
