package protocol_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/internal/reqcheck"
	"github.com/xenft/xenft/restarter/protocol"
	"github.com/xenft/xenft/store"
)

// fields are what an accepted request hands the agent's code: the values
// that become xl arguments, spool names, store paths and byte counts.
type fields struct {
	names []string // VM and group names
	keys  []string // image keys
	paths []string // host paths, set ones only
	sizes []int64
	terms []uint64 // epoch terms that must be a leader's
}

// agentVerb decodes a request body as the agent does (command.Typed) and
// validates it as the agent does before acting.
type agentVerb struct {
	verb   string
	handle command.Handler
}

// decoded adapts a request type: the handler returns its fields when
// Validate accepts it.
func decoded[Req interface{ Validate() error }](of func(Req) fields) command.Handler {
	return command.Typed(func(_ context.Context, r Req) (fields, error) { return of(r), r.Validate() })
}

var agentVerbs = []agentVerb{
	{protocol.VerbRestore, decoded(func(r protocol.RestoreRequest) fields {
		f := fields{names: []string{r.VM, r.Group}, keys: []string{r.ImageKey}, sizes: []int64{r.Size}, terms: []uint64{r.Epoch.Term}}
		if r.ConfigPath != "" {
			f.paths = append(f.paths, r.ConfigPath)
		}
		return f
	})},
	{protocol.VerbDestroy, decoded(func(r protocol.DestroyRequest) fields {
		return fields{names: []string{r.VM}, terms: []uint64{r.Epoch.Term}}
	})},
	{protocol.VerbUnpause, decoded(func(r protocol.UnpauseRequest) fields {
		return fields{names: []string{r.VM}, terms: []uint64{r.Epoch.Term}}
	})},
	{protocol.VerbColdStart, decoded(func(r protocol.ColdStartRequest) fields {
		return fields{names: []string{r.VM}, paths: []string{r.ConfigPath}, terms: []uint64{r.Epoch.Term}}
	})},
	{protocol.VerbList, decoded(func(r protocol.ListRequest) fields {
		if r.Epoch.Term == 0 && r.Epoch.Seq == 0 {
			return fields{}
		}
		return fields{terms: []uint64{r.Epoch.Term}}
	})},
	{checkpointer.VerbCapture, decoded(func(r checkpointer.CaptureRequest) fields {
		return fields{names: []string{r.VM, r.Group}, terms: []uint64{r.Epoch.Term}}
	})},
	{checkpointer.VerbResume, decoded(func(r checkpointer.ResumeRequest) fields {
		return fields{names: []string{r.VM, r.Group}, terms: []uint64{r.Epoch.Term}}
	})},
	{checkpointer.VerbUpload, decoded(func(r checkpointer.UploadRequest) fields {
		return fields{names: []string{r.VM, r.Group}, keys: []string{r.ImageKey}, terms: []uint64{r.Epoch.Term}}
	})},
	{checkpointer.VerbAbort, decoded(func(r abortRequest) fields {
		return fields{names: []string{r.VM, r.Group}}
	})},
}

// abortRequest is checked as the agent checks an abort: by ValidateAbort.
type abortRequest struct{ checkpointer.AbortRequest }

func (r abortRequest) Validate() error { return r.ValidateAbort() }

// FuzzDecodeAgentRequest feeds any body to any agent verb's decoding and
// validation. Nothing may panic; a refusal is one bounded line; and what is
// accepted is safe by checks independent of the rules' own code: a name
// cannot be an xl option or leave a directory, a key stays under the
// store's root, a path is absolute and clean, a size is in range.
func FuzzDecodeAgentRequest(f *testing.F) {
	sha := strings.Repeat("0f", 32)
	seeds := []string{
		`{"vm":"vm1","group":"g","seq":1,"image_key":"g/1/vm1.img","size":4096,"sha256":"` + sha + `","epoch":{"term":1,"seq":2}}`,
		`{"vm":"vm1","config_path":"/etc/xen/vm1.cfg","epoch":{"term":3,"seq":1}}`,
		`{"vm":"-x","group":"../..","image_key":"../../x","size":-1,"config_path":"/a/../b","epoch":{"term":0,"seq":1}}`,
		`{"vm":"vm1","group":"g","seq":1,"image_key":"g/1/vm1.img.meta","epoch":{"term":1}}`,
		`{"group":"g","seq":2,"vm":"vm1","epoch":{"term":1,"seq":1},"max_pause_ms":60000}`,
		`{"epoch":{}}`, `{}`, `null`, `[]`, `{"vm":"a\u0000b"}`, `{"Vm":"x","VM":"y","vm":"z"}`,
	}
	for i := range agentVerbs {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		v := agentVerbs[int(which)%len(agentVerbs)]
		res, err := v.handle(context.Background(), body)
		if err != nil {
			checkRefusal(t, v.verb, err)
			return
		}
		checkAccepted(t, v.verb, res.(fields))
	})
}

// checkRefusal: a body that does not decode is Typed's bad_request; one
// that Validate refuses is a *reqcheck.Error of one bounded line, however
// long the body.
func checkRefusal(t *testing.T, verb string, err error) {
	var ce *command.Error
	var re *reqcheck.Error
	switch {
	case errors.As(err, &ce):
		if ce.Code != command.CodeBadRequest {
			t.Fatalf("%s: decode failure coded %s: %v", verb, ce.Code, err)
		}
	case errors.As(err, &re):
		if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || len(msg) > 4096 {
			t.Fatalf("%s: refusal is not one bounded line (%d bytes): %q", verb, len(msg), msg)
		}
	default:
		t.Fatalf("%s: unclassified error %T: %v", verb, err, err)
	}
}

// imageRoot stands for a directory store's root.
var imageRoot = filepath.FromSlash("/srv/xenft/images")

// checkAccepted holds accepted fields to what the agent's code relies on,
// by checks of its own rather than the rules' code.
func checkAccepted(t *testing.T, verb string, got fields) {
	for _, n := range got.names {
		if !safeName(n) {
			t.Fatalf("%s accepted name %q", verb, n)
		}
	}
	for _, k := range got.keys {
		if !safeKey(k) {
			t.Fatalf("%s accepted image key %q", verb, k)
		}
	}
	for _, p := range got.paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) || len(p) > reqcheck.MaxPathLen {
			t.Fatalf("%s accepted path %q", verb, p)
		}
	}
	for _, s := range got.sizes {
		if s <= 0 || s > protocol.MaxImageSize {
			t.Fatalf("%s accepted size %d", verb, s)
		}
	}
	for _, term := range got.terms {
		if term == 0 {
			t.Fatalf("%s accepted a command of term 0", verb)
		}
	}
}

// safeName: not an xl option, one file name in a directory, nothing a
// shell or a subject would split.
func safeName(n string) bool {
	return n != "" && len(n) <= reqcheck.MaxNameLen && !strings.HasPrefix(n, "-") && !strings.HasPrefix(n, ".") &&
		!strings.ContainsAny(n, "/\\\x00 \n;$`'\"") && filepath.Base(n) == n
}

// safeKey: the store takes it, and under any root it names a path below
// that root.
func safeKey(k string) bool {
	p := filepath.Join(imageRoot, filepath.FromSlash(k))
	return store.ValidateKey(k) == nil && filepath.IsLocal(k) && !strings.ContainsAny(k, "\\\x00") &&
		strings.HasPrefix(p, imageRoot+string(filepath.Separator))
}
