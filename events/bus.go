package events

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus is a role's connection to NATS and JetStream. It is safe for concurrent
// use; Close it when the role stops.
type Bus struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	cfg      BusConfig
	subjects Subjects
	names    Names
	log      hclog.Logger
	drops    DropCounter
	ignored  IgnoredInputs
	// publisher names this role's identity in the subjects of the events
	// it publishes (EventFrom); anonymous unless Connect was given As.
	publisher Publisher
	// denied tells publishes and commands in flight that the server
	// refused their subject.
	denied *denials
}

// ConnectOption adjusts Connect.
type ConnectOption func(*connectOptions)

type connectOptions struct {
	inProcess nats.InProcessConnProvider
	coalesce  time.Duration
	nats      []nats.Option
	publisher Publisher
}

// As names the identity this bus publishes events as: its role and name. The
// server's permissions (docs/security.md) let a credential publish only under
// its own, and consumers read it from the subject (Meta.Publisher).
func As(role, name string) ConnectOption {
	return func(o *connectOptions) { o.publisher = Publisher{Role: role, Name: name} }
}

// NATSOptions adds options of the NATS client to the connection, after
// xenft's own (its name, timeouts, reconnecting forever, auth and TLS from
// the configuration), so that an embedder can override or extend them: a
// custom dialer, connection callbacks, a credentials file. Options that
// undo what xenft relies on (reconnecting, the in-process connection) are
// the embedder's responsibility.
func NATSOptions(opts ...nats.Option) ConnectOption {
	return func(o *connectOptions) { o.nats = append(o.nats, opts...) }
}

// InProcess connects to an embedded server (package embedded) without a
// socket (xenft up, tests).
func InProcess(s nats.InProcessConnProvider) ConnectOption {
	return func(o *connectOptions) { o.inProcess = s }
}

// Connect reaches the bus described by cfg. Once connected, the client
// reconnects forever: a lost connection is logged, not fatal, because a
// daemon's job is to keep going while the servers come back.
func Connect(cfg BusConfig, log hclog.Logger, opts ...ConnectOption) (*Bus, error) {
	if err := cfg.Validate("bus"); err != nil {
		return nil, err
	}
	var co connectOptions
	if cfg.Identity != "" {
		co.publisher, _ = ParsePublisher(cfg.Identity) // validated above
	}
	for _, o := range opts {
		o(&co)
	}
	if cfg.Auth.NKeySeedFile != "" && co.publisher.Anonymous() {
		// The seed's permissions bind it to one identity's subjects and
		// inboxes; without knowing which, every publish would be refused.
		return nil, fmt.Errorf("bus.identity: required with bus.auth.nkey_seed_file: the role/name the seed was issued for, e.g. operator/admin")
	}
	log = log.Named("bus")
	den := &denials{inbox: InboxPrefix(co.publisher) + "."}
	nopts := []nats.Option{
		nats.Name(cfg.ClientName),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil { // nil on a deliberate Close
				log.Warn("disconnected from nats, reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to nats", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { log.Debug("nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if den.note(err) {
				// The operation refused returns the error itself.
				log.Debug("nats async error", "subject", subj, "error", err)
				return
			}
			log.Warn("nats async error", "subject", subj, "error", err)
		}),
	}
	if !co.publisher.Anonymous() {
		nopts = append(nopts, nats.CustomInboxPrefix(InboxPrefix(co.publisher)))
	}
	auth, err := authOptions(cfg)
	if err != nil {
		return nil, err
	}
	nopts = append(nopts, auth...)
	url := ""
	if co.inProcess != nil {
		nopts = append(nopts, nats.InProcessServer(co.inProcess))
	} else {
		if co.coalesce > 0 {
			nopts = append(nopts, nats.SetCustomDialer(newCoalescingDialer(co.coalesce, cfg.ConnectTimeout)))
		}
		for i, u := range cfg.URLs {
			if i > 0 {
				url += ","
			}
			url += u
		}
	}
	nopts = append(nopts, co.nats...)
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w%s", url, err, connectHint(cfg, err))
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Bus{nc: nc, js: js, cfg: cfg, subjects: Subjects{Prefix: cfg.Prefix}, names: NamesFor(cfg.Prefix), log: log,
		publisher: co.publisher, denied: den}, nil
}

// connectHint says which setting a refused connection points to.
func connectHint(cfg BusConfig, err error) string {
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.Is(err, nats.ErrAuthorization) && cfg.Auth == (ClientAuth{}):
		return " (the server requires a credential: bus.auth.nkey_seed_file and bus.identity, as xenft auth init or xenft up print them)"
	case errors.Is(err, nats.ErrAuthorization):
		return " (the server does not accept this credential: is its public key in the servers' server.auth.identities?)"
	case errors.As(err, &unknownCA) || strings.Contains(err.Error(), "certificate signed by unknown authority"):
		return " (set bus.tls.ca to the CA that signed the server's certificate)"
	case errors.Is(err, nats.ErrSecureConnRequired):
		return " (the server requires TLS: set bus.tls.ca)"
	}
	return ""
}

func authOptions(cfg BusConfig) ([]nats.Option, error) {
	var o []nats.Option
	a := cfg.Auth
	switch {
	case a.CredsFile != "":
		o = append(o, nats.UserCredentials(a.CredsFile))
	case a.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("bus.auth.nkey_seed_file: %w", err)
		}
		o = append(o, opt)
	case a.User != "":
		o = append(o, nats.UserInfo(a.User, a.Password))
	}
	if cfg.TLS.CA != "" {
		o = append(o, nats.RootCAs(cfg.TLS.CA))
	}
	if cfg.TLS.Cert != "" {
		o = append(o, nats.ClientCert(cfg.TLS.Cert, cfg.TLS.Key))
	}
	return o, nil
}

// Close drains nothing and closes the connection; in-flight publishes that
// were not acknowledged are lost to the caller, which saw no ack for them.
func (b *Bus) Close() { b.nc.Close() }

// Conn is the core NATS connection (heartbeats, request/reply).
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the JetStream API of the connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Subjects builds this installation's subjects.
func (b *Bus) Subjects() Subjects { return b.subjects }

// Publisher is the identity this bus publishes events as.
func (b *Bus) Publisher() Publisher { return b.publisher }

// Names gives this installation's stream, bucket and object store names.
func (b *Bus) Names() Names { return b.names }

// Config is the configuration the bus was connected with.
func (b *Bus) Config() BusConfig { return b.cfg }

// Drops counts events this bus's consumers dropped as invalid.
func (b *Bus) Drops() DropStats { return b.drops.Stats() }

// Ignored counts the inputs ignored by this bus's consumers and tails
// (invalid events), its command server (invalid requests, stale epochs) and
// the role built on it (the supervisor counts what its core refuses here):
// one set of counters per role, for the metrics to export.
func (b *Bus) Ignored() *IgnoredInputs { return &b.ignored }

// RequestTimeout bounds one request on the bus.
func (b *Bus) RequestTimeout() time.Duration { return b.cfg.RequestTimeout }

// imageUploadWindow bounds the 1 MiB chunks of one image upload in flight:
// the object store publishes chunks asynchronously, and an unbounded window
// overflows the stream's ingest queue, which the server answers with 429
// "too many requests" and drops the chunk.
const imageUploadWindow = 16

// Images opens the checkpoint image object store through a JetStream context
// of its own whose async publish window is bounded (imageUploadWindow), so
// uploads neither overrun the server nor hold up event publishing.
func (b *Bus) Images(ctx context.Context) (jetstream.ObjectStore, error) {
	js, err := jetstream.New(b.nc, jetstream.WithDefaultTimeout(b.cfg.RequestTimeout), jetstream.WithPublishAsyncMaxPending(imageUploadWindow))
	if err != nil {
		return nil, err
	}
	wctx, refused := b.denied.watch(ctx, "$JS.API.STREAM.INFO.OBJ_"+b.names.Images())
	obj, err := js.ObjectStore(wctx, b.names.Images())
	if derr := refused(); derr != nil {
		err = b.deniedError(derr)
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", b.names.Images(), err)
	}
	return obj, nil
}

// ImagesStream opens the stream of the image object store, which
// store.NATS reads images' chunks from with direct gets.
func (b *Bus) ImagesStream(ctx context.Context) (jetstream.Stream, error) {
	wctx, refused := b.denied.watch(ctx, "$JS.API.STREAM.INFO.OBJ_"+b.names.Images())
	st, err := b.js.Stream(wctx, "OBJ_"+b.names.Images())
	if derr := refused(); derr != nil {
		err = b.deniedError(derr)
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", b.names.Images(), err)
	}
	return st, nil
}

// KV opens one of the installation's key-value buckets by name (see Names).
// A bucket this connection's credential may not read fails at once with
// ErrPermissionDenied.
func (b *Bus) KV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	wctx, refused := b.denied.watch(ctx, "$JS.API.STREAM.INFO.KV_"+bucket)
	kv, err := b.js.KeyValue(wctx, bucket)
	if derr := refused(); derr != nil {
		err = b.deniedError(derr)
	}
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// Publish validates ev and stores it in the event stream on its subject,
// with ev.ID as the JetStream message id: a second publish of the same id
// within the duplicate window is dropped by the server, which is how several
// detectors report one transition once. It returns when the stream has
// acknowledged the event (or ctx ends).
func (b *Bus) Publish(ctx context.Context, ev Event) error {
	_, err := b.publish(ctx, ev)
	return err
}

// PublishAck is Publish that also reports whether the server dropped the event
// as a duplicate and where it was stored.
func (b *Bus) PublishAck(ctx context.Context, ev Event) (*jetstream.PubAck, error) {
	return b.publish(ctx, ev)
}

func (b *Bus) publish(ctx context.Context, ev Event) (*jetstream.PubAck, error) {
	data, err := Encode(ev)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", ev.Type.Short(), ev.ID, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.RequestTimeout)
		defer cancel()
	}
	msg := &nats.Msg{Subject: ev.NATSSubjectFrom(b.subjects, b.publisher), Data: data, Header: nats.Header{}}
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	wctx, refused := b.denied.watch(ctx, msg.Subject)
	ack, err := b.js.PublishMsg(wctx, msg, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(b.names.Stream()))
	if derr := refused(); derr != nil {
		err = b.deniedError(derr)
	}
	if err != nil {
		return nil, fmt.Errorf("publish %s %s on %s: %w", ev.Type.Short(), ev.ID, msg.Subject, err)
	}
	return ack, nil
}

// ErrStopped is returned by Consume and Tail when their context ends.
var ErrStopped = errors.New("consumer stopped")
