package detector

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// HeartbeatVersion is the version of the heartbeat's JSON; a monitor drops
// beats of a version it does not know (counted as garbage).
const HeartbeatVersion = 1

// MaxHeartbeatSize bounds one encoded beat on receipt. A host with a few
// hundred domains fits easily; anything larger is garbage or an attack.
const MaxHeartbeatSize = 256 << 10

// Heartbeat is what a beacon publishes on <prefix>.hb.<host> (core NATS, not
// kept). It is xenft's own wire format, not a CloudEvent: beats are many,
// small and ephemeral.
type Heartbeat struct {
	V    int    `json:"v"`
	Host string `json:"host"`
	// Incarnation identifies one run of the agent: random, new at every
	// start. A beat with another incarnation means the agent restarted.
	Incarnation string `json:"incarnation"`
	// Seq counts the beats of this incarnation from 1.
	Seq uint64 `json:"seq"`
	// Sent is the sender's clock when the beat left. Monitors never use it for
	// arrival statistics (clocks of hosts disagree); it is for humans.
	Sent time.Time `json:"sent"`
	// IntervalMs is the beacon's configured interval; a monitor bootstraps a
	// new host's window from it.
	IntervalMs int64 `json:"interval_ms"`
	// Inventory is the latest listing of the host's domains, absent until the
	// first listing succeeded. Absent means unknown, not "no domains".
	Inventory *Inventory `json:"inventory,omitempty"`
}

// Inventory is the host's domains and free memory as last listed.
type Inventory struct {
	// At is the sender's clock when the listing was taken.
	At            time.Time       `json:"at"`
	Domains       []DomainSummary `json:"domains"`
	FreeMemoryMiB uint64          `json:"free_memory_mib"`
	// Error is set when the latest listing failed; the data are then those of
	// the last good one (taken At).
	Error string `json:"error,omitempty"`
}

// DomainSummary is one guest domain as the beat reports it.
type DomainSummary struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	MemoryMiB uint64 `json:"memory_mib"`
}

// ErrBadHeartbeat is matched (errors.Is) by every DecodeHeartbeat failure.
var ErrBadHeartbeat = errors.New("bad heartbeat")

// EncodeHeartbeat returns the JSON of hb.
func EncodeHeartbeat(hb Heartbeat) ([]byte, error) {
	if hb.V == 0 {
		hb.V = HeartbeatVersion
	}
	return json.Marshal(hb)
}

// beatHead is the part of a beat the monitor needs. Decoding into it skips
// the inventory without building it, which matters at 10,000 beats a second.
type beatHead struct {
	V           int       `json:"v"`
	Host        string    `json:"host"`
	Incarnation string    `json:"incarnation"`
	Seq         uint64    `json:"seq"`
	Sent        time.Time `json:"sent"`
	IntervalMs  int64     `json:"interval_ms"`
}

// DecodeHeartbeat parses and checks one beat for the monitor; the inventory is
// not decoded. Every failure matches ErrBadHeartbeat.
func DecodeHeartbeat(b []byte) (Heartbeat, error) {
	if len(b) > MaxHeartbeatSize {
		return Heartbeat{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadHeartbeat, len(b), MaxHeartbeatSize)
	}
	var h beatHead
	if err := json.Unmarshal(b, &h); err != nil {
		return Heartbeat{}, fmt.Errorf("%w: %v", ErrBadHeartbeat, err)
	}
	switch {
	case h.V != HeartbeatVersion:
		return Heartbeat{}, fmt.Errorf("%w: version %d, want %d", ErrBadHeartbeat, h.V, HeartbeatVersion)
	case !ValidName(h.Host):
		return Heartbeat{}, fmt.Errorf("%w: host %q is not a valid name", ErrBadHeartbeat, h.Host)
	case h.Incarnation == "" || len(h.Incarnation) > 64:
		return Heartbeat{}, fmt.Errorf("%w: incarnation must be 1-64 characters", ErrBadHeartbeat)
	case h.Seq == 0:
		return Heartbeat{}, fmt.Errorf("%w: seq must be at least 1", ErrBadHeartbeat)
	case h.IntervalMs < 0 || h.IntervalMs > 3600_000:
		return Heartbeat{}, fmt.Errorf("%w: interval_ms %d out of range", ErrBadHeartbeat, h.IntervalMs)
	}
	return Heartbeat{V: h.V, Host: h.Host, Incarnation: h.Incarnation, Seq: h.Seq, Sent: h.Sent, IntervalMs: h.IntervalMs}, nil
}
