package detector

import (
	"strconv"

	"github.com/xenft/xenft/events"
)

// ID is the transition's event id, the same in every detector that sees the
// same beats:
//
//	node.<kind>/<host>/<incarnation>/<seq>
//
// Several detectors may watch one cluster; each publishes what it decides,
// and JetStream drops a second message with an id it has seen within the
// stream's duplicate window. So the id must name the transition, not the
// detector or the moment it noticed:
//
//   - host and incarnation: a transition is about one run of one agent;
//   - seq is the sequence number of the last beat before the silence
//     (suspect, failed) or of the beat that ended it (recovered). Every
//     detector subscribed to the host's subject receives the same beats, so
//     they agree on it without talking to each other; and within one
//     incarnation it grows between two transitions of the same kind (a host
//     suspected, recovered and suspected again is suspected after a later
//     beat), so distinct transitions get distinct ids.
//
// Two detectors can still disagree, and then both events are stored: when one
// of them lost the host's last beat (its connection dropped for that moment),
// or when phi sat so close to a threshold that only one of them crossed it.
// Consumers treat a repeated node.failed of the same host and incarnation as
// the fact they already know, so a rare duplicate costs nothing; the id only
// has to keep the stream from carrying one copy per detector for every
// transition.
func (t Transition) ID() string {
	return "node." + t.Kind.String() + "/" + t.Host + "/" + t.Incarnation + "/" + strconv.FormatUint(t.LastSeq, 10)
}

// Event is the transition as the CloudEvent the Monitor publishes, with the
// deterministic id of ID, from detector.
func (t Transition) Event(detector string) (events.Event, error) {
	var p events.Payload
	switch t.Kind {
	case KindSuspect:
		p = events.NodeSuspect{Host: t.Host, Incarnation: t.Incarnation, Phi: t.Phi,
			LastBeat: t.LastBeat.UTC(), LastSeq: t.LastSeq, Detector: detector}
	case KindFailed:
		p = events.NodeFailed{Host: t.Host, Incarnation: t.Incarnation, Phi: t.Phi,
			LastBeat: t.LastBeat.UTC(), LastSeq: t.LastSeq, Detector: detector, Reason: t.Reason}
	default:
		p = events.NodeRecovered{Host: t.Host, Incarnation: t.Incarnation,
			PreviousIncarnation: t.PreviousIncarnation, NewIncarnation: t.NewIncarnation,
			LastBeat: t.LastBeat.UTC(), LastSeq: t.LastSeq, Detector: detector}
	}
	ev, err := events.New(source(detector), t.At, p)
	if err != nil {
		return events.Event{}, err
	}
	return ev.WithID(t.ID()), nil
}

// source is the CloudEvents source of what detector publishes.
func source(detector string) string { return "xenft/detector/" + detector }
