package events

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// ErrPermissionDenied is matched (errors.Is) by an operation the server
// refused for this connection's credential: a publish outside its
// permissions, or a request whose reply the connection may not read (its
// bus.identity is not its credential's; docs/security.md). The server
// answers such an operation with an asynchronous error and drops it, so
// without this a request or a JetStream publish would only time out.
var ErrPermissionDenied = errors.New("permission denied")

// deniedRE finds what the server refused in its permissions error:
// `Permissions Violation for Publish to "xenft.hb.n2"`.
var deniedRE = regexp.MustCompile(`(?i)violation for (publish|subscription) to "([^"]+)"`)

// denials tells the operations waiting on a subject that the server
// refused it, and all of them that it refused the connection its inbox.
// It is safe for concurrent use.
type denials struct {
	inbox   string // the connection's inbox prefix, with its trailing "."
	mu      sync.Mutex
	waiting map[string]map[*waiter]struct{}
	// inboxRefused is set once the server refused a subscription to the
	// connection's inboxes: no request can be answered from then on.
	inboxRefused string
}

type waiter struct{ cancel context.CancelCauseFunc }

// refusal is the cause of a watched context the server's refusal ended.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }

// note is called with every asynchronous error of the connection; it
// reports whether an operation waiting on the refused subject was told, and
// so will report the refusal itself.
func (d *denials) note(err error) (told bool) {
	m := deniedRE.FindStringSubmatch(err.Error())
	if m == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if strings.EqualFold(m[1], "subscription") && strings.HasPrefix(m[2], d.inbox) {
		d.inboxRefused = m[2]
		for _, ws := range d.waiting {
			for w := range ws {
				w.cancel(refusal{d.inboxError()})
				told = true
			}
		}
		return told
	}
	for w := range d.waiting[m[2]] {
		w.cancel(refusal{fmt.Errorf("%w: the server does not let this connection publish to %s", ErrPermissionDenied, m[2])})
		told = true
	}
	return told
}

func (d *denials) inboxError() error {
	return fmt.Errorf("%w: the server does not let this connection read its replies (%s): is bus.identity the identity of the credential in bus.auth?",
		ErrPermissionDenied, d.inboxRefused)
}

// watch returns a context that ends when the server refuses subject (or
// has refused the connection its inbox), and the function that stops
// watching and returns the refusal, if there was one.
func (d *denials) watch(ctx context.Context, subject string) (context.Context, func() error) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &waiter{cancel: cancel}
	d.mu.Lock()
	if d.inboxRefused != "" {
		cancel(refusal{d.inboxError()})
	}
	if d.waiting == nil {
		d.waiting = map[string]map[*waiter]struct{}{}
	}
	if d.waiting[subject] == nil {
		d.waiting[subject] = map[*waiter]struct{}{}
	}
	d.waiting[subject][w] = struct{}{}
	d.mu.Unlock()
	return ctx, func() error {
		d.mu.Lock()
		delete(d.waiting[subject], w)
		if len(d.waiting[subject]) == 0 {
			delete(d.waiting, subject)
		}
		d.mu.Unlock()
		var r refusal
		if errors.As(context.Cause(ctx), &r) {
			cancel(nil)
			return r.err
		}
		cancel(nil)
		return nil
	}
}

// deniedError says who was refused: the identity helps find the
// misconfigured credential.
func (b *Bus) deniedError(err error) error {
	return fmt.Errorf("%w (identity %s; check bus.identity and the credential in bus.auth)", err, b.publisher)
}
