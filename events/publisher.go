package events

import (
	"fmt"
	"slices"
	"strings"
)

// Roles of the identities on the bus. An event's subject names the role and
// name of the identity that published it; with per-role credentials the
// server lets an identity publish only under its own role and name, so a
// consumer knows the publisher from the subject without trusting the
// envelope's source (docs/security.md).
const (
	RoleSupervisor = "supervisor"
	RoleDetector   = "detector"
	RoleAgent      = "agent"
	RoleSite       = "site" // a plug-in detector publishing node.fault itself
	RoleMonitor    = "monitor"
	RoleOperator   = "operator"
	RoleServer     = "server"
	// RoleAnonymous publishes when a client has no identity (a bus with a
	// single user, as tests run). No credential may publish under it.
	RoleAnonymous = "anonymous"
)

// Roles lists every role, for validation and help texts.
var Roles = []string{RoleSupervisor, RoleDetector, RoleAgent, RoleSite, RoleMonitor, RoleOperator, RoleServer}

// Publisher is who published an event: a role and the identity's name
// within it (a host, a detector's or supervisor's id, a site plug-in's
// name). The zero value is the anonymous publisher.
type Publisher struct {
	Role string
	Name string
}

// Anonymous reports whether p names no identity.
func (p Publisher) Anonymous() bool { return p.Role == "" || p.Role == RoleAnonymous }

// String is "role/name" ("anonymous" for the zero value).
func (p Publisher) String() string {
	if p.Anonymous() {
		return RoleAnonymous
	}
	return p.Role + "/" + p.Name
}

// tokens are the two subject tokens that name p.
func (p Publisher) tokens() string {
	if p.Anonymous() {
		return RoleAnonymous + "._"
	}
	return EscapeToken(p.Role) + "." + EscapeToken(p.Name)
}

// PublisherOf reads the publisher from an event subject under s's prefix:
// <prefix>.events.<kind>.<name>.<entity>.<role>.<publisher>. A subject of
// the form earlier versions used (no publisher tokens) or one that does not
// parse is the anonymous publisher.
func (s Subjects) PublisherOf(subject string) Publisher {
	rest, ok := strings.CutPrefix(subject, s.prefix()+".events.")
	if !ok {
		return Publisher{}
	}
	tok := strings.Split(rest, ".")
	if len(tok) != 5 || tok[3] == RoleAnonymous {
		return Publisher{}
	}
	role, err1 := UnescapeToken(tok[3])
	name, err2 := UnescapeToken(tok[4])
	if err1 != nil || err2 != nil {
		return Publisher{}
	}
	return Publisher{Role: role, Name: name}
}

// ParsePublisher reads "role/name" (bus.identity, supervisor.trusted_sources).
func ParsePublisher(s string) (Publisher, error) {
	role, name, ok := strings.Cut(s, "/")
	if !ok || name == "" {
		return Publisher{}, fmt.Errorf("%q is not role/name, e.g. site/ipmi", s)
	}
	if !slices.Contains(Roles, role) {
		return Publisher{}, fmt.Errorf("%q: role %q is not one of %s", s, role, strings.Join(Roles, ", "))
	}
	if strings.ContainsAny(name, "/ \t") {
		return Publisher{}, fmt.Errorf("%q: the name must have no '/' or spaces", s)
	}
	return Publisher{Role: role, Name: name}, nil
}

// InboxPrefix is the prefix of the reply subjects of p's connection:
// _INBOX.<role>.<name>, or NATS's own _INBOX for the anonymous publisher.
// With per-role credentials each identity may subscribe to its own inboxes
// only, so no one reads the replies meant for another (a key-value read of
// the supervisor's state, an agent's listing).
func InboxPrefix(p Publisher) string {
	if p.Anonymous() {
		return "_INBOX"
	}
	return "_INBOX." + p.tokens()
}
