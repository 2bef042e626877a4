package command_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/xenft/xenft/events/command"
)

// The agent's side: every outcome of a handler becomes an envelope with a
// result or a classified error, never a crash.
func TestAnswerClassifiesEveryOutcome(t *testing.T) {
	echo := command.Typed(func(_ context.Context, in struct{ Word string }) (map[string]string, error) {
		return map[string]string{"word": in.Word}, nil
	})
	for _, tc := range []struct {
		name       string
		h          command.Handler
		req        string
		wantResult string // JSON, when the command succeeds
		wantCode   string
		wantMsg    string
	}{
		{name: "result", h: echo, req: `{"Word":"hello"}`, wantResult: `{"word":"hello"}`},
		{name: "unknown verb", h: nil, req: `{}`, wantCode: command.CodeBadRequest, wantMsg: "unknown command v"},
		{name: "body not JSON", h: echo, req: `{`, wantCode: command.CodeBadRequest, wantMsg: "request is not JSON"},
		{name: "request of the wrong shape", h: echo, req: `{"Word":7}`, wantCode: command.CodeBadRequest},
		{name: "classified error keeps its code", h: func(context.Context, json.RawMessage) (any, error) {
			return nil, command.NewError(command.CodeRetryable, errors.New("toolstack busy"))
		}, req: `{}`, wantCode: command.CodeRetryable, wantMsg: "toolstack busy"},
		{name: "wrapped classified error", h: func(context.Context, json.RawMessage) (any, error) {
			return nil, fmt.Errorf("restore: %w", command.NewError(command.CodeCorrupt, errors.New("sha256")))
		}, req: `{}`, wantCode: command.CodeCorrupt, wantMsg: "sha256"},
		{name: "plain error is permanent", h: func(context.Context, json.RawMessage) (any, error) {
			return nil, errors.New("no")
		}, req: `{}`, wantCode: command.CodePermanent, wantMsg: "no"},
		{name: "panic is permanent", h: func(context.Context, json.RawMessage) (any, error) {
			panic("bad input")
		}, req: `{}`, wantCode: command.CodePermanent, wantMsg: "internal error: bad input"},
		{name: "result that does not encode", h: func(context.Context, json.RawMessage) (any, error) {
			return func() {}, nil
		}, req: `{}`, wantCode: command.CodePermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := command.Answer(context.Background(), "v", tc.h, []byte(tc.req))
			if tc.wantCode == "" {
				if rep.Error != nil || string(rep.Result) != tc.wantResult {
					t.Fatalf("reply %s %+v, want result %s", rep.Result, rep.Error, tc.wantResult)
				}
				return
			}
			if rep.Error == nil || rep.Result != nil || rep.Error.Code != tc.wantCode {
				t.Fatalf("reply %s %+v, want code %s", rep.Result, rep.Error, tc.wantCode)
			}
			if tc.wantMsg != "" && rep.Error.Message != tc.wantMsg {
				t.Fatalf("message %q, want %q", rep.Error.Message, tc.wantMsg)
			}
		})
	}
}

// The sender's side: the envelope decodes into the reply or into an *Error
// that names the host and verb it came from.
func TestDecodeNamesHostAndVerb(t *testing.T) {
	var out struct{ Word string }
	if err := command.Decode("n1", "echo", []byte(`{"result":{"Word":"hi"}}`), &out); err != nil || out.Word != "hi" {
		t.Fatalf("result: %+v, %v", out, err)
	}
	if err := command.Decode("n1", "echo", []byte(`{}`), &out); err != nil {
		t.Fatalf("empty success: %v", err)
	}
	if err := command.Decode("n1", "echo", []byte(`{"result":{"Word":"hi"}}`), nil); err != nil {
		t.Fatalf("result ignored: %v", err)
	}
	for _, tc := range []struct{ data, code string }{
		{`{"error":{"code":"not_ready","message":"n1 self-fenced"}}`, command.CodeNotReady},
		{`not json`, command.CodePermanent},
		{`{"result":"a string"}`, command.CodePermanent},
	} {
		err := command.Decode("n1", "echo", []byte(tc.data), &out)
		var ce *command.Error
		if !errors.As(err, &ce) || ce.Code != tc.code || ce.Host != "n1" || ce.Verb != "echo" {
			t.Fatalf("%s: err = %#v, want code %s from echo on n1", tc.data, err, tc.code)
		}
	}
}

// What goes out is what comes back: an agent's error, encoded and decoded,
// is the same error with the sender's host and verb.
func TestAnswerDecodeRoundTrip(t *testing.T) {
	rep := command.Answer(context.Background(), "vm.unpause", func(context.Context, json.RawMessage) (any, error) {
		return nil, command.NewError(command.CodeNotFound, errors.New("no domain vm1"))
	}, []byte(`{}`))
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	err = command.Decode("n2", "vm.unpause", data, nil)
	if got, want := err.Error(), "vm.unpause on n2: not_found: no domain vm1"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}

func TestRetryableCodes(t *testing.T) {
	for code, want := range map[string]bool{
		command.CodeRetryable: true, command.CodeNotReady: true,
		command.CodePermanent: false, command.CodeStaleEpoch: false, command.CodeNotFound: false,
		command.CodeCorrupt: false, command.CodeBadRequest: false,
	} {
		if got := (&command.Error{Code: code}).Retryable(); got != want {
			t.Errorf("%s: Retryable() = %t, want %t", code, got, want)
		}
	}
}
