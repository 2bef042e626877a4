package checkpointer

import (
	"time"

	"github.com/xenft/xenft/internal/reqcheck"
)

// The agent checks every checkpoint request with its Validate before it
// acts on it in any way (before its epoch is admitted): a refused request
// is answered bad_request, which the coordinator does not retry. The VM,
// group and seq name the spool file of a capture
// (<spool>/<vm>-<group>-<seq>.img), and the VM reaches xl save: a group of
// "../../etc" or a VM of "-x" must never get that far.

// MaxPauseLimit bounds a capture's max_pause_ms: the agent's own timer that
// unpauses a member the coordinator forgot. A request for more than a day
// is not a checkpoint's pause but a frozen guest.
const MaxPauseLimit = 24 * time.Hour

// Validate checks a capture.
func (r CaptureRequest) Validate() error {
	return reqcheck.Join(
		reqcheck.Name("vm", r.VM),
		reqcheck.Name("group", r.Group),
		reqcheck.CheckpointSeq("seq", r.Seq),
		reqcheck.LeaderTerm("epoch.term", r.Epoch.Term),
		reqcheck.Millis("max_pause_ms", r.MaxPauseMs, MaxPauseLimit.Milliseconds()),
	)
}

// Validate checks a resume.
func (r ResumeRequest) Validate() error {
	return reqcheck.Join(
		reqcheck.Name("vm", r.VM),
		reqcheck.Name("group", r.Group),
		reqcheck.CheckpointSeq("seq", r.Seq),
		reqcheck.LeaderTerm("epoch.term", r.Epoch.Term),
	)
}

// ValidateAbort checks an abort (AbortRequest is ResumeRequest) by its
// names alone. An abort is the undo the coordinator sends every member
// however far each got, under the checkpoint record's epoch, and the probe
// a tool sends to see that an agent answers (bench/checkpoint); it acts
// only on a capture the agent holds, whose names passed Validate.
func (r ResumeRequest) ValidateAbort() error {
	return reqcheck.Join(reqcheck.Name("vm", r.VM), reqcheck.Name("group", r.Group))
}

// Validate checks an upload: as a resume, and the key it stores under.
func (r UploadRequest) Validate() error {
	return reqcheck.Join(
		reqcheck.Name("vm", r.VM),
		reqcheck.Name("group", r.Group),
		reqcheck.CheckpointSeq("seq", r.Seq),
		reqcheck.LeaderTerm("epoch.term", r.Epoch.Term),
		reqcheck.ImageKey("image_key", r.ImageKey),
	)
}
