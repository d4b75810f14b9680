package text

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ErrInvalidUTF8 is wrapped by errors about invalid UTF-8 in strict mode.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// CheckUTF8 returns an error naming the byte offset of the first invalid
// UTF-8 sequence in s, or nil.
func CheckUTF8(s string) error {
	if utf8.ValidString(s) {
		return nil
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return fmt.Errorf("%w at byte %d (0x%02x)", ErrInvalidUTF8, i, s[i])
		}
		i += n
	}
	return ErrInvalidUTF8
}

// Basic is BERT's basic tokenizer: text cleanup, CJK splitting, optional
// lower-casing and accent stripping, then splitting on whitespace and
// punctuation. Its output words are what WordPiece cuts into pieces.
//
// Character classes follow the original BERT code and Hugging Face's
// tokenizers: control characters are Unicode categories Cc, Cf, Co and Cs
// except tab, newline and carriage return (these three are whitespace);
// NUL and U+FFFD are dropped too; whitespace is Unicode White_Space;
// punctuation is category P plus every ASCII symbol (so "$", "+", "^", "`"
// split like "."). Lower-casing uses full Unicode lower-case mapping (U+0130
// becomes "i" + U+0307; a capital sigma at the end of a word becomes final
// sigma), like Python's str.lower. Accent stripping is NFD followed by
// removing every nonspacing mark (category Mn), which, as in BERT, also leaves
// other characters in decomposed form (Hangul syllables become jamo).
type Basic struct {
	Lowercase bool
	// StripAccents removes accents; BERT's uncased models strip accents
	// whenever they lower-case.
	StripAccents bool
	// SplitCJK puts every CJK ideograph in a word of its own.
	SplitCJK bool
}

// Normalize applies cleanup, CJK spacing, lower-casing and accent stripping
// and returns the normalised text (whitespace runs become single spaces only
// in the sense that every whitespace character becomes " ").
func (b Basic) Normalize(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		switch {
		case r == 0 || r == utf8.RuneError || isControl(r):
			continue
		case unicode.IsSpace(r):
			sb.WriteByte(' ')
		case b.SplitCJK && isCJK(r):
			sb.WriteByte(' ')
			sb.WriteRune(r)
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	out := sb.String()
	if b.Lowercase {
		out = lower(out)
	}
	if b.StripAccents {
		out = stripAccents(out)
	}
	return out
}

// Split normalises s and returns its words: maximal runs of non-space,
// non-punctuation characters, and every punctuation character alone.
func (b Basic) Split(s string) []string {
	return splitWords(b.Normalize(s), nil)
}

func splitWords(s string, out []string) []string {
	start := -1
	for i, r := range s {
		switch {
		case r == ' ':
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		case isPunct(r):
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			out = append(out, s[i:i+utf8.RuneLen(r)])
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.Is(unicode.C, r)
}

func isPunct(r rune) bool {
	if r < 128 {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return unicode.IsPunct(r)
}

// isCJK covers the CJK Unified Ideographs blocks that BERT splits (not
// Hangul, Hiragana or Katakana, which are written with spaces).
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func stripAccents(s string) string {
	if isASCII(s) {
		return s
	}
	d := norm.NFD.String(s)
	var sb strings.Builder
	sb.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// lower is Unicode full lower-casing (Python's str.lower): simple mappings
// plus the two special cases that are not one rune to one rune or that
// depend on context.
func lower(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	var sb strings.Builder
	sb.Grow(len(s))
	for i, r := range s {
		switch r {
		case 0x130: // LATIN CAPITAL LETTER I WITH DOT ABOVE
			sb.WriteString("i\u0307")
		case 0x3A3: // GREEK CAPITAL LETTER SIGMA
			if finalSigma(s, i) {
				sb.WriteRune(0x3C2)
			} else {
				sb.WriteRune(0x3C3)
			}
		default:
			sb.WriteRune(unicode.ToLower(r))
		}
	}
	return sb.String()
}

// finalSigma is Unicode's Final_Sigma condition for the sigma at byte i: a
// cased letter before it and none after it, skipping case-ignorable
// characters on both sides.
func finalSigma(s string, i int) bool {
	before := false
	for j := i; j > 0; {
		r, n := utf8.DecodeLastRuneInString(s[:j])
		j -= n
		if caseIgnorable(r) {
			continue
		}
		before = cased(r)
		break
	}
	if !before {
		return false
	}
	for j := i + utf8.RuneLen(0x3A3); j < len(s); {
		r, n := utf8.DecodeRuneInString(s[j:])
		j += n
		if caseIgnorable(r) {
			continue
		}
		return !cased(r)
	}
	return true
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// caseIgnorable approximates the Case_Ignorable property: the categories it
// is made of plus the Word_Break MidLetter/MidNumLet/Single_Quote characters.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
