package restarter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter/protocol"
)

// Lease grants: the second way a renewal is acknowledged (fence.go, rule
// 1). Every renew interval the agent also asks the leading supervisor, over
// core NATS request/reply, to count it alive. The leader grants only while
// it holds its own lease and the host is not failed in its state, and it
// records the grant before it answers (supervisor/grants.go): should the
// host fail later, its self-fence deadline counts from no earlier than the
// grant. So a granted request counts as a renewal sent when the request
// was, exactly like a bucket acknowledgement.
//
// Why: the xenft_hosts bucket is one JetStream stream. Its acknowledgements
// stall while it elects a leader (4-9 s after a server dies), while a disk
// flushes, or while a busy cluster catches up, and an agent that can still
// reach the one process able to replace it has no reason to destroy its
// guests meanwhile (DESIGN: "a fence needs evidence, not a slow write").
// Neither path trusts the other: the agent fences only when neither
// acknowledged anything for the fence window. A standby supervisor does not
// listen; with no leader the request finds no responders, and only the
// bucket can keep the lease.

// grantLoop asks for a grant every renew interval until ctx ends.
func (r *Restarter) grantLoop(ctx context.Context, bus Bus, renewed chan<- struct{}) {
	// Quiet: without a leader (a standby cluster, a test) every request
	// fails, and the bucket is the path that matters then.
	r.paced(ctx, "leader's lease grant", r.log.Debug, func(ctx context.Context) error { return r.askGrant(ctx, bus) }, renewed)
}

// errNotGranted is a leader's refusal; its reason follows.
var errNotGranted = errors.New("not granted")

func (r *Restarter) askGrant(ctx context.Context, bus Bus) error {
	sent := r.clock.Now()
	ctx, cancel := r.withTimeout(ctx, r.cfg.Fence.fenceStartsAfter())
	defer cancel()
	req, _ := json.Marshal(protocol.GrantRequest{Host: r.id.Host, Incarnation: r.id.Incarnation})
	subject := bus.Subjects().Supervisor(protocol.GrantSubjectVerb + "." + events.EscapeToken(r.id.Host))
	msg, err := bus.Conn().RequestWithContext(ctx, subject, req)
	if err != nil {
		return fmt.Errorf("ask the leader for a lease grant: %w", err)
	}
	var rep protocol.GrantReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("lease grant reply: %w", err)
	}
	if !rep.Granted {
		return fmt.Errorf("%w by the leader of term %d: %s", errNotGranted, rep.Term, rep.Reason)
	}
	r.acknowledged(sent, fmt.Sprintf("the leader of term %d granted the host lease", rep.Term), true)
	return nil
}
