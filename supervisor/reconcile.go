package supervisor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter/protocol"
)

// reconcileHosts watches the agents' leases in xenft_hosts. An agent that
// fenced itself (it lost the bus) refuses restores until a leader has looked
// at it: it marks its lease awaiting_reconcile, and this sends it vm.list
// under the current term. The core learns what runs there from its beats.
func (sh *shell) reconcileHosts(ctx context.Context) {
	kv, err := sh.s.bus.KV(ctx, sh.s.bus.Names().Hosts())
	if err != nil {
		sh.log.Error("cannot watch host leases", "error", err)
		return
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		sh.log.Error("cannot watch host leases", "error", err)
		return
	}
	defer func() { _ = w.Stop() }()
	asked := map[string]time.Time{} // host -> when vm.list was last sent
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var lease protocol.HostLease
			if json.Unmarshal(e.Value(), &lease) != nil || !lease.AwaitingReconcile {
				continue
			}
			// The lease is renewed every second; ask again only if the
			// previous answer did not clear the mark.
			if time.Since(asked[lease.Host]) < 5*time.Second {
				continue
			}
			asked[lease.Host] = time.Now()
			// Synchronous: a listing takes milliseconds and reconciles are
			// rare; the watch buffers updates meanwhile.
			var rep protocol.ListReply
			err := sh.s.bus.Command(ctx, lease.Host, protocol.VerbList, protocol.ListRequest{Epoch: events.Epoch{Term: sh.term}}, &rep, 10*time.Second)
			if err != nil {
				sh.log.Warn("reconcile of a self-fenced host failed", "host", lease.Host, "error", err)
				continue
			}
			sh.log.Info("reconciled a self-fenced host", "host", lease.Host, "domains", len(rep.Domains))
		}
	}
}
