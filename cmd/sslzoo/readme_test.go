package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/conformance"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// envRunCLI makes the test binary act as the sslzoo command (TestMain), so
// that scripts a test runs can call the CLI without a separate build.
const envRunCLI = "SSLZOO_TEST_RUN_CLI"

// readmeBlocks returns the fenced code blocks of language lang in the
// README section headed heading.
func readmeBlocks(t *testing.T, heading, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no section %q", heading)
	}
	if end := strings.Index(sec, "\n## "); end >= 0 {
		sec = sec[:end]
	}
	if end := strings.Index(sec, "\n### "); end >= 0 {
		sec = sec[:end]
	}
	var blocks []string
	for {
		_, rest, ok := strings.Cut(sec, "```"+lang+"\n")
		if !ok {
			return blocks
		}
		code, after, ok := strings.Cut(rest, "```")
		if !ok {
			t.Fatalf("README: unterminated %s block in %q", lang, heading)
		}
		blocks, sec = append(blocks, code), after
	}
}

// writeBoot writes the first Fashion-MNIST test image (an ankle boot,
// which the Node snippet reads from the IDX file) to dir/boot.png, the
// image the README's snippets embed.
func writeBoot(t *testing.T, dir string) image.Image {
	t.Helper()
	idx, err := data.ReadIDX(filepath.Join(data.FashionMNISTDir, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Skipf("Fashion-MNIST (the README's boot.png): %v", err)
	}
	boot := &image.Gray{Pix: idx.Data[:28*28], Stride: 28, Rect: image.Rect(0, 0, 28, 28)}
	var buf bytes.Buffer
	if err := png.Encode(&buf, boot); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "boot.png"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return boot
}

// The README's Python and Node snippets run as written on the files the
// README's own commands export, and give the embeddings sslzoo.Encoder
// gives for the same image.
func TestReadmeSnippets(t *testing.T) {
	if err := onnxrt.Available(); err != nil {
		t.Skipf("ONNX Runtime: %v", err)
	}
	// Where ONNX Runtime and onnxruntime-node are found depends on the
	// cache, which the test moves.
	nodeModules, noNode := conformance.NodeModules(), conformance.NodeUnavailable()
	ortLib, err := onnxrt.FindLibrary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("SSLZOO_CACHE", filepath.Join(dir, "cache"))
	for _, args := range [][]string{
		{"export", "simclr-resnet18-fmnist", "--out", filepath.Join(dir, "fmnist.onnx")},
		{"export", "simclr-resnet18-fmnist", "--raw-pixels", "--out", filepath.Join(dir, "fmnist-u8.onnx")},
	} {
		if code, _, stderr := runCLI(args...); code != 0 {
			t.Fatalf("%v: %s", args, stderr)
		}
	}
	boot := writeBoot(t, dir)
	enc, err := sslzoo.Open(filepath.Join(dir, "fmnist.onnx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	want, err := enc.EmbedImages([]image.Image{boot})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	shim, err := filepath.Abs(filepath.Join("testdata", "ortshim"))
	if err != nil {
		t.Fatal(err)
	}
	const heading = "### From another stack"
	t.Run("python", func(t *testing.T) {
		if out, err := exec.Command("/usr/bin/python3", "-c", "import numpy, onnx, PIL").CombinedOutput(); err != nil {
			t.Skipf("/usr/bin/python3 lacks numpy, onnx or PIL: %s", out)
		}
		blocks := readmeBlocks(t, heading, "python")
		if len(blocks) != 1 {
			t.Fatalf("%d python blocks, want 1", len(blocks))
		}
		cmd := exec.Command("/usr/bin/python3", "-c", blocks[0])
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PYTHONPATH="+shim, "SSLZOO_CLI="+self, envRunCLI+"=1",
			"ONNXRUNTIME_SHARED_LIBRARY_PATH="+ortLib)
		checkSnippet(t, cmd, want[0])
	})
	t.Run("node", func(t *testing.T) {
		if noNode != "" {
			t.Skip(noNode)
		}
		blocks := readmeBlocks(t, heading, "js")
		if len(blocks) != 1 {
			t.Fatalf("%d js blocks, want 1", len(blocks))
		}
		cmd := exec.Command("node", "-e", blocks[0])
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
		checkSnippet(t, cmd, want[0])
	})
}

// checkSnippet runs cmd, which prints one embedding as a JSON list, and
// compares it with want.
func checkSnippet(t *testing.T, cmd *exec.Cmd, want []float32) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	var got []float64
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	worst := 0.0
	for i := range got {
		worst = max(worst, math.Abs(got[i]-float64(want[i])))
	}
	if worst > 1e-4 {
		t.Fatalf("embedding differs from sslzoo.Encoder's by up to %.3g", worst)
	}
}
