package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/xenft/xenft/events"
)

// FileVersion is the version of the identities file this package writes
// and reads.
const FileVersion = 1

// File is the identities file (identities.json): every identity of one
// installation with its public nkey. It holds no secret: the servers load
// it (server.auth.identities), and each identity's seed stays with it.
type File struct {
	Version int `json:"version"`
	// Prefix is the bus prefix the permissions are computed for
	// (bus.prefix).
	Prefix string `json:"prefix"`
	// ClientCerts says whether `xenft auth` issued a client certificate to
	// every identity (and issues one to each it adds).
	ClientCerts bool       `json:"client_certs,omitempty"`
	Identities  []Identity `json:"identities"`
}

// Identity is one role/name and the public half of its nkey.
type Identity struct {
	Role string `json:"role"`
	Name string `json:"name"`
	NKey string `json:"nkey"` // a public user nkey, "U..."
}

// Publisher is the identity as the bus names it.
func (i Identity) Publisher() events.Publisher { return events.Publisher{Role: i.Role, Name: i.Name} }

func (i Identity) String() string { return i.Role + "/" + i.Name }

// IssuedRoles are the roles identities are issued for. The server role is
// the servers' own: their routes authenticate with the server certificate,
// and each server's connection to itself with a key that never leaves it.
var IssuedRoles = []string{events.RoleSupervisor, events.RoleDetector, events.RoleAgent, events.RoleSite, events.RoleMonitor, events.RoleOperator}

// ErrInvalid is matched (errors.Is) by every error of a bad identities
// file or identity.
var ErrInvalid = errors.New("invalid identity")

// checkIdentity validates role and name.
func checkIdentity(role, name string) error {
	if !slices.Contains(IssuedRoles, role) {
		return fmt.Errorf("%w: role %q is not one of %s", ErrInvalid, role, strings.Join(IssuedRoles, ", "))
	}
	if !events.ValidName(name) {
		return fmt.Errorf("%w: %s name %q: must be %s", ErrInvalid, role, name, events.NameRule)
	}
	return nil
}

// Validate checks the file: its version and prefix, and each identity's
// role, name and nkey, none twice. Errors name the entry.
func (f File) Validate() error {
	if f.Version != FileVersion {
		return fmt.Errorf("%w: version %d, this xenft reads version %d", ErrInvalid, f.Version, FileVersion)
	}
	if !events.ValidPrefix(f.Prefix) {
		return fmt.Errorf("%w: prefix %q: must be 1-32 letters, digits, '_' or '-'", ErrInvalid, f.Prefix)
	}
	seen := map[string]int{}
	keys := map[string]int{}
	for i, id := range f.Identities {
		if err := checkIdentity(id.Role, id.Name); err != nil {
			return fmt.Errorf("identities[%d]: %w", i, err)
		}
		if !nkeys.IsValidPublicUserKey(id.NKey) {
			return fmt.Errorf("%w: identities[%d] (%s): nkey %q is not a public user nkey (U...)", ErrInvalid, i, id, id.NKey)
		}
		if j, dup := seen[id.String()]; dup {
			return fmt.Errorf("%w: identities[%d]: %s is also identities[%d]", ErrInvalid, i, id, j)
		}
		if j, dup := keys[id.NKey]; dup {
			return fmt.Errorf("%w: identities[%d] (%s): its nkey is also identities[%d]'s", ErrInvalid, i, id, j)
		}
		seen[id.String()], keys[id.NKey] = i, i
	}
	return nil
}

// Find returns the identity role/name, if the file has it.
func (f File) Find(role, name string) (Identity, bool) {
	for _, id := range f.Identities {
		if id.Role == role && id.Name == name {
			return id, true
		}
	}
	return Identity{}, false
}

// Load reads and validates an identities file.
func Load(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	var f File
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	if err := f.Validate(); err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// marshal is the file as written: indented, one identity a line group.
func (f File) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// NkeyUsers are the file's identities as the NATS server's users, each with
// its role's permissions (Permissions), allowed on client connections over
// the network and in the server's own process.
func (f File) NkeyUsers() ([]*server.NkeyUser, error) {
	users := make([]*server.NkeyUser, 0, len(f.Identities))
	for _, id := range f.Identities {
		p, err := Permissions(f.Prefix, id.Publisher())
		if err != nil {
			return nil, err
		}
		users = append(users, &server.NkeyUser{Nkey: id.NKey, Permissions: p, AllowedConnectionTypes: clientConnections()})
	}
	return users, nil
}

// clientConnections are the connection types a credential may use: a NATS
// client over TCP, or in the server's process (xenft up); not websockets,
// MQTT or leaf nodes.
func clientConnections() map[string]struct{} {
	return map[string]struct{}{jwt.ConnectionTypeStandard: {}, jwt.ConnectionTypeInProcess: {}}
}

// InProcessConnections allows only connections in the server's own
// process: the server's key for its own connection (events.InProcess).
func InProcessConnections() map[string]struct{} {
	return map[string]struct{}{jwt.ConnectionTypeInProcess: {}}
}
