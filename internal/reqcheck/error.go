package reqcheck

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FieldError is one refused field of a request.
type FieldError struct {
	Field  string // as on the wire: "vm", "image_key", "epoch.term"
	Value  string // the refused value as the error shows it (see Quote)
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s %s: %s", e.Field, e.Value, e.Reason) }

// Error is every refused field of one request.
type Error struct{ Fields []*FieldError }

// Error is one line: the fields' errors joined by "; ".
func (e *Error) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return "invalid request: " + strings.Join(msgs, "; ")
}

// Unwrap lets errors.As find each *FieldError.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Fields))
	for i, f := range e.Fields {
		errs[i] = f
	}
	return errs
}

// Join gathers the non-nil results of a request's checks into an *Error, or
// returns nil if there is none.
func Join(checks ...*FieldError) error {
	var fields []*FieldError
	for _, f := range checks {
		if f != nil {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return &Error{Fields: fields}
}

// QuotedMax is how many bytes of a refused value an error repeats: enough
// to recognise it, while a value of a megabyte does not become a reply and
// a log line of a megabyte.
const QuotedMax = 64

// Quote is s as %q quotes it (one line: newlines, NUL and other control
// bytes are escaped), cut at QuotedMax bytes on a character boundary, with
// the length of the whole when cut.
func Quote(s string) string {
	if len(s) <= QuotedMax {
		return strconv.Quote(s)
	}
	cut := QuotedMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}
