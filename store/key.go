package store

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Keys come from the bus (a vm.restore's image_key, a checkpoint.upload's)
// and become file names in the directory store, so every store method
// checks its key here, whatever the caller checked before: a request that
// slipped past its own validation still cannot make a store read or write
// outside its root.

// MaxKeyLen bounds a key: far above <group>/<seq>/<vm>.img with names of
// 128 bytes, far below PATH_MAX once joined to a root.
const MaxKeyLen = 1024

// segmentRE is one path segment: it starts with a letter or digit, so it is
// never empty, ".", ".." or a hidden file, and holds no '/', '\\', NUL or
// other byte a file name or an object name could misread.
var segmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// tempRE is the suffix of the directory store's temporary files
// (writeAtomic): "<key>.tmp-<12 hex digits>".
var tempRE = regexp.MustCompile(`\.tmp-[0-9a-f]{12}$`)

// KeyError is a refused key and why. It matches ErrInvalidKey.
type KeyError struct {
	Key    string
	Reason string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("%v %s: %s", ErrInvalidKey, quote(e.Key), e.Reason)
}

// Is makes errors.Is(err, ErrInvalidKey) hold.
func (e *KeyError) Is(target error) bool { return target == ErrInvalidKey }

// ValidateKey accepts keys of '/'-separated segments of letters, digits, '.',
// '_' and '-', each starting with a letter or digit: no "..", no absolute
// path, no empty segment, no backslash or NUL, nothing a directory store
// could be tricked into writing outside its root. The last segment may not
// be one of the directory store's own names (a "<key>.meta" sidecar or a
// "<key>.tmp-<hex>" temporary), so no key can alias another key's files.
// The error is a *KeyError.
func ValidateKey(key string) error {
	if key == "" {
		return &KeyError{Key: key, Reason: "is empty"}
	}
	if len(key) > MaxKeyLen {
		return &KeyError{Key: key, Reason: fmt.Sprintf("is %d bytes long, at most %d", len(key), MaxKeyLen)}
	}
	segs := strings.Split(key, "/")
	for _, seg := range segs {
		if !segmentRE.MatchString(seg) {
			return &KeyError{Key: key, Reason: fmt.Sprintf("segment %s must be letters, digits, '.', '_' or '-', starting with a letter or digit", quote(seg))}
		}
	}
	last := segs[len(segs)-1]
	if strings.HasSuffix(last, metaSuffix) || tempRE.MatchString(last) {
		return &KeyError{Key: key, Reason: fmt.Sprintf("last segment %s is a name the directory store keeps for itself", quote(last))}
	}
	// Implied by the segment rule; checked on its own because a key that is
	// not a local path must never reach filepath.Join, whatever the rule
	// above becomes.
	if !filepath.IsLocal(filepath.FromSlash(key)) {
		return &KeyError{Key: key, Reason: "is not a path inside the store"}
	}
	return nil
}

// ImageKey is the key of one member's image in one checkpoint of a group:
// <group>/<seq>/<vm>.img (the layout DESIGN.md gives the directory store).
func ImageKey(group string, seq uint64, vm string) string {
	return group + "/" + strconv.FormatUint(seq, 10) + "/" + vm + ".img"
}

// CheckpointPrefix is the prefix of every image of one checkpoint.
func CheckpointPrefix(group string, seq uint64) string {
	return group + "/" + strconv.FormatUint(seq, 10) + "/"
}

// quotedMax is how many bytes of a refused key an error repeats: enough to
// recognise it, while a key of a megabyte does not become a log line of one.
const quotedMax = 64

// quote is s as %q quotes it (one line: newlines and control bytes are
// escaped), cut at quotedMax bytes on a character boundary, with the
// length of the whole when cut.
func quote(s string) string {
	if len(s) <= quotedMax {
		return strconv.Quote(s)
	}
	cut := quotedMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}
