package protocol

import "github.com/xenft/xenft/internal/reqcheck"

// Every request is checked by its Validate before the agent acts on it in
// any way (before its epoch is even admitted): a request that fails is
// answered bad_request, which the supervisor does not retry, with one line
// naming each refused field and its value. The rules are package
// reqcheck's; a supervisor may call Validate before it sends.

// MaxImageSize bounds a checkpoint image: 16 TiB, the most host memory Xen
// 4.17 supports on x86 (its SUPPORT.md, without CONFIG_BIGMEM), and a
// guest's image is not larger than its memory. A size above it can only be
// a malformed request.
const MaxImageSize int64 = 16 << 40

// Validate checks a restore: names, the image's key, size and checksum, the
// optional configuration path, the checkpoint number and the leader term.
func (r RestoreRequest) Validate() error {
	return reqcheck.Join(
		reqcheck.Name("vm", r.VM),
		reqcheck.Name("group", r.Group),
		reqcheck.CheckpointSeq("seq", r.Seq),
		reqcheck.ImageKey("image_key", r.ImageKey),
		reqcheck.Size("size", r.Size, MaxImageSize),
		reqcheck.SHA256("sha256", r.SHA256),
		reqcheck.OptionalPath("config_path", r.ConfigPath),
		reqcheck.LeaderTerm("epoch.term", r.Epoch.Term),
	)
}

// Validate checks a destroy.
func (r DestroyRequest) Validate() error {
	return reqcheck.Join(reqcheck.Name("vm", r.VM), reqcheck.LeaderTerm("epoch.term", r.Epoch.Term))
}

// Validate checks an unpause.
func (r UnpauseRequest) Validate() error {
	return reqcheck.Join(reqcheck.Name("vm", r.VM), reqcheck.LeaderTerm("epoch.term", r.Epoch.Term))
}

// Validate checks a cold start: its configuration path is required.
func (r ColdStartRequest) Validate() error {
	return reqcheck.Join(
		reqcheck.Name("vm", r.VM),
		reqcheck.Path("config_path", r.ConfigPath),
		reqcheck.LeaderTerm("epoch.term", r.Epoch.Term),
	)
}

// Validate checks a list: a zero epoch is an operator's read-only look,
// any other must be a leader's.
func (r ListRequest) Validate() error {
	if r.Epoch.Term == 0 && r.Epoch.Seq == 0 {
		return nil
	}
	return reqcheck.Join(reqcheck.LeaderTerm("epoch.term", r.Epoch.Term))
}
