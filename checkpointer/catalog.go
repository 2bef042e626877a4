package checkpointer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/internal/clock"
	"github.com/xenft/xenft/store"
)

// State of a checkpoint record.
type State string

// A record is written preparing, then moves once to committed or aborted.
const (
	Preparing State = "preparing"
	Committed State = "committed"
	Aborted   State = "aborted"
)

// Record is one checkpoint of a group in the catalog.
type Record struct {
	Group       string       `json:"group"`
	Seq         uint64       `json:"seq"`
	State       State        `json:"state"`
	Created     time.Time    `json:"created"`
	Updated     time.Time    `json:"updated"`
	Coordinator string       `json:"coordinator,omitempty"`
	Epoch       events.Epoch `json:"epoch"`
	Members     []Member     `json:"members"`
	Reason      string       `json:"reason,omitempty"` // why it aborted

	// Revision is the KV revision the record was read at; transitions
	// compare-and-set on it. Not stored.
	Revision uint64 `json:"-"`
}

// Member is one VM's part of a checkpoint. Image fields are set on commit.
type Member struct {
	VM           string `json:"vm"`
	Host         string `json:"host"`
	ImageKey     string `json:"image_key,omitempty"`
	Size         int64  `json:"size,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	DiskSnapshot string `json:"disk_snapshot,omitempty"`
	PausedMs     int64  `json:"paused_ms,omitempty"`
}

// Errors of the catalog, matched with errors.Is.
var (
	ErrNoCheckpoint = errors.New("no committed checkpoint")
	ErrConflict     = errors.New("checkpoint record changed concurrently")
	ErrNotPreparing = errors.New("checkpoint is not preparing")
	ErrInProgress   = errors.New("a checkpoint of the group is already in progress")
)

// Catalog keeps checkpoint records in a key-value bucket (xenft_checkpoints),
// one key per group and sequence. Transitions are compare-and-set on the
// record's revision only, so two coordinators (an old leader that has not yet
// noticed it lost the lease, and the new one) can never both move one record.
type Catalog struct {
	kv    jetstream.KeyValue
	clock clock.Clock
}

// NewCatalog uses kv (see events.Names.Checkpoints).
func NewCatalog(kv jetstream.KeyValue, opts ...Option) *Catalog {
	return &Catalog{kv: kv, clock: clock.Build(opts).Clock}
}

// key is "g.<group>.<seq>"; the seq is zero-padded so keys sort by seq.
func key(group string, seq uint64) string { return fmt.Sprintf("g.%s.%020d", group, seq) }

func (c *Catalog) decode(e jetstream.KeyValueEntry) (Record, error) {
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, fmt.Errorf("catalog entry %s: %w", e.Key(), err)
	}
	r.Revision = e.Revision()
	return r, nil
}

// List returns every record of group, oldest first.
func (c *Catalog) List(ctx context.Context, group string) ([]Record, error) {
	keys, err := c.keys(ctx, "g."+group+".*")
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, k := range keys {
		e, err := c.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted between list and get
		}
		if err != nil {
			return nil, fmt.Errorf("catalog get %s: %w", k, err)
		}
		r, err := c.decode(e)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

func (c *Catalog) keys(ctx context.Context, filter string) ([]string, error) {
	lister, err := c.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("catalog list %s: %w", filter, err)
	}
	defer func() { _ = lister.Stop() }()
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Groups returns the groups that have records, sorted.
func (c *Catalog) Groups(ctx context.Context) ([]string, error) {
	keys, err := c.keys(ctx, "g.>")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		i := strings.LastIndexByte(k, '.')
		g := k[2:i]
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Get returns one record.
func (c *Catalog) Get(ctx context.Context, group string, seq uint64) (Record, error) {
	e, err := c.kv.Get(ctx, key(group, seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, fmt.Errorf("checkpoint %s/%d: %w", group, seq, ErrNoCheckpoint)
	}
	if err != nil {
		return Record{}, fmt.Errorf("catalog get %s/%d: %w", group, seq, err)
	}
	return c.decode(e)
}

// Begin writes the next checkpoint of group as preparing: seq is one more
// than the highest seq ever written for the group. It refuses if a record of
// the group is still preparing (never two checkpoints of one group at once),
// and two concurrent Begins cannot both win: the key is created, not put.
func (c *Catalog) Begin(ctx context.Context, group string, members []Member, epoch events.Epoch, coordinator string) (Record, error) {
	recs, err := c.List(ctx, group)
	if err != nil {
		return Record{}, err
	}
	var next uint64 = 1
	for _, r := range recs {
		if r.State == Preparing {
			return Record{}, fmt.Errorf("group %s seq %d: %w", group, r.Seq, ErrInProgress)
		}
		if r.Seq >= next {
			next = r.Seq + 1
		}
	}
	now := c.clock.Now().UTC()
	r := Record{Group: group, Seq: next, State: Preparing, Created: now, Updated: now,
		Coordinator: coordinator, Epoch: epoch, Members: append([]Member(nil), members...)}
	b, _ := json.Marshal(r)
	rev, err := c.kv.Create(ctx, key(group, next), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return Record{}, fmt.Errorf("group %s seq %d: %w", group, next, ErrConflict)
	}
	if err != nil {
		return Record{}, fmt.Errorf("catalog begin %s/%d: %w", group, next, err)
	}
	r.Revision = rev
	return r, nil
}

// Commit moves a preparing record to committed with the members' images.
func (c *Catalog) Commit(ctx context.Context, r Record, members []Member) (Record, error) {
	return c.transition(ctx, r, func(n *Record) {
		n.State = Committed
		n.Members = append([]Member(nil), members...)
	})
}

// Abort moves a preparing record to aborted with a reason.
func (c *Catalog) Abort(ctx context.Context, r Record, reason string) (Record, error) {
	return c.transition(ctx, r, func(n *Record) {
		n.State = Aborted
		n.Reason = reason
	})
}

func (c *Catalog) transition(ctx context.Context, r Record, change func(*Record)) (Record, error) {
	if r.State != Preparing {
		return Record{}, fmt.Errorf("checkpoint %s/%d is %s: %w", r.Group, r.Seq, r.State, ErrNotPreparing)
	}
	n := r
	change(&n)
	n.Updated = c.clock.Now().UTC()
	b, _ := json.Marshal(n)
	rev, err := c.kv.Update(ctx, key(r.Group, r.Seq), b, r.Revision)
	if isRevisionMismatch(err) {
		return Record{}, fmt.Errorf("checkpoint %s/%d: %w", r.Group, r.Seq, ErrConflict)
	}
	if err != nil {
		return Record{}, fmt.Errorf("catalog update %s/%d: %w", r.Group, r.Seq, err)
	}
	n.Revision = rev
	return n, nil
}

func isRevisionMismatch(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence)
}

// Delete removes a record if it has not changed since it was read.
func (c *Catalog) Delete(ctx context.Context, r Record) error {
	err := c.kv.Delete(ctx, key(r.Group, r.Seq), jetstream.LastRevision(r.Revision))
	if isRevisionMismatch(err) {
		return fmt.Errorf("checkpoint %s/%d: %w", r.Group, r.Seq, ErrConflict)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("catalog delete %s/%d: %w", r.Group, r.Seq, err)
	}
	return nil
}

// Latest returns the group's highest committed record.
func (c *Catalog) Latest(ctx context.Context, group string) (Record, error) {
	recs, err := c.Committed(ctx, group)
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 {
		return Record{}, fmt.Errorf("group %s: %w", group, ErrNoCheckpoint)
	}
	return recs[0], nil
}

// Committed returns the group's committed records, newest first.
func (c *Catalog) Committed(ctx context.Context, group string) ([]Record, error) {
	recs, err := c.List(ctx, group)
	if err != nil {
		return nil, err
	}
	var out []Record
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].State == Committed {
			out = append(out, recs[i])
		}
	}
	return out, nil
}

// Rejected is a committed record LatestVerified passed over, and why.
type Rejected struct {
	Seq    uint64
	Reason error
}

// LatestVerified returns the group's highest committed record whose every
// image exists in s with the size and SHA-256 the record says, reading each
// image in full. It walks back past records that fail and reports them, so
// the caller can publish why a rollback goes further back than the latest.
func (c *Catalog) LatestVerified(ctx context.Context, group string, s store.ImageStore) (Record, []Rejected, error) {
	recs, err := c.Committed(ctx, group)
	if err != nil {
		return Record{}, nil, err
	}
	var rejected []Rejected
	for _, r := range recs {
		err := VerifyRecord(ctx, r, s)
		if err == nil {
			return r, rejected, nil
		}
		if ctx.Err() != nil {
			return Record{}, rejected, ctx.Err()
		}
		rejected = append(rejected, Rejected{Seq: r.Seq, Reason: err})
	}
	return Record{}, rejected, fmt.Errorf("group %s: %w that verifies (%d rejected)", group, ErrNoCheckpoint, len(rejected))
}

// VerifyRecord reads every image of r and checks it against r.
func VerifyRecord(ctx context.Context, r Record, s store.ImageStore) error {
	for _, m := range r.Members {
		if m.ImageKey == "" {
			return fmt.Errorf("checkpoint %s/%d: member %s has no image", r.Group, r.Seq, m.VM)
		}
		if err := store.Verify(ctx, s, m.ImageKey, store.Info{Size: m.Size, SHA256: m.SHA256}); err != nil {
			return fmt.Errorf("checkpoint %s/%d member %s: %w", r.Group, r.Seq, m.VM, err)
		}
	}
	return nil
}
