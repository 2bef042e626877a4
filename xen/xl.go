package xen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// XL drives the real Xen toolstack by running the xl binary, using only the
// argument forms of Xen 4.17's xl. The zero value runs "xl" from PATH. It
// holds no mutable state and is safe for concurrent use (xl itself takes a
// host-wide lock where it needs one).
type XL struct {
	// Path of the xl binary; "xl" (looked up in PATH) when empty. Tests
	// point it at the fake xl built from ./cmd/fakexl.
	Path string
	// Env is added to the agent's environment for every xl child.
	Env []string
	// WaitDelay bounds the wait for output pipes after xl exits or is
	// killed; 2 s when zero.
	WaitDelay time.Duration
	// MaxOutput caps the bytes of stdout kept per call (a quarter of it for
	// stderr); 4 MiB when zero. A listing larger than this is an error
	// rather than a silently cut JSON.
	MaxOutput int
}

var _ Hypervisor = (*XL)(nil)

// maxUnpauses bounds Unpause: Xen counts toolstack pauses, so a domain
// paused twice needs two unpauses, but a domain that stays paused after this
// many is held by someone else and the caller must hear about it.
const maxUnpauses = 8

// List runs `xl list -l` for the inventory and then plain `xl list` for the
// run state, which the JSON does not carry.
func (x *XL) List(ctx context.Context) ([]Domain, error) {
	res, err := x.run(ctx, "list", "", "-l")
	if err != nil {
		return nil, err
	}
	if err := classify("list", "", []string{"list", "-l"}, res); err != nil {
		return nil, err
	}
	fromJSON, err := parseListJSON(res.Stdout)
	if err != nil {
		return nil, err
	}
	res, err = x.run(ctx, "list", "")
	if err != nil {
		return nil, err
	}
	if err := classify("list", "", []string{"list"}, res); err != nil {
		return nil, err
	}
	rows, err := parseListTable(string(res.Stdout))
	if err != nil {
		return nil, err
	}
	return joinList(fromJSON, rows), nil
}

// lookup reads one domain's row with `xl list <dom>`.
func (x *XL) lookup(ctx context.Context, verb, dom string) (tableRow, error) {
	res, err := x.run(ctx, "list", dom, dom)
	if err != nil {
		return tableRow{}, err
	}
	if err := classify("list", dom, []string{"list", dom}, res); err != nil {
		if errors.Is(err, ErrDomainNotFound) {
			return tableRow{}, fmt.Errorf("xl %s %s: %w", verb, dom, err)
		}
		return tableRow{}, err
	}
	rows, err := parseListTable(string(res.Stdout))
	if err != nil {
		return tableRow{}, err
	}
	for _, r := range rows {
		if r.Name == dom || fmt.Sprint(r.ID) == dom {
			return r, nil
		}
	}
	return tableRow{}, fmt.Errorf("xl %s %s: not in xl list output: %w", verb, dom, ErrDomainNotFound)
}

func isPaused(r tableRow) bool { return len(r.Flags) == 6 && r.Flags[2] == 'p' }

// checkAlive refuses to pause or unpause a domain that cannot run again: xl
// would print an error and exit 0 (seen for a guest left suspended by a
// killed save), and the caller must destroy it instead.
func checkAlive(verb, dom string, r tableRow) error {
	if s := StateFromFlags(r.Flags); !s.Alive() {
		return fmt.Errorf("xl %s %s: domain is %s (%s): %w", verb, dom, s, r.Flags, ErrDomainNotAlive)
	}
	return nil
}

// Pause pauses a domain and checks with xl list that it is paused, because
// `xl pause` exits 0 even when it fails. A domain already paused is left
// alone: Xen counts pauses, and a second one would need a second unpause.
func (x *XL) Pause(ctx context.Context, dom string) error {
	if err := checkArg("pause", dom, dom); err != nil {
		return err
	}
	r, err := x.lookup(ctx, "pause", dom)
	if err != nil {
		return err
	}
	if err := checkAlive("pause", dom, r); err != nil || isPaused(r) {
		return err
	}
	res, err := x.run(ctx, "pause", dom, dom)
	if err != nil {
		return err
	}
	if err := classify("pause", dom, []string{"pause", dom}, res); err != nil {
		return err
	}
	if r, err = x.lookup(ctx, "pause", dom); err != nil {
		return err
	}
	if !isPaused(r) {
		return &ToolstackError{Verb: "pause", Domain: dom, Args: []string{"pause", dom}, ExitCode: res.ExitCode,
			Stderr: res.Stderr, Cause: fmt.Errorf("domain is %s (%s) after xl pause", StateFromFlags(r.Flags), r.Flags)}
	}
	return nil
}

// Unpause unpauses a domain until xl list shows it unpaused (see
// maxUnpauses), because `xl unpause` exits 0 even when it fails.
func (x *XL) Unpause(ctx context.Context, dom string) error {
	if err := checkArg("unpause", dom, dom); err != nil {
		return err
	}
	var last xlResult
	for i := 0; ; i++ {
		r, err := x.lookup(ctx, "unpause", dom)
		if err != nil {
			return err
		}
		if err := checkAlive("unpause", dom, r); err != nil {
			return err
		}
		if !isPaused(r) {
			return nil
		}
		if i == maxUnpauses {
			return &ToolstackError{Verb: "unpause", Domain: dom, Args: []string{"unpause", dom}, ExitCode: last.ExitCode,
				Stderr: last.Stderr, Cause: fmt.Errorf("domain still paused (%s) after %d xl unpause", r.Flags, i)}
		}
		if last, err = x.run(ctx, "unpause", dom, dom); err != nil {
			return err
		}
		if err := classify("unpause", dom, []string{"unpause", dom}, last); err != nil {
			return err
		}
	}
}

// Save runs `xl save [-c|-p] <dom> <path> [<cfg>]`. A paused domain is
// refused at once with ErrGuestUnresponsive instead of letting xl wait 60 s
// for a suspend acknowledgement that cannot come. On failure xl may leave a
// partial image at path; callers save to a fresh path and remove it.
func (x *XL) Save(ctx context.Context, dom, path string, opts SaveOptions) error {
	if err := checkArg("save", dom, dom, path); err != nil {
		return err
	}
	if err := checkOptional("save", dom, opts.ConfigPath); err != nil {
		return err
	}
	args := []string{}
	switch opts.Mode {
	case SaveKeepRunning:
		args = append(args, "-c")
	case SaveLeavePaused:
		args = append(args, "-p")
	case SaveStop:
	default:
		return fmt.Errorf("xl save %s: unknown save mode %d: %w", dom, opts.Mode, ErrBadArgument)
	}
	args = append(args, dom, path)
	if opts.ConfigPath != "" {
		args = append(args, opts.ConfigPath)
	}
	r, err := x.lookup(ctx, "save", dom)
	if err != nil {
		return err
	}
	if isPaused(r) {
		return fmt.Errorf("xl save %s: domain is paused (%s), so it cannot acknowledge the suspend request: %w",
			dom, r.Flags, ErrGuestUnresponsive)
	}
	res, err := x.run(ctx, "save", dom, args...)
	if err != nil {
		return err
	}
	return classify("save", dom, append([]string{"save"}, args...), res)
}

// Restore runs `xl restore [-p] [<cfg>] <path>`. The restored domain gets a
// new domain id.
func (x *XL) Restore(ctx context.Context, path string, opts RestoreOptions) error {
	if err := checkArg("restore", path, path); err != nil {
		return err
	}
	if err := checkOptional("restore", path, opts.ConfigPath); err != nil {
		return err
	}
	var args []string
	if opts.Paused {
		args = append(args, "-p")
	}
	if opts.ConfigPath != "" {
		args = append(args, opts.ConfigPath)
	}
	args = append(args, path)
	res, err := x.run(ctx, "restore", path, args...)
	if err != nil {
		return err
	}
	return classify("restore", path, append([]string{"restore"}, args...), res)
}

// Create runs `xl create <cfg>`. xl returns once the domain is built, not
// when its OS has booted.
func (x *XL) Create(ctx context.Context, cfgPath string) error {
	if err := checkArg("create", cfgPath, cfgPath); err != nil {
		return err
	}
	res, err := x.run(ctx, "create", cfgPath, cfgPath)
	if err != nil {
		return err
	}
	return classify("create", cfgPath, []string{"create", cfgPath}, res)
}

// Destroy runs `xl destroy <dom>`.
func (x *XL) Destroy(ctx context.Context, dom string) error {
	if err := checkArg("destroy", dom, dom); err != nil {
		return err
	}
	res, err := x.run(ctx, "destroy", dom, dom)
	if err != nil {
		return err
	}
	return classify("destroy", dom, []string{"destroy", dom}, res)
}

// HostInfo runs `xl info` and reads the host's memory from it.
func (x *XL) HostInfo(ctx context.Context) (HostInfo, error) {
	res, err := x.run(ctx, "info", "")
	if err != nil {
		return HostInfo{}, err
	}
	if err := classify("info", "", []string{"info"}, res); err != nil {
		return HostInfo{}, err
	}
	return parseInfo(string(res.Stdout))
}

// checkArg refuses arguments xl's option parser would misread. There is no
// shell to escape from, but a name like "-p" would still become a flag.
func checkArg(verb, subject string, args ...string) error {
	for _, a := range args {
		if a == "" || strings.HasPrefix(a, "-") || strings.ContainsRune(a, 0) {
			return fmt.Errorf("xl %s %s: argument %q: %w", verb, subject, a, ErrBadArgument)
		}
	}
	return nil
}

func checkOptional(verb, subject, arg string) error {
	if arg == "" {
		return nil
	}
	return checkArg(verb, subject, arg)
}
