package main

import (
	"bufio"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/internal/npy"
)

// writePNGs writes n colour PNGs of different sizes (so resizing and
// cropping happen) into dir and returns their paths in lexical order.
func writePNGs(t *testing.T, dir string, n int) []string {
	t.Helper()
	var paths []string
	for i := range n {
		w, h := 20+7*i, 40-3*i
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				m.Set(x, y, color.RGBA{uint8(x * 9), uint8(y * 5), uint8(i * 40), 255})
			}
		}
		p := filepath.Join(dir, "img"+string(rune('a'+i))+".png")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, m); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	return paths
}

func TestEmbedImageFiles(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	if code, _, stderr := runCLI("export", "--arch", "resnet18-cifar", "--seed", "3", "--out", model); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	imgs := filepath.Join(dir, "imgs")
	os.Mkdir(imgs, 0o755)
	paths := writePNGs(t, imgs, 3)

	// Flags after the positional arguments, a folder walked in order.
	jl := filepath.Join(dir, "e.jsonl")
	code, stdout, stderr := runCLI("embed", model, imgs, "--out", jl, "--engine", "go")
	if code != 0 {
		t.Fatalf("embed: %s", stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); lines[len(lines)-1] != jl {
		t.Errorf("last stdout line %q, want the output path", lines[len(lines)-1])
	}
	f, err := os.Open(jl)
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		File      string    `json:"file"`
		Embedding []float32 `json:"embedding"`
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			File      string    `json:"file"`
			Embedding []float32 `json:"embedding"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	f.Close()
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	for i, r := range rows {
		if r.File != paths[i] || len(r.Embedding) != 512 {
			t.Errorf("row %d: file %s (%d values), want %s (512)", i, r.File, len(r.Embedding), paths[i])
		}
	}

	// The .npy rows are the same numbers in the same order.
	np := filepath.Join(dir, "e.npy")
	if code, _, stderr := runCLI("embed", model, paths[0], paths[1], paths[2], "--out", np, "--engine", "go"); code != 0 {
		t.Fatalf("embed npy: %s", stderr)
	}
	a, err := npy.ReadFile(np)
	if err != nil {
		t.Fatal(err)
	}
	x := a.Data.([]float32)
	for i, r := range rows {
		for j, v := range r.Embedding {
			if x[i*512+j] != v {
				t.Fatalf("npy row %d differs from jsonl at %d", i, j)
			}
		}
	}

	// An undecodable file stops the run with nothing written, and names it.
	bad := filepath.Join(imgs, "imgz.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\ntruncated"), 0o644)
	out := filepath.Join(dir, "bad.npy")
	code, _, stderr = runCLI("embed", model, imgs, "--out", out, "--engine", "go")
	if code == 0 || !strings.Contains(stderr, bad) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("bad file: exit %d, stderr %q; want one line naming %s", code, stderr, bad)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed embed left its output behind")
	}
	// --on-decode-error skip warns and leaves it out.
	code, _, stderr = runCLI("embed", model, imgs, "--out", out, "--engine", "go", "--on-decode-error", "skip")
	if code != 0 || !strings.Contains(stderr, "warning: skipping "+bad) {
		t.Fatalf("skip: exit %d, stderr %q", code, stderr)
	}
	if a, err := npy.ReadFile(out); err != nil || a.Shape[0] != 3 {
		t.Fatalf("skip: %v rows, %v; want 3", a, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"embed", model, imgs, "--out", filepath.Join(dir, "nope", "e.npy")}, "does not exist"},
		{[]string{"embed", model, filepath.Join(dir, "missing.png"), "--out", out}, "missing.png"},
		{[]string{"embed", model, imgs, "--out", filepath.Join(dir, "e.csv")}, ".npy or .jsonl"},
		{[]string{"embed", "simclr-resnet18-fmnsit", imgs, "--out", out}, "did you mean"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
}
