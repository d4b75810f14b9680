package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// MAE trains through the CLI on a ViT, its final weights are the encoder
// (which eval reads), and reconstruct draws a grid from its checkpoint.
func TestTrainMAEAndReconstruct(t *testing.T) {
	tinyFashion(t, 16, 8)
	out := t.TempDir()
	args := []string{"train", "mae", "--data", "fashion-mnist", "--arch", "vit-tiny", "--width", "1", "--size", "16",
		"--batch", "8", "--epochs", "1", "--out", out, "--knn-every", "0", "--workers", "2", "--log-every", "1"}
	code, stdout, stderr := runCLI(args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote "+filepath.Join(out, ssl.FinalFile)) {
		t.Fatalf("stdout %q", stdout)
	}
	f, err := weights.Read(filepath.Join(out, ssl.FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata[ssl.MetaMethod] != "mae" || f.Tensors["pos_embed"] == nil || f.Tensors["decoder_embed.weight"] != nil {
		t.Fatalf("final weights: metadata %v, names %v", f.Metadata, f.Names()[:4])
	}
	code, _, stderr = runCLI("eval", "knn", "--checkpoint", filepath.Join(out, ssl.FinalFile), "--workers", "2")
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, stderr)
	}

	png1 := filepath.Join(t.TempDir(), "grid.png")
	code, stdout, stderr = runCLI("reconstruct", "--checkpoint", filepath.Join(out, ssl.CheckpointFile), "--n", "3", "--scale", "2", "--out", png1)
	if code != 0 {
		t.Fatalf("reconstruct exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "12 of 16 patches hidden") {
		t.Errorf("stdout %q", stdout)
	}
	r, err := os.Open(png1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img, err := png.Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	// 3 columns and 3 rows of 16x16 images drawn 2x, 2-pixel gaps.
	if b := img.Bounds(); b.Dx() != 3*(32+2)+2 || b.Dy() != 3*(32+2)+2 {
		t.Errorf("grid %v", b)
	}
	// The masked row shows grey where the reconstruction row differs.
	grey, differs := 0, 0
	for y := range 32 {
		for x := range 32 {
			m, _, _, _ := img.At(2+x, 2+34+y).RGBA()
			o, _, _, _ := img.At(2+x, 2+y).RGBA()
			rc, _, _, _ := img.At(2+x, 2+68+y).RGBA()
			if m>>8 == 128 {
				grey++
				if rc != o {
					differs++
				}
			} else if rc != o {
				t.Fatalf("visible pixel (%d, %d) changed in the reconstruction", x, y)
			}
		}
	}
	if grey < 32*32/2 || differs == 0 {
		t.Errorf("%d grey pixels, %d reconstructed differently", grey, differs)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"reconstruct", "--checkpoint", filepath.Join(out, ssl.FinalFile)}, "encoder only"},
		{[]string{"reconstruct"}, "--checkpoint is required"},
		{[]string{"reconstruct", "--checkpoint", filepath.Join(out, ssl.CheckpointFile), "--n", "0"}, "--n 0"},
		{[]string{"train", "mae", "--data", "fashion-mnist", "--out", t.TempDir(), "--width", "0.0625", "--size", "16", "--batch", "8"}, "ViT backbone"},
		{[]string{"train", "mae", "--data", "fashion-mnist", "--arch", "vit-tiny", "--width", "1", "--size", "18", "--batch", "8", "--out", t.TempDir()}, "divisible by its patch size"},
	} {
		code, _, stderr := runCLI(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line mentioning %q", c.args, code, stderr, c.want)
		}
	}
}

// MLM trains through the CLI on a text file and writes a Hugging Face
// folder that loads back.
func TestTrainMLMCLI(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	var sb strings.Builder
	for i := range 60 {
		sb.WriteString("The light of the sun is refracted by the prism into colours. ")
		if i%3 == 0 {
			sb.WriteString("Rays of red light are less refracted than rays of blue light.\n\n")
		}
	}
	sb.WriteString(strings.Repeat("light and colour ", 20) + "in one long sentence.\n\nInvalid \xff byte here.\n")
	if err := os.WriteFile(corpus, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCLI("train", "mlm", "--data", "text:"+corpus, "--arch", "bert-mini", "--seq-len", "16",
		"--batch", "4", "--steps", "3", "--vocab-size", "120", "--held-out", "0.2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"step 3/3", "held-out perplexity", "unigram baseline", "wrote " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "truncated") {
		t.Errorf("no truncation warning on stderr %q", stderr)
	}
	h, err := zoo.LoadHFBERT(out)
	if err != nil {
		t.Fatal(err)
	}
	if h.Model.Config.Hidden != 256 || h.Model.Config.Layers != 4 || h.Model.MLM == nil {
		t.Errorf("saved model %+v", h.Model.Config)
	}

	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte(" \n\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "mlm", "--data", "text:" + empty, "--out", out}, "no text"},
		{[]string{"train", "mlm", "--data", "text:" + corpus, "--out", out, "--strict-utf8"}, "UTF-8"},
		{[]string{"train", "mlm", "--data", "text:" + corpus, "--out", out, "--seq-len", "1000"}, "position table"},
		{[]string{"train", "mlm", "--data", "text:" + corpus, "--out", out, "--arch", "vit-tiny"}, "trains BERTs"},
		{[]string{"train", "mlm", "--data", "wiki", "--out", out}, "unknown text data"},
		{[]string{"train", "mlm", "--data", "opticks"}, "--out is required"},
	} {
		code, _, stderr := runCLI(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q, want one line mentioning %q", c.args, code, stderr, c.want)
		}
	}
}
