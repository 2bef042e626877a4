package checkpointer_test

import (
	"strings"
	"testing"

	"github.com/xenft/xenft/checkpointer"
	"github.com/xenft/xenft/events"
)

func TestCheckpointRequestsValidate(t *testing.T) {
	e := events.Epoch{Term: 2, Seq: 5}
	capture := checkpointer.CaptureRequest{Group: "mpi", Seq: 3, VM: "vm1", Epoch: e}
	for _, c := range []struct {
		name string
		err  error
		want string // "" when accepted
	}{
		{"capture", capture.Validate(), ""},
		{"capture with a day's pause", func() error { r := capture; r.MaxPauseMs = 86_400_000; return r.Validate() }(), ""},
		{"capture of an option", func() error { r := capture; r.VM = "-x"; return r.Validate() }(), `vm "-x": must start`},
		{"capture into a group outside the spool", func() error { r := capture; r.Group = "../../../etc/cron.d"; return r.Validate() }(), `group "../../../etc/cron.d": must start`},
		{"capture of seq 0", func() error { r := capture; r.Seq = 0; return r.Validate() }(), "seq 0: is required"},
		{"capture of no leader", func() error { r := capture; r.Epoch = events.Epoch{}; return r.Validate() }(), "epoch.term 0"},
		{"capture with a negative pause", func() error { r := capture; r.MaxPauseMs = -1; return r.Validate() }(), "max_pause_ms -1: must be between 0 and 86400000"},
		{"capture with an overflowing pause", func() error { r := capture; r.MaxPauseMs = 1 << 62; return r.Validate() }(), "max_pause_ms 4611686018427387904"},
		{"resume", checkpointer.ResumeRequest{Group: "mpi", Seq: 3, VM: "vm1", Epoch: e}.Validate(), ""},
		{"resume of a path", checkpointer.ResumeRequest{Group: "mpi", Seq: 3, VM: "a/b", Epoch: e}.Validate(), `vm "a/b"`},
		{"upload", checkpointer.UploadRequest{Group: "mpi", Seq: 3, VM: "vm1", Epoch: e, ImageKey: "mpi/3/vm1.img"}.Validate(), ""},
		{"upload outside the store", checkpointer.UploadRequest{Group: "mpi", Seq: 3, VM: "vm1", Epoch: e, ImageKey: "../../x"}.Validate(), `image_key "../../x": segment ".."`},
		{"upload over a sidecar", checkpointer.UploadRequest{Group: "mpi", Seq: 3, VM: "vm1", Epoch: e, ImageKey: "mpi/3/vm0.img.meta"}.Validate(), "keeps for itself"},
		{"abort as a probe", checkpointer.AbortRequest{Group: "x", VM: "x"}.ValidateAbort(), ""},
		{"abort of an option", checkpointer.AbortRequest{Group: "x", VM: "-x"}.ValidateAbort(), `vm "-x"`},
	} {
		switch {
		case c.want == "" && c.err != nil:
			t.Errorf("%s: refused: %v", c.name, c.err)
		case c.want != "" && (c.err == nil || !strings.Contains(c.err.Error(), c.want) || strings.Contains(c.err.Error(), "\n")):
			t.Errorf("%s: %v, want one line containing %q", c.name, c.err, c.want)
		}
	}
}
