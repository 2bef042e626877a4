package xen

import (
	"errors"
	"strings"
	"testing"
)

// Every failure captured from real xl maps to the error a caller must see.
// errOther means a *ToolstackError with no recognised kind; nil means xl
// exited 0 (pause/unpause do that even when they fail; the driver then
// checks the state itself).
var errOther = errors.New("unrecognised toolstack failure")

func TestClassifyRealFailures(t *testing.T) {
	for _, tc := range []struct {
		file string
		want error
	}{
		{"xl-interface/32-xl-list-tiny2.txt", ErrDomainNotFound},
		{"xl-interface/33-xl-list-nosuch.txt", ErrDomainNotFound},
		{"xl-interface/34-xl-list-99.txt", ErrDomainNotFound},
		{"xl-interface/35-xl-list-l-nosuch.txt", ErrDomainNotFound},
		{"xl-interface/38-xl-save-nosuch-x-img.txt", ErrDomainNotFound},
		{"xl-interface/39-xl-save-99-x-img.txt", ErrDomainNotFound},
		{"xl-interface/40-xl-save-tiny-nonexistent-dir-x-img.txt", errOther},
		{"xl-interface/41-xl-restore-does-not-exist-img.txt", ErrBadImage},
		{"xl-interface/42-xl-restore-garbage-img.txt", ErrBadImage},
		{"xl-interface/43-xl-restore-p-tiny-chk-img.txt", ErrDomainExists},
		{"xl-interface/44-xl-destroy-nosuch.txt", ErrDomainNotFound},
		{"xl-interface/45-xl-destroy-99.txt", ErrDomainNotFound},
		{"xl-interface/46-xl-pause-nosuch.txt", ErrDomainNotFound},
		{"xl-interface/47-xl-unpause-nosuch.txt", ErrDomainNotFound},
		{"xl-interface/48-xl-pause-99.txt", nil},
		{"xl-interface/49-xl-create-tiny-cfg.txt", ErrDomainExists},
		{"xl-interface/50-xl-save-0-dom0-img.txt", ErrGuestUnresponsive},
		{"xl-interface/51-xl-destroy-0.txt", errOther},
		{"xl-interface/52-xl-bogus-subcommand.txt", errOther},
		{"xl-interface/53-xl-unpause-tiny.txt", nil},
		{"xl-interface/56-xl-save-c-tpvh-tpvh-chk-img.txt", ErrGuestUnresponsive},
		{"xl-interface/57-xl-restore-tpvh-img.txt", ErrDomainExists},
		{"xl-interface/59-xl-save-big-big2-img.txt", errOther}, // ENOSPC
		{"lab/16-xl-save-c-tiny-chk-img.txt", ErrGuestUnresponsive},
		{"lab/18-xl-save-p-tiny-p-img.txt", ErrGuestUnresponsive},
		{"lab/21-xl-restore-p-tiny2-cfg-chk-img.txt", ErrBadImage}, // partial image of the failed save
		{"lab/24-xl-restore-p-img.txt", ErrDomainExists},
		{"lab/25-xl-create-tiny-cfg.txt", ErrDomainExists},
		{"lab/26-xl-list-nosuch.txt", ErrDomainNotFound},
		{"lab/27-xl-list-l-nosuch.txt", ErrDomainNotFound},
		{"lab/28-xl-pause-nosuch.txt", ErrDomainNotFound},
		{"lab/29-xl-unpause-nosuch.txt", ErrDomainNotFound},
		{"lab/30-xl-destroy-nosuch.txt", ErrDomainNotFound},
		{"lab/31-xl-save-nosuch-x-img.txt", ErrDomainNotFound},
		{"lab/32-xl-pause-99.txt", nil},
		{"lab/33-xl-unpause-99.txt", nil},
		{"lab/34-xl-destroy-99.txt", ErrDomainNotFound},
		{"lab/35-xl-save-99-x-img.txt", ErrDomainNotFound},
		{"lab/36-xl-list-99.txt", ErrDomainNotFound},
		{"lab/37-xl-restore-does-not-exist-img.txt", ErrBadImage},
		{"lab/38-xl-restore-garbage-img.txt", ErrBadImage},
		{"lab/39-xl-restore-p-tiny2-cfg-trunc-img.txt", ErrBadImage},
		{"lab/41-xl-save-tiny-nonexistent-dir-x-img.txt", errOther},
		{"lab/44-xl-list-tiny.txt", ErrDomainNotFound},
		{"lab/47-xl-destroy-tiny2.txt", ErrDomainNotFound},
		{"lab/51-xl-bogus-subcommand.txt", errOther},
		{"lab-killed-save/04-xl-unpause-tiny.txt", nil}, // fails, exits 0: Unpause's check catches it
	} {
		s := loadSample(t, tc.file)
		args := strings.Fields(s.Cmd)[1:]
		res := xlResult{ExitCode: s.Exit, Stderr: s.Output}
		if strings.HasPrefix(tc.file, "lab") {
			res = xlResult{ExitCode: s.Exit, Stdout: []byte(s.Stdout), Stderr: s.Stderr}
		}
		err := classify(args[0], "x", args, res)
		switch {
		case tc.want == nil:
			if err != nil {
				t.Errorf("%s: got %v, want success", tc.file, err)
			}
			continue
		case err == nil:
			t.Errorf("%s: got success, want %v", tc.file, tc.want)
			continue
		}
		var te *ToolstackError
		if !errors.As(err, &te) || te.ExitCode != s.Exit || te.Stderr != res.Stderr {
			t.Errorf("%s: %v is not a complete *ToolstackError", tc.file, err)
		}
		if tc.want == errOther {
			if te != nil && te.Kind != nil {
				t.Errorf("%s: got kind %v, want none", tc.file, te.Kind)
			}
		} else if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.file, err, tc.want)
		}
	}
}

func TestToolstackErrorMessage(t *testing.T) {
	s := loadSample(t, "lab/25-xl-create-tiny-cfg.txt")
	err := classify("create", "/etc/xen/tiny.cfg", []string{"create", "/etc/xen/tiny.cfg"}, xlResult{ExitCode: 3, Stderr: s.Stderr})
	msg := err.Error()
	for _, want := range []string{"xl create /etc/xen/tiny.cfg", "domain already exists", "exit status 3", "Destruction of domain failed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}
