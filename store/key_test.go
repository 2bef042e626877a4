package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/xenft/xenft/store"
)

// The key rule: what a directory store may turn into a file name under its
// root, and nothing else.
func TestValidateKeyAcceptsOnlyPathsInsideTheStore(t *testing.T) {
	accepted := []string{
		"g/1/vm1.img",
		store.ImageKey("mpi-job.2", 18446744073709551615, "vm_7"),
		"a",
		"0/a.b-c_d/e..f",   // ".." inside a segment is a plain name
		"g/1/vm.tmp-1.img", // not a temporary: the suffix is not .tmp-<12 hex>
		"g.meta/1/vm1.img", // only the last segment could alias a sidecar
		strings.Repeat("a", store.MaxKeyLen),
	}
	for _, key := range accepted {
		if err := store.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	refused := []struct{ key, reason string }{
		{"", "is empty"},
		{strings.Repeat("a", store.MaxKeyLen+1), "at most 1024"},
		{"../x", `segment ".."`},
		{"../../etc/passwd", `segment ".."`},
		{"g/../../x", `segment ".."`},
		{"g/./x", `segment "."`},
		{"/etc/passwd", `segment ""`},
		{"g//x", `segment ""`},
		{"g/x/", `segment ""`},
		{"g/.hidden", `segment ".hidden"`},
		{`g\..\x`, `segment "g\\..\\x"`},
		{"g/x\x00y", `segment "x\x00y"`},
		{"g/-x", `segment "-x"`},
		{"g/a b", `segment "a b"`},
		{"g/x\ny", `segment "x\ny"`},
		{"g/1/vm1.img.meta", "keeps for itself"},
		{"g/1/vm1.img.tmp-0123456789ab", "keeps for itself"},
		{"g/1/vm1.img.meta.tmp-0123456789ab", "keeps for itself"},
		{"C:/x", `segment "C:"`},
	}
	for _, c := range refused {
		err := store.ValidateKey(c.key)
		if !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", c.key, err)
			continue
		}
		var ke *store.KeyError
		if !errors.As(err, &ke) || ke.Key != c.key {
			t.Errorf("ValidateKey(%q): %v is not a *KeyError naming the key", c.key, err)
		}
		if msg := err.Error(); !strings.Contains(msg, c.reason) || strings.ContainsAny(msg, "\n\x00") {
			t.Errorf("ValidateKey(%q) = %q, want one line saying %q", c.key, msg, c.reason)
		}
	}
}

// A refused key of any length is repeated in the error only in part: a
// request cannot make a log line as long as itself.
func TestKeyErrorQuotesALongKeyInPart(t *testing.T) {
	key := strings.Repeat("é", 1000) + "/../x"
	msg := store.ValidateKey(key).Error()
	if len(msg) > 300 || !strings.Contains(msg, "(2005 bytes)") {
		t.Fatalf("error for a key of %d bytes is %d bytes: %q", len(key), len(msg), msg)
	}
	if strings.Contains(msg, `\x`) {
		t.Fatalf("the cut split a character: %q", msg)
	}
}
