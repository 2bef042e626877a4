package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Handler answers one command. The request is the raw JSON body; the
// result is encoded as the reply. Errors are sent back classified (see
// Error); a plain error is sent as permanent.
type Handler func(ctx context.Context, req json.RawMessage) (any, error)

// Error codes of a command reply. The caller's retry decision rests on them.
const (
	CodeRetryable  = "retryable"   // try again, maybe elsewhere (toolstack busy, timeout)
	CodePermanent  = "permanent"   // this request will not succeed here
	CodeStaleEpoch = "stale_epoch" // the agent obeyed a newer epoch; the sender lost leadership
	CodeNotFound   = "not_found"   // the domain or image does not exist
	CodeCorrupt    = "corrupt"     // an image failed verification
	CodeBadRequest = "bad_request" // the request could not be decoded
	// CodeNotReady: the host takes no command of this kind for now, whatever
	// it asks (a self-fenced agent awaiting the leader's reconciliation).
	// Try again later, elsewhere meanwhile; it says nothing of the request.
	CodeNotReady = "not_ready"
)

// Error is a failed command as the caller sees it.
type Error struct {
	Host, Verb string
	Code       string `json:"code"`
	Message    string `json:"message"`
	// ObeyedTerm comes with CodeStaleEpoch: the newest leader term the
	// agent has obeyed. A sender whose own term is not below it learns
	// that the bus handed its term out twice, and takes a higher one.
	ObeyedTerm uint64 `json:"obeyed_term,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s on %s: %s: %s", e.Verb, e.Host, e.Code, e.Message)
}

// Retryable reports whether trying again may succeed.
func (e *Error) Retryable() bool { return e.Code == CodeRetryable || e.Code == CodeNotReady }

// NewError classifies err for the reply.
func NewError(code string, err error) *Error {
	return &Error{Code: code, Message: err.Error()}
}

// Reply is the envelope of every answer: a result or an error, never both.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Typed adapts a handler of a typed request and reply to a Handler: a
// request that does not decode into Req is refused as bad_request.
func Typed[Req, Rep any](f func(context.Context, Req) (Rep, error)) Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var req Req
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, NewError(CodeBadRequest, err)
		}
		return f(ctx, req)
	}
}

// Answer runs h (nil for a verb the agent does not know) on the request body
// req and wraps the outcome in the envelope: an unknown verb and a body that
// is not JSON are refused as bad_request, a plain error, a panic or a result
// that does not encode is permanent, and an *Error keeps its code.
func Answer(ctx context.Context, verb string, h Handler, req []byte) Reply {
	var rep Reply
	if h == nil {
		rep.Error = &Error{Code: CodeBadRequest, Message: "unknown command " + verb}
	} else if !json.Valid(req) {
		rep.Error = &Error{Code: CodeBadRequest, Message: "request is not JSON"}
	} else {
		res, err := call(ctx, h, req)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				ce = &Error{Code: CodePermanent, Message: err.Error()}
			}
			rep.Error = &Error{Code: ce.Code, Message: ce.Message, ObeyedTerm: ce.ObeyedTerm}
		} else if rep.Result, err = json.Marshal(res); err != nil {
			rep.Error = &Error{Code: CodePermanent, Message: "encode result: " + err.Error()}
		}
	}
	return rep
}

// call turns a handler's panic into a permanent error: a bad request must
// not take the agent down.
func call(ctx context.Context, h Handler, req json.RawMessage) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return h(ctx, req)
}

// Decode reads the envelope data that host answered to verb and decodes its
// result into reply (which may be nil). The agent's error comes back as an
// *Error naming host and verb; an envelope or result that does not decode is
// a permanent *Error.
func Decode(host, verb string, data []byte, reply any) error {
	var rep Reply
	if err := json.Unmarshal(data, &rep); err != nil {
		return &Error{Host: host, Verb: verb, Code: CodePermanent, Message: "undecodable reply: " + err.Error()}
	}
	if rep.Error != nil {
		rep.Error.Host, rep.Error.Verb = host, verb
		return rep.Error
	}
	if reply != nil && len(rep.Result) > 0 {
		if err := json.Unmarshal(rep.Result, reply); err != nil {
			return &Error{Host: host, Verb: verb, Code: CodePermanent, Message: "undecodable result: " + err.Error()}
		}
	}
	return nil
}
