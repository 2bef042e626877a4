package detector

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	// FenceUnarmed: the agent's self-fence is not armed yet (no lease
	// renewal of this incarnation acknowledged by the bus), so it will not
	// destroy its guests if it loses the bus; a supervisor must not count
	// it as self-fenced. Absent (false) on an armed agent, and on agents
	// older than the field, which armed at start.
	FenceUnarmed bool `json:"fence_unarmed,omitempty"`
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
//
// Beats take a fast path that reads the head members and only checks the
// syntax of the rest (the inventory, which the monitor does not use): at
// 10,000 beats a second encoding/json was half of the monitor's CPU. What the
// fast path is unsure of (escapes or non-ASCII in a member name or head
// value, a repeated or case-folded member name, numbers it does not handle)
// takes encoding/json, so both always agree (FuzzDecodeHeartbeat).
func DecodeHeartbeat(b []byte) (Heartbeat, error) {
	if len(b) > MaxHeartbeatSize {
		return Heartbeat{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadHeartbeat, len(b), MaxHeartbeatSize)
	}
	h, ok := scanHead(b)
	if !ok {
		// Its own variable: json.Unmarshal makes it escape, and only this
		// path should pay for that allocation.
		var slow beatHead
		if err := json.Unmarshal(b, &slow); err != nil {
			return Heartbeat{}, fmt.Errorf("%w: %v", ErrBadHeartbeat, err)
		}
		h = slow
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

// scanHead is DecodeHeartbeat's fast path: a strict reader of one JSON object
// whose members v, host, incarnation, seq, sent and interval_ms it decodes
// and whose other members it skips, checking their syntax. It gives up
// (false) at anything it is unsure of, and the caller falls back to
// encoding/json; what it accepts, encoding/json decodes the same way.
func scanHead(b []byte) (beatHead, bool) {
	var h beatHead
	var seen uint8
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return h, false
	}
	i++
	for first := true; ; first = false {
		i = skipWS(b, i)
		if i >= len(b) {
			return h, false
		}
		if b[i] == '}' && first {
			return h, skipWS(b, i+1) == len(b)
		}
		key, j, ok := scanString(b, i)
		if !ok {
			return h, false
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return h, false
		}
		i = skipWS(b, i+1)
		var bit uint8
		switch string(key) {
		case "v":
			bit = 1
			var n int64
			n, i, ok = scanInt(b, i)
			h.V = int(n)
		case "host":
			bit = 2
			var v []byte
			v, i, ok = scanString(b, i)
			h.Host = string(v)
		case "incarnation":
			bit = 4
			var v []byte
			v, i, ok = scanString(b, i)
			h.Incarnation = string(v)
		case "seq":
			bit = 8
			var n int64
			n, i, ok = scanInt(b, i)
			ok = ok && n >= 0
			h.Seq = uint64(n)
		case "sent":
			bit = 16
			start := i
			if _, i, ok = scanString(b, i); ok {
				// Exactly what encoding/json does with a time.Time.
				ok = h.Sent.UnmarshalJSON(b[start:i]) == nil
			}
		case "interval_ms":
			bit = 32
			h.IntervalMs, i, ok = scanInt(b, i)
		default:
			for _, k := range headKeys {
				if strings.EqualFold(string(key), k) {
					return h, false // encoding/json matches names without case
				}
			}
			// The inventory, or a member of a newer beacon: checked, skipped.
			bit = 0
			i, ok = skipValue(b, i, 0)
		}
		if !ok || seen&bit != 0 {
			return h, false // a repeated member: encoding/json keeps the last
		}
		seen |= bit
		i = skipWS(b, i)
		if i >= len(b) {
			return h, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return h, skipWS(b, i+1) == len(b)
		default:
			return h, false
		}
	}
}

var headKeys = []string{"v", "host", "incarnation", "seq", "sent", "interval_ms"}

// skipValue checks the syntax of one JSON value at i (as encoding/json's
// scanner does) and returns the index after it.
func skipValue(b []byte, i, depth int) (int, bool) {
	if depth > 100 || i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i, ok = skipString(b, i); !ok {
					return i, false
				}
				if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
					return i, false
				}
				i = skipWS(b, i+1)
			}
			if i, ok = skipValue(b, i, depth+1); !ok {
				return i, false
			}
			if i = skipWS(b, i); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case end:
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '"':
		return skipString(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	default:
		return skipNumber(b, i)
	}
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// plainInString marks the bytes a JSON string may hold as they are: not
// the closing quote, not an escape, not a control character. Skipping runs
// of them with one table look-up per byte is most of what checking a beat's
// inventory costs, so it is kept tight.
var plainInString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipString checks a JSON string with any escapes.
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	for j := i + 1; j < len(b); j++ {
		for j < len(b) && plainInString[b[j]] {
			j++
		}
		if j >= len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return j, false
		case c == '\\':
			j++
			if j >= len(b) {
				return j, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 {
					return j, false
				}
				for _, h := range b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return j, false
					}
				}
				j += 4
			default:
				return j, false
			}
		}
	}
	return len(b), false
}

// skipNumber checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	digits := func(j int) int {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j
	}
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		j = digits(j)
	default:
		return i, false
	}
	if j < len(b) && b[j] == '.' {
		k := digits(j + 1)
		if k == j+1 {
			return i, false
		}
		j = k
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := digits(j)
		if k == j {
			return i, false
		}
		j = k
	}
	return j, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString reads a JSON string without escapes or control characters
// (anything else is left to encoding/json) and returns its content and the
// index after it.
func scanString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		for j < len(b) && b[j] < 0x80 && plainInString[b[j]] {
			j++
		}
		if j >= len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, i, false // escapes and non-ASCII: encoding/json's job
		}
	}
	return nil, i, false
}

// scanInt reads a JSON integer (no fraction, no exponent, no leading zero)
// that fits in an int64.
func scanInt(b []byte, i int) (int64, int, bool) {
	j := i
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	start := j
	var n int64
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		if n > (1<<63-1)/10-1 {
			return 0, i, false
		}
		n = n*10 + int64(b[j]-'0')
		j++
	}
	switch {
	case j == start, j-start > 1 && b[start] == '0':
		return 0, i, false
	case j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E'):
		return 0, i, false
	}
	if neg {
		n = -n
	}
	return n, j, true
}
