package protocol_test

import (
	"strings"
	"testing"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/restarter/protocol"
)

var (
	sha   = strings.Repeat("ab", 32)
	epoch = events.Epoch{Term: 3, Seq: 9}
)

// goodRestore is a restore as the supervisor sends it (supervisor/dispatch.go).
func goodRestore() protocol.RestoreRequest {
	return protocol.RestoreRequest{VM: "vm1", Group: "mpi", Seq: 4, ImageKey: "mpi/4/vm1.img", Size: 256 << 20, SHA256: sha, Epoch: epoch}
}

func TestRestoreRequestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(r *protocol.RestoreRequest)
		want string // "" when accepted, else what the error says
	}{
		{"as sent", func(*protocol.RestoreRequest) {}, ""},
		{"with a config", func(r *protocol.RestoreRequest) { r.ConfigPath = "/etc/xen/vm1.cfg" }, ""},
		{"largest image", func(r *protocol.RestoreRequest) { r.Size = protocol.MaxImageSize }, ""},
		{"epoch of seq 0", func(r *protocol.RestoreRequest) { r.Epoch.Seq = 0 }, ""},
		{"vm an option", func(r *protocol.RestoreRequest) { r.VM = "-x" }, `vm "-x": must start with a letter or digit`},
		{"vm a path", func(r *protocol.RestoreRequest) { r.VM = "../../etc" }, `vm "../../etc": must start`},
		{"vm missing", func(r *protocol.RestoreRequest) { r.VM = "" }, `vm "": is required`},
		{"group a path", func(r *protocol.RestoreRequest) { r.Group = "g/../.." }, `group "g/../..": byte 1 is "/"`},
		{"group missing", func(r *protocol.RestoreRequest) { r.Group = "" }, `group "": is required`},
		{"seq 0", func(r *protocol.RestoreRequest) { r.Seq = 0 }, "seq 0: is required"},
		{"key leaves the store", func(r *protocol.RestoreRequest) { r.ImageKey = "../../x" }, `image_key "../../x": segment ".."`},
		{"key absolute", func(r *protocol.RestoreRequest) { r.ImageKey = "/etc/shadow" }, `image_key "/etc/shadow": segment ""`},
		{"key with NUL", func(r *protocol.RestoreRequest) { r.ImageKey = "g/1/a\x00.img" }, `image_key "g/1/a\x00.img"`},
		{"key with backslash", func(r *protocol.RestoreRequest) { r.ImageKey = `g\..\x` }, `image_key "g\\..\\x"`},
		{"key with an empty segment", func(r *protocol.RestoreRequest) { r.ImageKey = "g//x" }, `segment ""`},
		{"size 0", func(r *protocol.RestoreRequest) { r.Size = 0 }, "size 0: must be positive"},
		{"size negative", func(r *protocol.RestoreRequest) { r.Size = -1 }, "size -1: must be positive"},
		{"size too large", func(r *protocol.RestoreRequest) { r.Size = protocol.MaxImageSize + 1 }, "exceeds the maximum of 17592186044416 bytes"},
		{"sha256 short", func(r *protocol.RestoreRequest) { r.SHA256 = "abc" }, `sha256 "abc": must be 64 lower-case`},
		{"sha256 upper case", func(r *protocol.RestoreRequest) { r.SHA256 = strings.ToUpper(sha) }, "must be 64 lower-case"},
		{"config relative", func(r *protocol.RestoreRequest) { r.ConfigPath = "vm1.cfg" }, `config_path "vm1.cfg": must be an absolute path`},
		{"config not clean", func(r *protocol.RestoreRequest) { r.ConfigPath = "/etc/xen/../shadow" }, "must be a clean path"},
		{"config with NUL", func(r *protocol.RestoreRequest) { r.ConfigPath = "/etc/xen/a\x00" }, "control byte"},
		{"no epoch", func(r *protocol.RestoreRequest) { r.Epoch = events.Epoch{} }, "epoch.term 0: is required"},
		{"term 0", func(r *protocol.RestoreRequest) { r.Epoch.Term = 0 }, "epoch.term 0"},
	} {
		r := goodRestore()
		c.edit(&r)
		assertValidate(t, c.name, r.Validate(), c.want)
	}
	// Every refused field is named, on one line.
	bad := protocol.RestoreRequest{VM: "-x", ImageKey: "../x", SHA256: "z"}
	err := bad.Validate()
	for _, field := range []string{"vm ", "group ", "seq ", "image_key ", "size ", "sha256 ", "epoch.term "} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("a request wrong everywhere: %v does not name %q", err, strings.TrimSpace(field))
		}
	}
}

func TestOtherRequestsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"destroy", protocol.DestroyRequest{VM: "vm1", Epoch: epoch}.Validate(), ""},
		{"destroy of an option", protocol.DestroyRequest{VM: "-a", Epoch: epoch}.Validate(), `vm "-a"`},
		{"destroy of Domain-0's id", protocol.DestroyRequest{VM: "0", Epoch: epoch}.Validate(), ""},
		{"destroy without epoch", protocol.DestroyRequest{VM: "vm1"}.Validate(), "epoch.term 0"},
		{"unpause", protocol.UnpauseRequest{VM: "vm1", Epoch: epoch}.Validate(), ""},
		{"unpause of a path", protocol.UnpauseRequest{VM: "a/b", Epoch: epoch}.Validate(), `vm "a/b": byte 1 is "/"`},
		{"unpause of a long name", protocol.UnpauseRequest{VM: strings.Repeat("v", 200), Epoch: epoch}.Validate(), "is 200 bytes long, at most 128"},
		{"cold start", protocol.ColdStartRequest{VM: "vm1", ConfigPath: "/etc/xen/vm1.cfg", Epoch: epoch}.Validate(), ""},
		{"cold start without config", protocol.ColdStartRequest{VM: "vm1", Epoch: epoch}.Validate(), `config_path "": is required`},
		{"cold start from a relative config", protocol.ColdStartRequest{VM: "vm1", ConfigPath: "-x", Epoch: epoch}.Validate(), "must be an absolute path"},
		{"cold start from a dirty config", protocol.ColdStartRequest{VM: "vm1", ConfigPath: "/etc//xen/vm1.cfg", Epoch: epoch}.Validate(), "must be a clean path"},
		{"operator's list", protocol.ListRequest{}.Validate(), ""},
		{"leader's list", protocol.ListRequest{Epoch: events.Epoch{Term: 7}}.Validate(), ""},
		{"list of term 0", protocol.ListRequest{Epoch: events.Epoch{Seq: 7}}.Validate(), "epoch.term 0"},
	} {
		assertValidate(t, c.name, c.err, c.want)
	}
}

func assertValidate(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: refused: %v", name, err)
	case want != "" && err == nil:
		t.Errorf("%s: accepted, want %q", name, want)
	case err != nil && (!strings.Contains(err.Error(), want) || strings.ContainsAny(err.Error(), "\n\x00")):
		t.Errorf("%s: %q, want one line containing %q", name, err, want)
	}
}
