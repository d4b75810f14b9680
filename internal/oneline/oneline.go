// Package oneline makes text from files, requests and libraries fit the
// one-line errors sslzoo prints: a hostile name or a multi-line library
// message must not break an error apart, and a huge value must not flood it.
package oneline

import (
	"strings"
	"unicode/utf8"
)

// Clip cuts s to at most n bytes (at a character boundary, marked by
// "...") and turns control characters, line breaks included, into spaces.
func Clip(s string, n int) string {
	if len(s) > n {
		i := max(n, 0)
		for i > 0 && !utf8.RuneStart(s[i]) {
			i-- // not inside a character
		}
		s = s[:i] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Flatten joins the lines and runs of blanks of s with single spaces.
func Flatten(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
