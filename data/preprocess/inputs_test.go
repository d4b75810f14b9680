package preprocess

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExpandInputs(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"a/2.png", "a/10.JPG", "a/b/1.webp", "a/b/notes.txt", "a/.hidden.png", "a/.git/x.png",
		"c/x.gif", "c/y.bmp", "c/z.jpeg", "c/readme.md", "empty/notes.txt", "top.png", "plain.data",
	} {
		writeTemp(t, dir, f, []byte("x"))
	}
	if err := os.Mkdir(filepath.Join(dir, "nothing"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := func(s string) string { return filepath.Join(dir, filepath.FromSlash(s)) }
	cases := []struct {
		name    string
		args    []string
		want    []string
		wantErr string // part of the error; the named path is checked too
	}{
		{"directory, walked in lexical order", []string{p("a")}, []string{p("a/10.JPG"), p("a/2.png"), p("a/b/1.webp")}, ""},
		{"a file is taken whatever its name", []string{p("plain.data"), p("top.png")}, []string{p("plain.data"), p("top.png")}, ""},
		{"glob keeps images, walks directories", []string{p("c/*"), p("a*")}, []string{p("c/x.gif"), p("c/y.bmp"), p("c/z.jpeg"), p("a/10.JPG"), p("a/2.png"), p("a/b/1.webp")}, ""},
		{"duplicates keep their first place", []string{p("top.png"), p("a/b"), p("a"), dir + "/./top.png"}, []string{p("top.png"), p("a/b/1.webp"), p("a/10.JPG"), p("a/2.png")}, ""},
		{"missing path", []string{p("top.png"), p("nope.png")}, nil, "does not exist"},
		{"glob matching nothing", []string{p("c/*.tiff")}, nil, "matches nothing"},
		{"glob matching no image", []string{p("c/*.md")}, nil, "no image files"},
		{"directory without images", []string{p("empty")}, nil, "no image files"},
		{"empty directory", []string{p("nothing")}, nil, "no image files"},
		{"bad pattern", []string{p("c/[")}, nil, "syntax error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ExpandInputs(c.args)
			if c.wantErr != "" {
				last := c.args[len(c.args)-1]
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), last) {
					t.Fatalf("got %v, %v; want an error naming %s, saying %q", got, err, last, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}
