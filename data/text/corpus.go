package text

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Document is one text of a corpus, already cut into sentences.
type Document struct {
	// Name identifies the document: a path relative to the corpus root, or
	// a Brown Corpus file id such as "ca01".
	Name string
	// Label is the document's class: the Brown genre, or the first folder
	// under a text folder's root; "" when there is none.
	Label     string
	Sentences []string
}

// LoadOptions controls how text files are read.
type LoadOptions struct {
	// StrictUTF8 rejects a file with invalid UTF-8 (the error names the
	// file and byte offset). Otherwise each invalid byte becomes U+FFFD,
	// which the tokenizer drops.
	StrictUTF8 bool
}

// ErrEmpty is wrapped by errors about a file or corpus with no text.
var ErrEmpty = errors.New("no text")

// ParseText turns raw text into a document: paragraphs are separated by
// blank lines, lines inside a paragraph are joined, and paragraphs are cut
// into sentences by SplitSentences. name is used in errors.
func ParseText(name string, data []byte, opts LoadOptions) (Document, error) {
	s := string(data)
	if opts.StrictUTF8 {
		if err := CheckUTF8(s); err != nil {
			return Document{}, fmt.Errorf("%s: %w", name, err)
		}
	} else if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	doc := Document{Name: name}
	for _, para := range paragraphs(s) {
		doc.Sentences = append(doc.Sentences, SplitSentences(para)...)
	}
	if len(doc.Sentences) == 0 {
		return doc, fmt.Errorf("%s: %w (empty or whitespace only)", name, ErrEmpty)
	}
	return doc, nil
}

// paragraphs splits on blank lines and joins each paragraph's lines with
// single spaces.
func paragraphs(s string) []string {
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, " "))
			cur = cur[:0]
		}
	}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			flush()
			continue
		}
		cur = append(cur, strings.Join(f, " "))
	}
	flush()
	return out
}

// abbreviations end in a period that does not end a sentence (compared in
// lower case, without the period). Single letters (initials) count too.
var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "dr": true, "st": true, "jr": true, "sr": true, "prof": true,
	"vs": true, "etc": true, "e.g": true, "i.e": true, "viz": true, "cf": true, "fig": true, "figs": true,
	"no": true, "vol": true, "p": true, "pp": true, "ch": true, "sect": true, "prop": true, "exper": true,
	"obs": true, "lib": true, "ed": true, "co": true, "inc": true, "ltd": true, "gen": true, "col": true,
	"capt": true, "lt": true, "sgt": true, "rev": true, "hon": true, "gov": true, "sen": true, "rep": true,
	"jan": true, "feb": true, "mar": true, "apr": true, "jun": true, "jul": true, "aug": true, "sep": true,
	"sept": true, "oct": true, "nov": true, "dec": true, "u.s": true, "a.m": true, "p.m": true, "knt": true,
}

// SplitSentences cuts a paragraph after ".", "!" or "?" (and any closing
// quotes or brackets) when whitespace and then an upper-case letter, a digit
// or an opening quote or bracket follow, unless the word before a "." is a
// known abbreviation or a single letter. It is a heuristic for English
// prose; corpora that come sentence-split (Brown) bypass it.
func SplitSentences(para string) []string {
	var out []string
	rs := []rune(strings.TrimSpace(para))
	start := 0
	for i := 0; i < len(rs); i++ {
		if rs[i] != '.' && rs[i] != '!' && rs[i] != '?' {
			continue
		}
		end := i + 1
		for end < len(rs) && strings.ContainsRune("\"')]}’”»", rs[end]) {
			end++
		}
		if end >= len(rs) || !unicode.IsSpace(rs[end]) {
			continue
		}
		next := end
		for next < len(rs) && unicode.IsSpace(rs[next]) {
			next++
		}
		if next >= len(rs) {
			break
		}
		if c := rs[next]; !(unicode.IsUpper(c) || unicode.IsDigit(c) || strings.ContainsRune("\"'([{‘“«_", c)) {
			continue
		}
		if rs[i] == '.' {
			w := i
			for w > start && !unicode.IsSpace(rs[w-1]) {
				w--
			}
			word := strings.ToLower(strings.TrimLeft(string(rs[w:i]), "\"'([{‘“«_"))
			if utf8.RuneCountInString(word) == 1 || abbreviations[word] {
				continue
			}
		}
		if s := strings.TrimSpace(string(rs[start:end])); s != "" {
			out = append(out, s)
		}
		start = next
		i = next - 1
	}
	if s := strings.TrimSpace(string(rs[start:])); s != "" {
		out = append(out, s)
	}
	return out
}

// LoadTextFile reads one plain-text file as a document named by its base
// name. An empty (or whitespace-only) file is an error wrapping ErrEmpty.
func LoadTextFile(path string, opts LoadOptions) (Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Document{}, fmt.Errorf("load text: %w", err)
	}
	return ParseText(filepath.Base(path), data, opts)
}

// LoadTextDir reads every *.txt file under root (recursively, in sorted
// order). A document's Name is its path relative to root and its Label the
// first folder of that path ("" for files directly in root). Empty files
// are skipped; a folder with no text at all is an error wrapping ErrEmpty.
func LoadTextDir(root string, opts LoadOptions) ([]Document, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.EqualFold(filepath.Ext(p), ".txt") {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load text folder %s: %w", root, err)
	}
	sort.Strings(paths)
	var docs []Document
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load text folder %s: %w", root, err)
		}
		doc, err := ParseText(filepath.ToSlash(rel), data, opts)
		if errors.Is(err, ErrEmpty) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load text folder %s: %w", root, err)
		}
		if dir, _, ok := strings.Cut(filepath.ToSlash(rel), "/"); ok {
			doc.Label = dir
		}
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("load text folder %s: %w in %d .txt files", root, ErrEmpty, len(paths))
	}
	return docs, nil
}

// OpticksPath is Newton's Opticks as shipped in the Go source tree
// ($GOROOT/src/testdata/Isaac.Newton-Opticks.txt), the smallest real English
// corpus available everywhere Go is.
func OpticksPath() string {
	return filepath.Join(goroot(), "src", "testdata", "Isaac.Newton-Opticks.txt")
}

// LoadOpticks reads Newton's Opticks from GOROOT as one document, with the
// Project Gutenberg italics markers ("_Reflections_") removed so that they
// do not become tokens.
func LoadOpticks() (Document, error) {
	data, err := os.ReadFile(OpticksPath())
	if err != nil {
		return Document{}, fmt.Errorf("load Opticks (from GOROOT; is the Go source tree installed?): %w", err)
	}
	return ParseText("Isaac.Newton-Opticks.txt", []byte(strings.ReplaceAll(string(data), "_", "")), LoadOptions{})
}

func goroot() string {
	if r := os.Getenv("GOROOT"); r != "" {
		return r
	}
	if r := runtime.GOROOT(); r != "" { //nolint:staticcheck // the fallback when GOROOT is unset
		return r
	}
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}
