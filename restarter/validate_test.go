package restarter_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/restarter"
	"github.com/xenft/xenft/xen/xentest"
)

// fakeHostDriver is the xl driver on a fake host the test keeps, to read
// the fake's call log.
func fakeHostDriver(host **xentest.FakeHost) driver {
	return driver{"xl", func(t *testing.T, name string) (restarter.Hypervisor, func(string) (uint64, error)) {
		*host = xentest.NewFakeHost(t, name)
		x := (*host).XL
		return x, func(vm string) (uint64, error) { return xentest.Progress(x, vm) }
	}}
}

// hostile is a request no supervisor sends, and what the refusal must say.
type hostile struct {
	name, verb string
	req        any
	want       string
}

// hostileRequests are sent with a term above any the agent has obeyed, to
// show that a refused request does not even advance its epoch guard.
func hostileRequests(cfg string) []hostile {
	e := events.Epoch{Term: 50, Seq: 1}
	sha := strings.Repeat("0", 64)
	return []hostile{
		{"destroy of an option", restarter.VerbDestroy, restarter.DestroyRequest{VM: "-x", Epoch: e},
			`invalid request: vm "-x": must start with a letter or digit (a leading '-' would reach xl as an option)`},
		{"destroy of a path", restarter.VerbDestroy, restarter.DestroyRequest{VM: "../../etc", Epoch: e},
			`invalid request: vm "../../etc": must start with a letter or digit`},
		{"destroy of a shell command", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1;reboot", Epoch: e},
			`invalid request: vm "vm1;reboot": byte 3 is ";"`},
		{"unpause of an option", restarter.VerbUnpause, restarter.UnpauseRequest{VM: "--help", Epoch: e},
			`invalid request: vm "--help": must start`},
		{"restore from outside the store", restarter.VerbRestore,
			restarter.RestoreRequest{VM: "vm1", Group: "g", Seq: 1, ImageKey: "../../x", Size: 1, SHA256: sha, Epoch: e},
			`invalid request: image_key "../../x": segment ".." must be letters, digits`},
		{"restore of an option from an absolute key", restarter.VerbRestore,
			restarter.RestoreRequest{VM: "-x", Group: "g", Seq: 1, ImageKey: "/etc/shadow", Size: 1, SHA256: sha, Epoch: e},
			`invalid request: vm "-x": must start with a letter or digit (a leading '-' would reach xl as an option); image_key "/etc/shadow": segment ""`},
		{"restore of a group that leaves the spool", restarter.VerbRestore,
			restarter.RestoreRequest{VM: "vm1", Group: "../../tmp", Seq: 1, ImageKey: "g/1/vm1.img", Size: 1, SHA256: sha, Epoch: e},
			`invalid request: group "../../tmp": must start`},
		{"restore of an impossible size", restarter.VerbRestore,
			restarter.RestoreRequest{VM: "vm1", Group: "g", Seq: 1, ImageKey: "g/1/vm1.img", Size: 1 << 62, SHA256: sha, Epoch: e},
			`invalid request: size 4611686018427387904: exceeds the maximum`},
		{"restore under a config outside any directory", restarter.VerbRestore,
			restarter.RestoreRequest{VM: "vm1", Group: "g", Seq: 1, ImageKey: "g/1/vm1.img", Size: 1, SHA256: sha, ConfigPath: "/etc/xen/../shadow", Epoch: e},
			`invalid request: config_path "/etc/xen/../shadow": must be a clean path ("/etc/shadow")`},
		{"cold start of an option", restarter.VerbColdStart, restarter.ColdStartRequest{VM: "-x", ConfigPath: cfg, Epoch: e},
			`invalid request: vm "-x": must start`},
		{"cold start from a relative config", restarter.VerbColdStart, restarter.ColdStartRequest{VM: "vm1", ConfigPath: "-x", Epoch: e},
			`invalid request: config_path "-x": must be an absolute path`},
		{"cold start from a path with NUL", restarter.VerbColdStart, restarter.ColdStartRequest{VM: "vm1", ConfigPath: "/etc/xen/vm1.cfg\x00", Epoch: e},
			`invalid request: config_path "/etc/xen/vm1.cfg\x00": contains a NUL or other control byte`},
		{"destroy of a name of 1 MiB", restarter.VerbDestroy, restarter.DestroyRequest{VM: strings.Repeat("v", 1<<20), Epoch: e},
			`invalid request: vm "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"... (1048576 bytes): is 1048576 bytes long, at most 128`},
		{"command of no leader", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: events.Epoch{Seq: 3}},
			`invalid request: epoch.term 0: is required`},
		{"list of no leader", restarter.VerbList, restarter.ListRequest{Epoch: events.Epoch{Seq: 3}},
			`invalid request: epoch.term 0: is required`},
	}
}

// A hostile request through the real command path — NATS, the agent's
// handlers, the production xl driver over the fake xl — is refused as
// bad_request (which the supervisor does not retry) with one line naming
// the field and its value, and nothing runs: the fake xl records no call,
// the spool stays empty, the epoch guard does not move.
func TestHostileRequestsAreRefusedBeforeAnythingRuns(t *testing.T) {
	e := newEnv(t)
	var host *xentest.FakeHost
	a := e.agent("n1", agentOptions{driver: fakeHostDriver(&host), noRun: true})
	cfg := e.writeCfg("vm1", 64)
	before := len(host.Calls(t))
	term := a.guard.Term()

	for _, h := range hostileRequests(cfg) {
		_, err := send[struct{}](e, "n1", h.verb, h.req)
		var ce *command.Error
		if codeOf(err) != command.CodeBadRequest || !errors.As(err, &ce) || ce.Retryable() {
			t.Errorf("%s: %v, want bad_request", h.name, err)
			continue
		}
		if !strings.HasPrefix(ce.Message, h.want) || strings.ContainsAny(ce.Message, "\n\x00") || len(ce.Message) > 400 {
			t.Errorf("%s: message\n  %q\nwant one line of at most 400 bytes starting\n  %q", h.name, ce.Message, h.want)
		}
	}

	if calls := host.Calls(t)[before:]; len(calls) != 0 {
		t.Errorf("hostile requests ran xl: %q", calls)
	}
	if files := a.spoolFiles(); len(files) != 0 {
		t.Errorf("hostile requests left %v in the spool", files)
	}
	if got := a.guard.Term(); got != term {
		t.Errorf("hostile requests of term 50 moved the epoch guard from %d to %d", term, got)
	}
	if ents, err := os.ReadDir(e.storeDir); err != nil || len(ents) != 0 {
		t.Errorf("the store holds %v after hostile requests (%v)", ents, err)
	}
	// The agent still obeys a request of the current leader.
	if _, err := send[restarter.DestroyReply](e, "n1", restarter.VerbDestroy, restarter.DestroyRequest{VM: "vm1", Epoch: e.next()}); err != nil {
		t.Fatalf("a valid destroy after the hostile ones: %v", err)
	}
	if calls := host.Calls(t)[before:]; len(calls) == 0 {
		t.Fatal("the valid destroy ran no xl: the call log records nothing")
	}
}

// The agent's checkpoint verbs refuse hostile requests the same way: a
// capture whose group would put the image outside the spool (xl save runs
// as root and writes where it is told) never reaches xl, though the VM is
// real. (The group climbs only into the test's own temporary directory,
// so that a regression writes nothing anywhere else.)
func TestHostileCheckpointRequestsAreRefusedBeforeAnythingRuns(t *testing.T) {
	e := newEnv(t)
	var host *xentest.FakeHost
	a := e.agent("n1", agentOptions{driver: fakeHostDriver(&host), noRun: true, checkpointer: true})
	host.Boot(t, "vm1", 64)
	before := len(host.Calls(t))
	term := a.guard.Term()
	ep := events.Epoch{Term: 50, Seq: 1}

	for _, h := range []hostile{
		{"capture into a group outside the spool", checkpointer.VerbCapture,
			checkpointer.CaptureRequest{Group: "../../../escaped", Seq: 1, VM: "vm1", Epoch: ep},
			`invalid request: group "../../../escaped": must start with a letter or digit`},
		{"capture of an option", checkpointer.VerbCapture, checkpointer.CaptureRequest{Group: "g", Seq: 1, VM: "-x", Epoch: ep},
			`invalid request: vm "-x": must start`},
		{"resume of an option", checkpointer.VerbResume, checkpointer.ResumeRequest{Group: "g", Seq: 1, VM: "-x", Epoch: ep},
			`invalid request: vm "-x": must start`},
		{"upload outside the store", checkpointer.VerbUpload,
			checkpointer.UploadRequest{Group: "g", Seq: 1, VM: "vm1", Epoch: ep, ImageKey: "../../x"},
			`invalid request: image_key "../../x": segment ".."`},
		{"abort of a path", checkpointer.VerbAbort, checkpointer.AbortRequest{Group: "g", Seq: 1, VM: "../vm1", Epoch: ep},
			`invalid request: vm "../vm1": must start`},
	} {
		_, err := send[struct{}](e, "n1", h.verb, h.req)
		var ce *command.Error
		if codeOf(err) != command.CodeBadRequest || !errors.As(err, &ce) || !strings.HasPrefix(ce.Message, h.want) || strings.Contains(ce.Message, "\n") {
			t.Errorf("%s: %v, want bad_request starting %q", h.name, err, h.want)
		}
	}
	if calls := host.Calls(t)[before:]; len(calls) != 0 {
		t.Errorf("hostile checkpoint requests ran xl: %q", calls)
	}
	// The spools are siblings under the test's temporary directory.
	if escaped, _ := filepath.Glob(filepath.Join(filepath.Dir(a.cfg.SpoolDir), "escaped*")); len(escaped) != 0 {
		t.Errorf("a capture wrote outside its spool: %v", escaped)
	}
	if got := a.guard.Term(); got != term {
		t.Errorf("hostile requests of term 50 moved the epoch guard from %d to %d", term, got)
	}
	if ents, err := os.ReadDir(e.storeDir); err != nil || len(ents) != 0 {
		t.Errorf("the store holds %v after hostile requests (%v)", ents, err)
	}
}
