package events

import "regexp"

// nameRE is the rule for the names that travel in subjects and event data:
// hosts, VMs, groups, and the names of identities (the envelope schema's
// name pattern).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether s is a valid name: 1 to 128 letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// NameRule says what ValidName accepts, for error messages.
const NameRule = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
