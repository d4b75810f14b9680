package cache

import (
	"fmt"
	"strings"
)

// maxNameLen keeps NAME and FILE, plus the suffixes the cache adds, well
// under the 255-byte limit of common filesystems.
const maxNameLen = 200

// Suffixes the cache gives its own files next to FILE; a FILE may not end
// in them, or a download could be mistaken for bookkeeping.
const (
	incompleteSuffix = ".incomplete"
	lockSuffix       = ".lock"
)

// checkName accepts only names that are a single, plain path element:
// letters, digits and . _ - +, starting with a letter or digit, with no
// "..". That rules out separators, absolute paths, "." and "..", hidden
// files and names that a shell would mangle, so ROOT/NAME/FILE can never
// leave ROOT.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%s %.40q... is %d bytes long; the limit is %d", what, s, len(s), maxNameLen)
	}
	if !isAlnum(s[0]) {
		return fmt.Errorf("%s %q must start with a letter or digit", what, s)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !isAlnum(b) && b != '.' && b != '_' && b != '-' && b != '+' {
			return fmt.Errorf("%s %q holds %q; use only letters, digits and . _ - +", what, s, rune(b))
		}
	}
	if strings.Contains(s, "..") {
		return fmt.Errorf("%s %q holds \"..\"", what, s)
	}
	for _, suf := range []string{incompleteSuffix, lockSuffix} {
		if strings.HasSuffix(s, suf) {
			return fmt.Errorf("%s %q ends in %s, which the cache keeps for itself", what, s, suf)
		}
	}
	return nil
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// digestMatches reports whether a computed sha256 fits the pin: the whole
// digest or a prefix of it ("" only for Unpinned requests).
func digestMatches(got, pin string) bool { return strings.HasPrefix(got, pin) }

// checkSHA256 returns the digest (or a prefix of at least 8 digits) in
// lower case, or why it is not one.
func checkSHA256(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 8 || len(s) > 64 {
		return "", fmt.Errorf("sha256 %q is not 64 hex digits (or a published prefix of 8 or more); every pulled file must be pinned by its sha256", s)
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return "", fmt.Errorf("sha256 %q is not hex", s)
		}
	}
	return s, nil
}
