package events

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
)

// ErrPermissionDenied is matched (errors.Is) by an operation the server
// refused for this connection's credential: a publish outside its
// permissions (docs/security.md). The server answers such a publish with an
// asynchronous error and drops it, so without this a request or a
// JetStream publish would only time out.
var ErrPermissionDenied = errors.New("permission denied")

// deniedRE finds the subject in the server's permissions error:
// `Permissions Violation for Publish to "xenft.hb.n2"`.
var deniedRE = regexp.MustCompile(`(?i)violation for (publish|subscription) to "([^"]+)"`)

// denials tells the operations waiting on a subject that the server
// refused it. It is safe for concurrent use.
type denials struct {
	mu      sync.Mutex
	waiting map[string]map[*waiter]struct{}
}

type waiter struct{ cancel context.CancelCauseFunc }

// errRefused is the cause of a watched context the server's refusal ended.
var errRefused = errors.New("refused by the server")

// note is called with every asynchronous error of the connection.
func (d *denials) note(err error) {
	m := deniedRE.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for w := range d.waiting[m[2]] {
		w.cancel(errRefused)
	}
}

// watch returns a context that ends when the server refuses subject, and
// the function that stops watching and says whether it was refused.
func (d *denials) watch(ctx context.Context, subject string) (context.Context, func() bool) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &waiter{cancel: cancel}
	d.mu.Lock()
	if d.waiting == nil {
		d.waiting = map[string]map[*waiter]struct{}{}
	}
	if d.waiting[subject] == nil {
		d.waiting[subject] = map[*waiter]struct{}{}
	}
	d.waiting[subject][w] = struct{}{}
	d.mu.Unlock()
	return ctx, func() bool {
		d.mu.Lock()
		delete(d.waiting[subject], w)
		if len(d.waiting[subject]) == 0 {
			delete(d.waiting, subject)
		}
		d.mu.Unlock()
		refused := errors.Is(context.Cause(ctx), errRefused)
		cancel(nil)
		return refused
	}
}

// deniedError is the error of an operation on subject the server refused.
func (b *Bus) deniedError(subject string) error {
	who := b.publisher.String()
	return fmt.Errorf("%w: the server does not let this connection (identity %s) publish to %s: check bus.identity and the credential in bus.auth",
		ErrPermissionDenied, who, subject)
}
