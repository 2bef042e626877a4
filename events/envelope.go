package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nuid"
)

// SpecVersion is the CloudEvents version of every xenft event.
const SpecVersion = "1.0"

// ContentTypeJSON is the datacontenttype of every xenft event.
const ContentTypeJSON = "application/json"

// MaxEventSize bounds an encoded event. A larger one is refused when published
// and dropped when received (ErrTooLarge): events are small facts, and a bound
// keeps a misbehaving publisher from filling memory or the stream.
const MaxEventSize = 64 << 10

// Event is a CloudEvents 1.0 envelope in JSON structured mode.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            Type            `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// NewID returns a fresh random event id.
func NewID() string { return nuid.Next() }

// New wraps a payload in an envelope from source at time now with a fresh
// random id. Use WithID for a deterministic id (so JetStream de-duplicates the
// same fact published by several detectors).
func New(source string, now time.Time, data Payload) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s data: %w", data.EventType(), err)
	}
	t := data.EventType()
	info, ok := registry[t]
	if !ok {
		return Event{}, fmt.Errorf("%w: %q", ErrUnknownType, t)
	}
	return Event{
		SpecVersion:     SpecVersion,
		ID:              NewID(),
		Source:          source,
		Type:            t,
		Subject:         info.entity + "/" + data.EntityID(),
		Time:            now.UTC(),
		DataContentType: ContentTypeJSON,
		Data:            raw,
	}, nil
}

// WithID returns a copy of e with the given id.
func (e Event) WithID(id string) Event {
	e.ID = id
	return e
}

// EntityID is the id part of the CloudEvents subject ("n3" of "host/n3").
func (e Event) EntityID() string {
	if i := strings.IndexByte(e.Subject, '/'); i >= 0 {
		return e.Subject[i+1:]
	}
	return e.Subject
}

// NATSSubject is the subject an anonymous publisher publishes e on under
// s's prefix (see NATSSubjectFrom).
func (e Event) NATSSubject(s Subjects) string { return s.Event(e.Type, e.EntityID()) }

// NATSSubjectFrom is the subject p publishes e on under s's prefix.
func (e Event) NATSSubjectFrom(s Subjects, p Publisher) string {
	return s.EventFrom(e.Type, e.EntityID(), p)
}

// Payload decodes the data into the typed payload of e's type (a pointer such
// as *NodeFailed).
func (e Event) Payload() (Payload, error) {
	info, ok := registry[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	p := info.newData()
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("%w: data of %s: %v", ErrMalformed, e.Type, err)
	}
	return p, nil
}

// DataAs decodes e's data into T; it fails if e is not of T's type.
func DataAs[T Payload](e Event) (T, error) {
	var out T
	if out.EventType() != e.Type {
		return out, fmt.Errorf("event %s is of type %s, not %s", e.ID, e.Type, out.EventType())
	}
	if err := json.Unmarshal(e.Data, &out); err != nil {
		return out, fmt.Errorf("%w: data of %s: %v", ErrMalformed, e.Type, err)
	}
	return out, nil
}

// Encode validates e against its schema and returns its JSON. Publishers call
// it so that nothing invalid ever reaches the stream.
func Encode(e Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := Decode(b); err != nil {
		return nil, err
	}
	return b, nil
}
