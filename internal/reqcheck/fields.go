package reqcheck

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/xenft/xenft/store"
)

// ImageKey checks a key of the image store: store.ValidateKey's rule, which
// the store applies again on every call.
func ImageKey(field, v string) *FieldError {
	err := store.ValidateKey(v)
	if err == nil {
		return nil
	}
	reason := err.Error()
	var ke *store.KeyError
	if errors.As(err, &ke) {
		reason = ke.Reason
	}
	return &FieldError{Field: field, Value: Quote(v), Reason: reason}
}

// SHA256 checks a digest as the store records it: 64 lower-case hex digits.
func SHA256(field, v string) *FieldError {
	ok := len(v) == 64
	for i := 0; ok && i < len(v); i++ {
		ok = '0' <= v[i] && v[i] <= '9' || 'a' <= v[i] && v[i] <= 'f'
	}
	if ok {
		return nil
	}
	return &FieldError{Field: field, Value: Quote(v), Reason: "must be 64 lower-case hexadecimal digits (a SHA-256 as the store records it)"}
}

// Size checks a byte count: positive and at most limit.
func Size(field string, v, limit int64) *FieldError {
	bad := func(reason string) *FieldError {
		return &FieldError{Field: field, Value: strconv.FormatInt(v, 10), Reason: reason}
	}
	switch {
	case v <= 0:
		return bad("must be positive")
	case v > limit:
		return bad(fmt.Sprintf("exceeds the maximum of %d bytes", limit))
	}
	return nil
}

// Millis checks a duration in milliseconds: zero (the default) up to limit.
func Millis(field string, v, limit int64) *FieldError {
	if 0 <= v && v <= limit {
		return nil
	}
	return &FieldError{Field: field, Value: strconv.FormatInt(v, 10), Reason: fmt.Sprintf("must be between 0 and %d", limit)}
}

// MaxPathLen is the longest host path accepted: Linux's PATH_MAX less its
// terminating NUL.
const MaxPathLen = 4095

// Path checks a required path on the agent's host (an xl configuration):
// absolute, so it does not depend on the agent's working directory and
// can never be read by xl as an option; clean (what filepath.Clean
// returns), so what is checked, logged and opened is one and the same
// path; free of NUL and other control bytes, which no configuration's name
// needs and which would cut or garble it in C, in xl's messages and in
// logs; and at most MaxPathLen bytes.
func Path(field, v string) *FieldError {
	bad := func(reason string) *FieldError { return &FieldError{Field: field, Value: Quote(v), Reason: reason} }
	switch {
	case v == "":
		return bad("is required")
	case len(v) > MaxPathLen:
		return bad(fmt.Sprintf("is %d bytes long, at most %d", len(v), MaxPathLen))
	case hasControl(v):
		return bad("contains a NUL or other control byte")
	case !filepath.IsAbs(v):
		return bad("must be an absolute path")
	case filepath.Clean(v) != v:
		return bad(fmt.Sprintf("must be a clean path (%s)", Quote(filepath.Clean(v))))
	}
	return nil
}

// OptionalPath is Path for a field that may be left empty.
func OptionalPath(field, v string) *FieldError {
	if v == "" {
		return nil
	}
	return Path(field, v)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// LeaderTerm checks the term of a command's epoch. A leader's term is the
// revision at which it took its lease (supervisor/lease.go), so it is never
// 0: a command of term 0 comes from no leader.
func LeaderTerm(field string, term uint64) *FieldError {
	if term >= 1 {
		return nil
	}
	return &FieldError{Field: field, Value: "0", Reason: "is required: a leader's term is at least 1"}
}

// CheckpointSeq checks a checkpoint's number: the catalog numbers a group's
// checkpoints from 1 (checkpointer.Catalog.Begin).
func CheckpointSeq(field string, seq uint64) *FieldError {
	if seq >= 1 {
		return nil
	}
	return &FieldError{Field: field, Value: "0", Reason: "is required: checkpoints are numbered from 1"}
}
