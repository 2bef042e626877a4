package xen

import (
	"context"
	"time"
)

// Hypervisor is the only door to a hypervisor. Every call takes a context
// first; its deadline bounds the whole operation (for the xl driver: the
// toolstack child is killed when it expires, and the error wraps ErrTimeout
// and context.DeadlineExceeded).
//
// Domains are named by their xl name (a numeric domain id is also accepted by
// the xl driver, as xl itself does). Implementations are safe for concurrent
// use; two calls on the same domain at once are the caller's business, as
// they are with xl.
type Hypervisor interface {
	// List returns the guest domains on this host (Domain-0 excluded), ordered
	// by domain id.
	List(ctx context.Context) ([]Domain, error)
	// Pause stops a domain from being scheduled. Pausing a paused domain is
	// not an error.
	Pause(ctx context.Context, dom string) error
	// Unpause lets a paused domain run again. Unpausing a running domain is
	// not an error.
	Unpause(ctx context.Context, dom string) error
	// Save writes the domain's memory image to path. The mode says what
	// becomes of the domain afterwards.
	Save(ctx context.Context, dom, path string, opts SaveOptions) error
	// Restore builds a domain from an image written by Save.
	Restore(ctx context.Context, path string, opts RestoreOptions) error
	// Create boots a domain from an xl configuration file.
	Create(ctx context.Context, cfgPath string) error
	// Destroy kills a domain at once (the power cord, not a shutdown).
	Destroy(ctx context.Context, dom string) error
	// HostInfo reports the host's memory, which placement needs.
	HostInfo(ctx context.Context) (HostInfo, error)
}

// Domain is one guest domain as a hypervisor lists it.
type Domain struct {
	// Name is empty for a domain that real xl lists as "(null)" because it
	// cannot read its name: one that `xl create` or `xl restore` is still
	// building (seen paused with no memory yet) or `xl destroy` is tearing
	// down (seen still running): docs/evidence/xl-list-unnamed-domains.log.
	// Such a domain is nobody's VM yet, or any more; act on it by ID.
	Name string
	ID   int // Xen domain id; a restored domain gets a new one
	UUID string
	Type string // "pv", "pvh", "hvm"; empty when unknown
	// State is the summary of Flags that callers act on.
	State State
	// Flags is the raw xl State column ("-bp---"), kept for logs.
	Flags     string
	MemoryMiB uint64
	VCPUs     int
	// CPUTime is the CPU time Xen accounted to the domain (xl list "Time(s)").
	// It restarts near zero after a restore.
	CPUTime time.Duration
	// Progress is the simulated workload's counter; only the sim driver
	// fills it (a real guest's progress is not visible to the toolstack).
	Progress uint64
}

// SaveMode says what becomes of a domain after Save.
type SaveMode int

const (
	// SaveStop saves and destroys the domain (plain `xl save`).
	SaveStop SaveMode = iota
	// SaveKeepRunning checkpoints and lets the domain continue (`xl save -c`).
	SaveKeepRunning
	// SaveLeavePaused checkpoints and leaves the domain paused (`xl save -p`),
	// which coordinated checkpoints of a group need.
	SaveLeavePaused
)

// String names the mode after its xl flag, for logs.
func (m SaveMode) String() string {
	switch m {
	case SaveStop:
		return "stop"
	case SaveKeepRunning:
		return "keep-running"
	case SaveLeavePaused:
		return "leave-paused"
	}
	return "SaveMode(?)"
}

// SaveOptions tunes Save.
type SaveOptions struct {
	Mode SaveMode
	// ConfigPath, when set, is stored in the image instead of the domain's
	// own configuration (`xl save dom file cfg`).
	ConfigPath string
}

// RestoreOptions tunes Restore.
type RestoreOptions struct {
	// ConfigPath, when set, replaces the configuration stored in the image.
	// Restoring a checkpoint while the original domain still runs needs one
	// with a different name: xl refuses a second domain of the same name.
	ConfigPath string
	// Paused leaves the restored domain paused (`xl restore -p`), so that a
	// group can be unpaused only once every member is back.
	Paused bool
}

// HostInfo is what a placement decision needs to know about a host.
type HostInfo struct {
	Host           string
	XenVersion     string
	NrCPUs         int
	TotalMemoryMiB uint64
	FreeMemoryMiB  uint64
}
