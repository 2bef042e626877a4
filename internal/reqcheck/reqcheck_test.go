package reqcheck_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/xenft/xenft/internal/reqcheck"
)

// check is one value of a rule: refused when reason is set, with an error
// that contains it.
type check struct {
	in     string
	reason string
}

// each runs a rule over its table: accepted values give nil, refused ones a
// one-line *FieldError naming the field and saying why.
func each(t *testing.T, rule func(field, v string) *reqcheck.FieldError, cases []check) {
	t.Helper()
	for _, c := range cases {
		fe := rule("f", c.in)
		switch {
		case c.reason == "" && fe != nil:
			t.Errorf("%q refused: %v", c.in, fe)
		case c.reason != "" && fe == nil:
			t.Errorf("%q accepted, want refused: %s", c.in, c.reason)
		case fe != nil:
			msg := fe.Error()
			if fe.Field != "f" || !strings.HasPrefix(msg, "f ") || !strings.Contains(msg, c.reason) || strings.ContainsAny(msg, "\n\r\x00") {
				t.Errorf("%q: error %q, want one line naming field f and saying %q", c.in, msg, c.reason)
			}
		}
	}
}

func TestNameAcceptsOnlyNamesXlCannotMisread(t *testing.T) {
	each(t, reqcheck.Name, []check{
		{"vm1", ""},
		{"a", ""},
		{"0", ""},
		{"mpi-rank.3_b", ""},
		{"A.." + strings.Repeat("x", 125), ""}, // 128 bytes
		{"", "is required"},
		{strings.Repeat("x", 129), "is 129 bytes long, at most 128"},
		{"-x", "must start with a letter or digit"},
		{"--help", "must start with a letter or digit"},
		{".", "must start with a letter or digit"},
		{"..", "must start with a letter or digit"},
		{".hidden", "must start with a letter or digit"},
		{"_x", "must start with a letter or digit"},
		{"../../etc", "must start with a letter or digit"},
		{"vm/../x", `byte 2 is "/"`},
		{"a b", `byte 1 is " "`},
		{"a;rm -rf /", `byte 1 is ";"`},
		{"a$(id)", `byte 1 is "$"`},
		{"a`id`", "byte 1 is \"`\""},
		{"a\nb", `byte 1 is "\n"`},
		{"a\x00b", `byte 1 is "\x00"`},
		{`a\b`, `byte 1 is "\\"`},
		{"vmé", `byte 2 is "\xc3"`},
	})
}

func TestImageKeyStaysInsideTheStore(t *testing.T) {
	each(t, reqcheck.ImageKey, []check{
		{"g/1/vm1.img", ""},
		{"g", ""},
		{"", "is empty"},
		{"../../x", `segment ".."`},
		{"/etc/shadow", `segment ""`},
		{"g//vm.img", `segment ""`},
		{"g/1/\x00", `segment "\x00"`},
		{`g\1\vm.img`, `segment "g\\1\\vm.img"`},
		{"g/1/vm1.img.meta", "keeps for itself"},
	})
}

func TestSHA256IsSixtyFourLowerCaseHexDigits(t *testing.T) {
	each(t, reqcheck.SHA256, []check{
		{strings.Repeat("0", 64), ""},
		{"0123456789abcdef" + strings.Repeat("f", 48), ""},
		{"", "64 lower-case hexadecimal digits"},
		{strings.Repeat("0", 63), "64 lower-case"},
		{strings.Repeat("0", 65), "64 lower-case"},
		{strings.Repeat("A", 64), "64 lower-case"},
		{strings.Repeat("g", 64), "64 lower-case"},
		{strings.Repeat("0", 63) + "\x00", "64 lower-case"},
	})
}

func TestPathIsAbsoluteCleanAndPrintable(t *testing.T) {
	each(t, reqcheck.Path, []check{
		{"/etc/xen/vm1.cfg", ""},
		{"/", ""},
		{"/srv/xen configs/vm 1.cfg", ""},
		{"", "is required"},
		{"vm1.cfg", "must be an absolute path"},
		{"-x", "must be an absolute path"},
		{"./vm1.cfg", "must be an absolute path"},
		{"/etc/xen/../shadow", `must be a clean path ("/etc/shadow")`},
		{"/etc/xen/./vm1.cfg", "must be a clean path"},
		{"//etc/xen/vm1.cfg", "must be a clean path"},
		{"/etc/xen/", "must be a clean path"},
		{"/etc/xen/vm1.cfg\x00.png", "control byte"},
		{"/etc/xen/vm1\n.cfg", "control byte"},
		{"/" + strings.Repeat("a", reqcheck.MaxPathLen), "at most 4095"},
	})
	if fe := reqcheck.OptionalPath("f", ""); fe != nil {
		t.Errorf("empty optional path refused: %v", fe)
	}
	if fe := reqcheck.OptionalPath("f", "rel"); fe == nil {
		t.Error("relative optional path accepted")
	}
}

func TestNumbersAreBounded(t *testing.T) {
	for _, c := range []struct {
		name   string
		fe     *reqcheck.FieldError
		reason string
	}{
		{"size 1", reqcheck.Size("size", 1, 10), ""},
		{"size at the limit", reqcheck.Size("size", 10, 10), ""},
		{"size 0", reqcheck.Size("size", 0, 10), "size 0: must be positive"},
		{"size negative", reqcheck.Size("size", -5, 10), "size -5: must be positive"},
		{"size over the limit", reqcheck.Size("size", 11, 10), "size 11: exceeds the maximum of 10 bytes"},
		{"millis 0", reqcheck.Millis("max_pause_ms", 0, 10), ""},
		{"millis negative", reqcheck.Millis("max_pause_ms", -1, 10), "max_pause_ms -1: must be between 0 and 10"},
		{"millis over", reqcheck.Millis("max_pause_ms", 11, 10), "must be between 0 and 10"},
		{"term 1", reqcheck.LeaderTerm("epoch.term", 1), ""},
		{"term 0", reqcheck.LeaderTerm("epoch.term", 0), "epoch.term 0: is required"},
		{"seq 1", reqcheck.CheckpointSeq("seq", 1), ""},
		{"seq 0", reqcheck.CheckpointSeq("seq", 0), "seq 0: is required"},
	} {
		switch {
		case c.reason == "" && c.fe != nil:
			t.Errorf("%s refused: %v", c.name, c.fe)
		case c.reason != "" && (c.fe == nil || !strings.Contains(c.fe.Error(), c.reason)):
			t.Errorf("%s: %v, want %q", c.name, c.fe, c.reason)
		}
	}
}

// A request's problems come back together, on one line, each findable
// with errors.As.
func TestJoinGathersEveryRefusedFieldOnOneLine(t *testing.T) {
	if err := reqcheck.Join(nil, reqcheck.Name("vm", "vm1"), nil); err != nil {
		t.Fatalf("Join of no problem: %v", err)
	}
	err := reqcheck.Join(reqcheck.Name("vm", "-x"), reqcheck.Name("group", "g"), reqcheck.ImageKey("image_key", "../../x"))
	want := `invalid request: vm "-x": must start with a letter or digit (a leading '-' would reach xl as an option); image_key "../../x": segment ".." must be`
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Join: %v\nwant it to start with %s", err, want)
	}
	var fe *reqcheck.FieldError
	if !errors.As(err, &fe) || fe.Field != "vm" {
		t.Fatalf("errors.As finds %+v, want the vm field", fe)
	}
}

// A long value is repeated only in part, cut on a character boundary.
func TestQuoteCutsALongValue(t *testing.T) {
	if got := reqcheck.Quote("vm1"); got != `"vm1"` {
		t.Fatalf("Quote(vm1) = %s", got)
	}
	long := strings.Repeat("ü", 100) // 200 bytes; a cut at 64 would fall inside none
	got := reqcheck.Quote(long)
	if got != `"`+strings.Repeat("ü", 32)+`"... (200 bytes)` {
		t.Fatalf("Quote of 200 bytes = %s", got)
	}
	odd := "x" + strings.Repeat("ü", 100) // a cut at 64 would fall inside a character
	if got := reqcheck.Quote(odd); strings.Contains(got, `\x`) || !strings.HasSuffix(got, "... (201 bytes)") {
		t.Fatalf("Quote split a character: %s", got)
	}
	if fe := reqcheck.Name("vm", strings.Repeat("a", 1<<20)); len(fe.Error()) > 200 {
		t.Fatalf("the error about a 1 MiB name is %d bytes", len(fe.Error()))
	}
}
