package events

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the first token of every xenft subject.
const DefaultPrefix = "xenft"

// EscapeToken makes s safe as one NATS subject token. Host names are often
// FQDNs, and '.' separates tokens, so '.', '*', '>', '%', whitespace and
// control characters are percent-encoded; UnescapeToken reverses it. An empty
// s becomes "_" so a subject never has an empty token.
func EscapeToken(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c <= ' ' || c == '.' || c == '*' || c == '>' || c == '%' || c == 0x7f
}

// UnescapeToken reverses EscapeToken.
func UnescapeToken(tok string) (string, error) {
	if !strings.Contains(tok, "%") {
		return tok, nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '%' {
			b.WriteByte(tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("truncated escape in subject token %q", tok)
		}
		var c byte
		if _, err := fmt.Sscanf(tok[i+1:i+3], "%02X", &c); err != nil {
			return "", fmt.Errorf("bad escape in subject token %q", tok)
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

// Subjects builds every NATS subject of one xenft installation (one prefix).
// The zero value uses DefaultPrefix.
type Subjects struct {
	Prefix string
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Event is the subject an anonymous publisher publishes an event of type t
// about entity id on (see EventFrom).
func (s Subjects) Event(t Type, id string) string { return s.EventFrom(t, id, Publisher{}) }

// EventFrom is the subject p publishes an event of type t about entity id
// on: <prefix>.events.<kind>.<name>.<id>.<role>.<publisher>. The last two
// tokens let the server's permissions bind an identity to its events.
func (s Subjects) EventFrom(t Type, id string, p Publisher) string {
	return s.prefix() + ".events." + t.Kind() + "." + t.Name() + "." + EscapeToken(id) + "." + p.tokens()
}

// EventsAbout matches every event of type t about entity id, whoever
// published it.
func (s Subjects) EventsAbout(t Type, id string) string {
	return s.prefix() + ".events." + t.Kind() + "." + t.Name() + "." + EscapeToken(id) + ".>"
}

// AllEvents matches every event: <prefix>.events.>.
func (s Subjects) AllEvents() string { return s.prefix() + ".events.>" }

// EventsOfType matches every event of type t: <prefix>.events.<kind>.<name>.>
// (also the publisher-less subjects of earlier versions).
func (s Subjects) EventsOfType(t Type) string {
	return s.prefix() + ".events." + t.Kind() + "." + t.Name() + ".>"
}

// EventsOfKind matches every event of a kind ("node"): <prefix>.events.<kind>.>.
func (s Subjects) EventsOfKind(kind string) string {
	return s.prefix() + ".events." + kind + ".>"
}

// Heartbeat is the core NATS subject a host's beacon publishes on.
func (s Subjects) Heartbeat(host string) string { return s.prefix() + ".hb." + EscapeToken(host) }

// AllHeartbeats matches every host's heartbeat.
func (s Subjects) AllHeartbeats() string { return s.prefix() + ".hb.*" }

// Probe is the core NATS request subject on which a host's beacon answers
// the detectors' "are you alive?" (<prefix>.hb.probe.<host>). It sits beside
// the heartbeats, whose permissions it shares, and AllHeartbeats does not
// match it: "*" is one token, and this subject has two after "hb" (a host
// named "probe" beats on <prefix>.hb.probe, which is not a probe).
func (s Subjects) Probe(host string) string { return s.prefix() + ".hb.probe." + EscapeToken(host) }

// Command is the request subject of a verb on a host's agent:
// <prefix>.cmd.<host>.<verb>. Verbs may have dots ("checkpoint.save").
func (s Subjects) Command(host, verb string) string {
	return s.prefix() + ".cmd." + EscapeToken(host) + "." + verb
}

// HostCommands matches every command to host.
func (s Subjects) HostCommands(host string) string {
	return s.prefix() + ".cmd." + EscapeToken(host) + ".>"
}

// Supervisor is the request subject the leading supervisor answers
// (<prefix>.supervisor.<verb>): only the leader subscribes, so a request
// reaches the supervisor that can act on it, or no one.
func (s Subjects) Supervisor(verb string) string { return s.prefix() + ".supervisor." + verb }
