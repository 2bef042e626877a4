package reqcheck

import "fmt"

// MaxNameLen bounds a VM or group name.
const MaxNameLen = 128

// Name checks a VM or group name: 1 to MaxNameLen letters, digits, '.', '_'
// and '-', starting with a letter or digit.
//
// Why this rule: the name reaches xl as an argument (exec'd directly, never
// through a shell: xen/xl_exec.go), where a leading '-' would be read as an
// option; it becomes part of spool file names, where '/', "." and ".." would
// leave the spool; and it travels in NATS subjects and events. Xen itself
// takes longer names with more characters, but the events schema
// (events/schema/envelope.json) and the supervisor's inventory allow exactly
// this pattern, so a VM the inventory accepts is never refused by its agent.
func Name(field, v string) *FieldError {
	bad := func(reason string) *FieldError { return &FieldError{Field: field, Value: Quote(v), Reason: reason} }
	switch {
	case v == "":
		return bad("is required")
	case len(v) > MaxNameLen:
		return bad(fmt.Sprintf("is %d bytes long, at most %d", len(v), MaxNameLen))
	case !isAlnum(v[0]):
		return bad("must start with a letter or digit (a leading '-' would reach xl as an option)")
	}
	for i := 1; i < len(v); i++ {
		if c := v[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return bad(fmt.Sprintf("byte %d is %s: only letters, digits, '.', '_' and '-' are allowed", i, Quote(v[i:i+1])))
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
