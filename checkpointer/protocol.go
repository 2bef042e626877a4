package checkpointer

import "github.com/xenft/xenft/events"

// The per-host checkpoint protocol, on <prefix>.cmd.<host>.<verb>.
//
// A member is captured by `xl save -p` to the host's spool: Xen suspends the
// guest (it must be running to acknowledge the suspend request, so an `xl
// pause` first would make the save hang), writes its memory and leaves it
// paused; the disk snapshot hook then runs while it is still paused, so disk
// and memory are of the same instant. The coordinator resumes members only
// once every member is captured (or each right after its own capture with
// resume: early), and the images are uploaded to the store afterwards, while
// the members run again: the pause lasts the local save, not the upload.
//
// Why this is a consistent cut: a member sends messages only while it runs,
// and none runs again before all are captured, so every message a captured
// image has received was sent before its sender's capture — there are no
// orphan messages. A message in flight at the cut is in the sender's image
// as sent but unacknowledged, and TCP retransmits it after a restore.
const (
	VerbCapture = "checkpoint.capture"
	VerbResume  = "checkpoint.resume"
	VerbUpload  = "checkpoint.upload"
	VerbAbort   = "checkpoint.abort"
)

// CaptureRequest asks a host to capture one member into its spool.
type CaptureRequest struct {
	Group string       `json:"group"`
	Seq   uint64       `json:"seq"`
	VM    string       `json:"vm"`
	Epoch events.Epoch `json:"epoch"`
	// ResumeEarly unpauses the member right after its own capture.
	ResumeEarly bool `json:"resume_early,omitempty"`
	// MaxPauseMs overrides the agent's max_pause for this checkpoint.
	MaxPauseMs int64 `json:"max_pause_ms,omitempty"`
}

// CaptureReply reports the capture.
type CaptureReply struct {
	CaptureMs    int64  `json:"capture_ms"`
	DiskSnapshot string `json:"disk_snapshot,omitempty"`
	// PausedMs is set when the member was resumed early.
	PausedMs int64 `json:"paused_ms,omitempty"`
}

// ResumeRequest asks a host to unpause a captured member.
type ResumeRequest struct {
	Group string       `json:"group"`
	Seq   uint64       `json:"seq"`
	VM    string       `json:"vm"`
	Epoch events.Epoch `json:"epoch"`
}

// ResumeReply tells how long the member was paused.
type ResumeReply struct {
	PausedMs int64 `json:"paused_ms"`
}

// UploadRequest asks a host to stream a captured member's image into the
// store under ImageKey.
type UploadRequest struct {
	Group    string       `json:"group"`
	Seq      uint64       `json:"seq"`
	VM       string       `json:"vm"`
	Epoch    events.Epoch `json:"epoch"`
	ImageKey string       `json:"image_key"`
}

// UploadReply describes the stored image.
type UploadReply struct {
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	UploadMs int64  `json:"upload_ms"`
}

// AbortRequest asks a host to unpause a member if checkpoint Seq still holds
// it paused and to drop its spooled image. It is safe to send for a member
// that was never captured.
type AbortRequest = ResumeRequest
