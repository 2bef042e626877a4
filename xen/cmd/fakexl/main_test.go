package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The fake's output is compared with real xl 4.17's, captured in the nested
// lab (../../testdata/lab, stdout and stderr apart) and in the shared
// xl-interface.md (../../testdata/xl-interface). Only what cannot match is
// normalised: paths of this test's temp files, UUIDs, domain ids that
// depend on the capture's history, and the config size in "info 0x3/0x0/N".

// labSample returns a lab capture's exit status, stdout and stderr.
func labSample(t *testing.T, name string) (int, string, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../testdata/lab", name))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(data), "\n")
	exitLine, rest, _ := strings.Cut(rest, "\n")
	var code int
	if _, err := fmt.Sscanf(exitLine, "[exit code: %d]", &code); err != nil {
		t.Fatal(err)
	}
	out, errOut, _ := strings.Cut(strings.TrimPrefix(rest, "-- stdout --\n"), "-- stderr --\n")
	return code, out, errOut
}

type fakeRun struct {
	t     *testing.T
	dir   string
	state string
}

func newFakeRun(t *testing.T) *fakeRun {
	f := &fakeRun{t: t, dir: t.TempDir(), state: t.TempDir()}
	t.Setenv("FAKEXL_STATE", f.state)
	t.Setenv("FAKEXL_SUSPEND_TIMEOUT", "10ms")
	for _, n := range []string{"tiny.cfg", "tiny2.cfg"} {
		data, err := os.ReadFile(filepath.Join("../../testdata/cfg", n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(f.dir, n), data, 0o644)
	}
	return f
}

// xl runs one fake xl invocation in-process. "$D" in an argument stands
// for the test's directory.
func (f *fakeRun) xl(args ...string) (int, string, string) {
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "$D", f.dir)
	}
	var o, e bytes.Buffer
	code := run(args, &o, &e)
	return code, o.String(), e.String()
}

var (
	reUUID   = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	reDomID  = regexp.MustCompile(`(Domain |domain |Dom )\d+`)
	reInfo   = regexp.MustCompile(`info 0x3/0x0/\d+`)
	reLabDir = regexp.MustCompile(`/etc/xen|/var/lib/xen/images`)
)

func (f *fakeRun) norm(s string) string {
	s = strings.ReplaceAll(s, f.dir, "$D")
	s = reLabDir.ReplaceAllString(s, "$$D")
	s = reUUID.ReplaceAllString(s, "UUID")
	s = reDomID.ReplaceAllString(s, "${1}N")
	return reInfo.ReplaceAllString(s, "info 0x3/0x0/N")
}

// same runs a fake command and compares it with a lab capture.
func (f *fakeRun) same(capture string, args ...string) {
	f.t.Helper()
	wantCode, wantOut, wantErr := labSample(f.t, capture)
	code, out, errOut := f.xl(args...)
	if code != wantCode || f.norm(out) != f.norm(wantOut) || f.norm(errOut) != f.norm(wantErr) {
		f.t.Errorf("xl %v (vs %s):\nexit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
			args, capture, code, wantCode, f.norm(out), f.norm(wantOut), f.norm(errOut), f.norm(wantErr))
	}
}

func TestFakeMatchesRealXL(t *testing.T) {
	f := newFakeRun(t)
	f.same("04-xl-create-tiny-cfg.txt", "create", "$D/tiny.cfg")
	f.same("08-xl-list-l-tiny.txt", "list", "-l", "tiny")
	f.same("10-xl-unpause-tiny.txt", "unpause", "tiny")
	f.same("11-xl-pause-tiny.txt", "pause", "tiny")
	f.same("16-xl-save-c-tiny-chk-img.txt", "save", "-c", "tiny", "$D/chk.img") // paused: no suspend ack
	f.same("14-xl-unpause-tiny.txt", "unpause", "tiny")
	f.same("25-xl-create-tiny-cfg.txt", "create", "$D/tiny.cfg")
	for _, c := range []struct {
		capture string
		args    []string
	}{
		{"26-xl-list-nosuch.txt", []string{"list", "nosuch"}},
		{"27-xl-list-l-nosuch.txt", []string{"list", "-l", "nosuch"}},
		{"28-xl-pause-nosuch.txt", []string{"pause", "nosuch"}},
		{"29-xl-unpause-nosuch.txt", []string{"unpause", "nosuch"}},
		{"30-xl-destroy-nosuch.txt", []string{"destroy", "nosuch"}},
		{"31-xl-save-nosuch-x-img.txt", []string{"save", "nosuch", "$D/x.img"}},
		{"32-xl-pause-99.txt", []string{"pause", "99"}},
		{"33-xl-unpause-99.txt", []string{"unpause", "99"}},
		{"34-xl-destroy-99.txt", []string{"destroy", "99"}},
		{"35-xl-save-99-x-img.txt", []string{"save", "99", "$D/x.img"}},
		{"36-xl-list-99.txt", []string{"list", "99"}},
		{"37-xl-restore-does-not-exist-img.txt", []string{"restore", "$D/does-not-exist.img"}},
		{"41-xl-save-tiny-nonexistent-dir-x-img.txt", []string{"save", "tiny", "/nonexistent-dir/x.img"}},
		{"51-xl-bogus-subcommand.txt", []string{"bogus-subcommand"}},
	} {
		f.same(c.capture, c.args...)
	}
	os.WriteFile(filepath.Join(f.dir, "garbage.img"), []byte("garbage\n"), 0o644)
	f.same("38-xl-restore-garbage-img.txt", "restore", "$D/garbage.img")
	f.same("42-xl-save-tiny-tiny-img.txt", "save", "tiny", "$D/tiny.img")
	f.same("44-xl-list-tiny.txt", "list", "tiny")
	f.same("45-xl-restore-tiny-img.txt", "restore", "$D/tiny.img")
	f.same("48-xl-destroy-tiny.txt", "destroy", "tiny")
	f.same("47-xl-destroy-tiny2.txt", "destroy", "tiny2")
}

// Restoring over a live name fails like xl: same messages, exit 1.
func TestFakeRestoreExists(t *testing.T) {
	f := newFakeRun(t)
	f.xl("create", "$D/tiny.cfg")
	if code, _, e := f.xl("save", "-c", "tiny", "$D/tiny-chk.img"); code != 0 {
		t.Fatal(e)
	}
	code, _, e := f.xl("restore", "-p", "$D/tiny-chk.img")
	want := loadInterface(t, "43-xl-restore-p-tiny-chk-img.txt")
	if code != 1 || f.norm(e) != f.norm(want) {
		t.Errorf("exit %d\n%s\nwant\n%s", code, f.norm(e), f.norm(want))
	}
}

// loadInterface returns an xl-interface sample's output (both streams).
func loadInterface(t *testing.T, name string) string {
	data, err := os.ReadFile(filepath.Join("../../testdata/xl-interface", name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	return strings.Join(lines[1:len(lines)-1], "\n") + "\n"
}

// The listing formats match the real ones byte for byte.
func TestFakeListFormats(t *testing.T) {
	real := loadInterface(t, "02-xl-list.txt")
	got := listHeader +
		listRow("Domain-0", 0, 1536, 1, "r-----", 12500*time.Millisecond) +
		listRow("tiny", 1, 128, 1, "-b----", 3400*time.Millisecond)
	if got != real {
		t.Errorf("xl list:\n%q\nwant\n%q", got, real)
	}
	f := newFakeRun(t)
	f.xl("create", "$D/tiny.cfg")
	_, out, _ := f.xl("list", "-l")
	if want := loadInterface(t, "10-xl-list-l.txt"); f.norm(out) != f.norm(want) {
		t.Errorf("xl list -l:\n%s\nwant\n%s", out, want)
	}
	_, out, _ = f.xl("list")
	lines := strings.Split(out, "\n")
	if len(lines) != 4 || lines[0]+"\n" != listHeader || !strings.HasPrefix(lines[2], "tiny                                         1   128     1     r-----  ") {
		t.Errorf("xl list:\n%s", out)
	}
}

func TestFakeInfoFormat(t *testing.T) {
	f := newFakeRun(t)
	t.Setenv("FAKEXL_TOTAL_MEMORY", "4095")
	_, want, _ := labSample(t, "01-xl-info.txt")
	_, got, _ := f.xl("info")
	want = regexp.MustCompile(`free_memory +: \d+`).ReplaceAllString(want, "free_memory")
	got = regexp.MustCompile(`free_memory +: \d+`).ReplaceAllString(got, "free_memory")
	if got != want {
		t.Errorf("xl info:\n%s\nwant\n%s", got, want)
	}
}

func TestFakeUsage(t *testing.T) {
	newFakeRun(t)
	var o, e bytes.Buffer
	if code := run(nil, &o, &e); code != 1 || !strings.HasPrefix(o.String(), "Usage xl [-vfNtT] <subcommand> [args]\n") {
		t.Errorf("xl with no arguments: %d %q", code, o.String())
	}
	if code := run([]string{"-v", "list"}, &o, &e); code != 0 {
		t.Errorf("xl -v list: %d", code)
	}
	if code := run([]string{"pause"}, &o, &e); code != 2 {
		t.Errorf("xl pause without a domain: %d", code)
	}
	t.Setenv("FAKEXL_STATE", "")
	if code := run([]string{"list"}, &o, &e); code != 1 || !strings.Contains(e.String(), "FAKEXL_STATE") {
		t.Errorf("without FAKEXL_STATE: %d %q", code, e.String())
	}
}

// A power cut leaves nothing to list, and the host can boot guests again.
func TestFakePowerOffRemovesEveryGuest(t *testing.T) {
	f := newFakeRun(t)
	f.xl("create", "$D/tiny.cfg")
	f.xl("create", "$D/tiny2.cfg")
	if code, _, e := f.xl("sim-poweroff"); code != 0 {
		t.Fatalf("sim-poweroff: %d %s", code, e)
	}
	if _, out, _ := f.xl("list"); strings.Count(out, "\n") != 2 {
		t.Errorf("guests left after sim-poweroff:\n%s", out)
	}
	if code, _, e := f.xl("create", "$D/tiny.cfg"); code != 0 {
		t.Errorf("create after sim-poweroff: %d %s", code, e)
	}
	if code, _, _ := f.xl("sim-poweroff", "tiny"); code != 2 {
		t.Errorf("sim-poweroff with an argument: %d", code)
	}
}
