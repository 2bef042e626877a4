package detector

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// This file is the confirmation step, after SWIM's direct probe (Das, Gupta
// and Motivala 2002) and Lifeguard's "ask before you accuse" (Dadgar et al.
// 2018): heartbeats alone cannot tell two consecutive lost beats from a
// death until a third interval has passed, so before the tracker accuses a
// silent host it asks the host itself. A reply is evidence of life; a dead
// host never answers, so probes cost a dead host nothing in detection time.
//
// The tracker decides whom to probe (Tick's Probes) and what a reply means
// (ProbeReply); the Monitor sends the requests on <prefix>.hb.probe.<host>
// (events.Subjects.Probe) and feeds back the replies that came within
// probe_timeout; the agent's beacon answers (Beacon.AnswerProbes).

// ProbeVersion is the version of a probe reply's JSON.
const ProbeVersion = 1

// maxProbeReplySize bounds a reply on receipt: one is under 200 bytes.
const maxProbeReplySize = 4 << 10

// Probe is an action: ask Host whether Incarnation is alive. The tracker
// returns it from Tick; whoever drives the tracker sends it.
type Probe struct {
	Host, Incarnation string
	// LastSeq is the sequence number of the host's last beat received.
	LastSeq uint64
	// At is the tick that asked for it.
	At time.Time
}

// ProbeReply is what an agent answers to a probe: who it is now. A probe's
// request carries nothing; the reply names the host, its incarnation and
// the sequence number of its latest beat, so that a detector can tell an
// answer of the incarnation it watches from one of an agent that restarted.
type ProbeReply struct {
	V           int    `json:"v"`
	Host        string `json:"host"`
	Incarnation string `json:"incarnation"`
	// Seq is the sequence number of the beacon's latest beat (0 before the
	// first).
	Seq uint64 `json:"seq"`
}

// ErrBadProbeReply is matched (errors.Is) by every DecodeProbeReply failure.
var ErrBadProbeReply = errors.New("bad probe reply")

// EncodeProbeReply returns the JSON of r.
func EncodeProbeReply(r ProbeReply) ([]byte, error) {
	if r.V == 0 {
		r.V = ProbeVersion
	}
	return json.Marshal(r)
}

// DecodeProbeReply parses and checks one reply. Replies are rare (a few per
// host-hour), so encoding/json is cheap enough here.
func DecodeProbeReply(b []byte) (ProbeReply, error) {
	if len(b) > maxProbeReplySize {
		return ProbeReply{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadProbeReply, len(b), maxProbeReplySize)
	}
	var r ProbeReply
	if err := json.Unmarshal(b, &r); err != nil {
		return ProbeReply{}, fmt.Errorf("%w: %v", ErrBadProbeReply, err)
	}
	switch {
	case r.V != ProbeVersion:
		return ProbeReply{}, fmt.Errorf("%w: version %d, want %d", ErrBadProbeReply, r.V, ProbeVersion)
	case !ValidName(r.Host):
		return ProbeReply{}, fmt.Errorf("%w: host %q is not a valid name", ErrBadProbeReply, r.Host)
	case r.Incarnation == "" || len(r.Incarnation) > 64:
		return ProbeReply{}, fmt.Errorf("%w: incarnation must be 1-64 characters", ErrBadProbeReply)
	}
	return r, nil
}

// ProbeReply feeds one reply to the probe sent at probedAt (the detector's
// clock; the host was alive then or later, when it answered) and reports
// whether it counted as evidence of life. A reply of the incarnation the
// tracker watches, no older than the host's last beat (Seq not below it),
// from a host not yet failed, moves the start of the host's silence to
// probedAt: its suspicion, failure and next probe are judged from there.
// (The probe's time rather than the reply's arrival: an answer delayed on
// its way back must not keep a host that died meanwhile alive longer.) It
// is not an inter-arrival sample (the window learns only beats), and it does
// not clear a suspicion (only a beat does, with node.recovered). A host
// that answers but does not beat is suspected once it has not beaten for
// max_silence (its beats are lost somewhere: worth a look), and is never
// failed while it keeps answering. A reply of another incarnation, whether
// the one before (late) or the next (the agent restarted and its first beat
// is on the way), says nothing of the watched one; a failed host comes back
// only by beating.
func (t *Tracker) ProbeReply(r ProbeReply, probedAt time.Time) bool {
	h := t.hosts[r.Host]
	if h == nil || r.Incarnation != h.inc || h.status == failed || r.Seq < h.lastSeq {
		t.stats.ProbeRepliesIgnored++
		return false
	}
	t.stats.ProbeReplies++
	if probedAt.After(h.silentSince) {
		h.silentSince = probedAt
		t.deadlines(h)
	}
	return true
}
