package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Errors of Decode, matched with errors.Is. Each names a reason an event is
// dropped on receipt.
var (
	ErrTooLarge    = errors.New("event too large")
	ErrMalformed   = errors.New("malformed event")
	ErrUnknownType = errors.New("unknown event type")
	ErrInvalid     = errors.New("invalid event")
)

// Decode parses and validates one encoded event: size, JSON, a known type, the
// type's JSON Schema (envelope and data), and that the CloudEvents subject
// names the entity the data is about. It never panics; every failure matches
// one of ErrTooLarge, ErrMalformed, ErrUnknownType or ErrInvalid, and its text
// names the offending field.
func Decode(b []byte) (Event, error) {
	if len(b) > MaxEventSize {
		return Event{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxEventSize)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	obj, ok := inst.(map[string]any)
	if !ok {
		return Event{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	typ, _ := obj["type"].(string)
	if typ == "" {
		return Event{}, fmt.Errorf("%w: missing \"type\"", ErrInvalid)
	}
	info, ok := registry[Type(typ)]
	if !ok {
		return Event{}, fmt.Errorf("%w: %q", ErrUnknownType, typ)
	}
	if err := schemas().validate(Type(typ), inst); err != nil {
		return Event{}, err
	}
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p := info.newData()
	if err := json.Unmarshal(ev.Data, p); err != nil {
		return Event{}, fmt.Errorf("%w: data: %v", ErrInvalid, err)
	}
	want := info.entity + "/" + p.EntityID()
	if ev.Subject != want {
		return Event{}, fmt.Errorf("%w: subject %q does not match data (want %q)", ErrInvalid, ev.Subject, want)
	}
	return ev, nil
}

// printer renders the schema library's messages; it must not be nil.
var printer = message.NewPrinter(language.English)

// describeValidation turns the schema library's error tree into one line that
// names every offending field (up to a few), which is what an operator needs
// to fix an event: a misspelt key shows as both missing and not allowed.
func describeValidation(t Type, err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, t.Short(), err)
	}
	var leaves []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			msg := "field /" + strings.Join(e.InstanceLocation, "/") + ": " + e.ErrorKind.LocalizedString(printer)
			for _, l := range leaves {
				if l == msg {
					return
				}
			}
			leaves = append(leaves, msg)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(leaves) > 4 {
		leaves = append(leaves[:4], fmt.Sprintf("and %d more", len(leaves)-4))
	}
	return fmt.Errorf("%w: %s: %s", ErrInvalid, t.Short(), strings.Join(leaves, "; "))
}

// DropCounter counts events dropped on receipt by reason. The zero value is
// ready; it is safe for concurrent use.
type DropCounter struct {
	tooLarge, malformed, unknown, invalid atomic.Uint64
}

// Count records err (from Decode) and returns it.
func (c *DropCounter) Count(err error) error {
	switch {
	case errors.Is(err, ErrTooLarge):
		c.tooLarge.Add(1)
	case errors.Is(err, ErrUnknownType):
		c.unknown.Add(1)
	case errors.Is(err, ErrInvalid):
		c.invalid.Add(1)
	default:
		c.malformed.Add(1)
	}
	return err
}

// DropStats is a snapshot of a DropCounter.
type DropStats struct {
	TooLarge, Malformed, Unknown, Invalid uint64
}

// Total is the number of dropped events.
func (s DropStats) Total() uint64 { return s.TooLarge + s.Malformed + s.Unknown + s.Invalid }

// Stats returns the counts so far.
func (c *DropCounter) Stats() DropStats {
	return DropStats{
		TooLarge:  c.tooLarge.Load(),
		Malformed: c.malformed.Load(),
		Unknown:   c.unknown.Load(),
		Invalid:   c.invalid.Load(),
	}
}
