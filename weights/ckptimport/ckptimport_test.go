package ckptimport_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/weights/ckptimport"
	"github.com/sslzoo/sslzoo/zoo"
)

// The fixtures come from scripts/gen_import_golden.py (PyTorch 1.13); its
// doc string says what each file mirrors. -update reruns it.
var update = flag.Bool("update", false, "regenerate testdata with scripts/gen_import_golden.py (needs /usr/bin/python3 with torch)")

func TestMain(m *testing.M) {
	flag.Parse()
	if *update {
		cmd := exec.Command("/usr/bin/python3", "../../scripts/gen_import_golden.py",
			"--out", "testdata", "--pickle-out", "../torchpickle/testdata")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "gen_import_golden.py:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// tol is the bar: max abs difference to PyTorch.
const tol = 1e-4

type fixture struct {
	Name    string         `json:"name"`
	File    string         `json:"file"`
	Format  string         `json:"format"`
	Heads   int            `json:"heads"`
	Input   string         `json:"input"`
	Config  map[string]any `json:"config"`
	Dropped []string       `json:"dropped"`
}

func fixtures(t *testing.T) []fixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var fs []fixture
	if err := json.Unmarshal(raw, &fs); err != nil {
		t.Fatal(err)
	}
	return fs
}

func readST(t *testing.T, path string) *weights.File {
	t.Helper()
	f, err := weights.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// forward runs the backbone in eval mode: ResNet pooled features, ViT class
// token after the final norm, BERT last hidden state.
func forward(t *testing.T, m zoo.Backbone, in *weights.File, input string) *tensor.Tensor {
	t.Helper()
	m.SetTraining(false)
	tp := autograd.NewTape()
	var out *autograd.Var
	err := autograd.Catch(func() {
		switch b := m.(type) {
		case *zoo.ResNet:
			x, _ := in.Float32("image")
			out = b.Forward(tp, autograd.Const(x))
		case *zoo.ViT:
			x, _ := in.Float32("image")
			out = b.Forward(tp, autograd.Const(x))
		case *zoo.BERT:
			ints := func(name string) []int {
				v, err := in.Tensors[name].Int64()
				if err != nil {
					t.Fatal(err)
				}
				out := make([]int, len(v))
				for i, x := range v {
					out[i] = int(x)
				}
				return out
			}
			shape := in.Tensors["input_ids"].Shape
			out = b.Forward(tp, zoo.BERTInput{Batch: shape[0], Seq: shape[1], IDs: ints("input_ids"),
				TokenTypes: ints("token_type_ids"), Mask: ints("attention_mask")}).Sequence
		default:
			t.Fatalf("backbone %T", m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Value
}

// TestImportMatchesPyTorch imports every fixture checkpoint, writes it,
// rebuilds the backbone from the file's recorded configuration alone, and
// matches the features PyTorch computed for the same inputs.
func TestImportMatchesPyTorch(t *testing.T) {
	inputs := readST(t, "testdata/inputs.safetensors")
	expected := readST(t, "testdata/expected.safetensors")
	for _, fx := range fixtures(t) {
		t.Run(fx.Name, func(t *testing.T) {
			src := filepath.Join("testdata", fx.File)
			res, err := ckptimport.ImportWith(src, ckptimport.Options{Format: fx.Format, Heads: fx.Heads})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "imported.safetensors")
			if err := ckptimport.Write(res, out); err != nil {
				t.Fatal(err)
			}
			f := readST(t, out)
			spec, ok, err := zoo.SpecFromMetadata(f.Metadata)
			if err != nil || !ok {
				t.Fatalf("no architecture in the metadata (%v)", err)
			}
			checkConfig(t, spec, fx.Config)
			m, err := spec.Build(rand.New(rand.NewPCG(9, 9)))
			if err != nil {
				t.Fatal(err)
			}
			if err := nn.LoadState(m, f.Tensors, true); err != nil {
				t.Fatal(err)
			}
			want, err := expected.Float32(fx.Name)
			if err != nil {
				t.Fatal(err)
			}
			compare(t, forward(t, m, inputs, fx.Input), want)

			for _, d := range fx.Dropped {
				if !slices.ContainsFunc(res.Dropped, func(s string) bool { return strings.HasPrefix(s, d) }) {
					t.Errorf("dropped %q, want an entry starting %q", res.Dropped, d)
				}
			}
			md := f.Metadata
			if md[ckptimport.MetaBackbone] != spec.Name || md[ckptimport.MetaFormat] != fx.Format ||
				md[ckptimport.MetaEmbeddingDim] != fmt.Sprint(m.FeatureDim()) || res.EmbeddingDim != m.FeatureDim() {
				t.Errorf("metadata %v", md)
			}
			var source struct{ File, SHA256 string }
			if err := json.Unmarshal([]byte(md[ckptimport.MetaSource]), &source); err != nil ||
				source.File != filepath.Base(fx.File) || len(source.SHA256) != 64 {
				t.Errorf("%s = %q", ckptimport.MetaSource, md[ckptimport.MetaSource])
			}
		})
	}
}

// checkConfig compares the recorded configuration with what the fixture
// script built (the keys it lists, under zoo's field names).
func checkConfig(t *testing.T, spec zoo.Spec, want map[string]any) {
	t.Helper()
	var wire map[string]json.RawMessage
	if err := json.Unmarshal([]byte(spec.ConfigJSON()), &wire); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(wire[spec.Family], &got); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if g := got[k]; fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("config %s = %v, want %v (spec %s)", k, g, w, spec.ConfigJSON())
		}
	}
}

func compare(t *testing.T, got, want *tensor.Tensor) {
	t.Helper()
	if !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("features of shape %v, want %v", got.Shape, want.Shape)
	}
	worst, at := 0.0, 0
	for i := range got.Data {
		if d := math.Abs(float64(got.Data[i] - want.Data[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("features differ from PyTorch by %.3g at %d (got %g, want %g), tolerance %g", worst, at, got.Data[at], want.Data[at], tol)
	}
}

// TestImportErrors: wrong formats, architectures and files fail with one
// line that names what is wrong.
func TestImportErrors(t *testing.T) {
	cases := []struct {
		name, file, format, arch string
		heads                    int
		want                     []string
	}{
		{"arch mismatch names the first tensor", "torchvision_resnet18.pth", "torchvision", "resnet18", 0,
			[]string{"tensor conv1.weight: checkpoint shape [4 3 7 7], --arch resnet18 shape [64 3 7 7]"}},
		{"arch of another depth", "moco_v2_800ep_pretrain.pth.tar", "moco-v2", "resnet18", 0,
			[]string{"tensor conv1.weight: checkpoint shape [2 3 7 7], --arch resnet18 shape [64 3 7 7]"}},
		{"arch of another family", "torchvision_resnet18.pth", "torchvision", "vit-small", 0,
			[]string{"--arch vit-small is a vit, but the checkpoint holds a resnet backbone"}},
		{"unknown arch", "torchvision_resnet18.pth", "torchvision", "resnet7", 0, []string{`unknown architecture "resnet7"`}},
		{"unknown layout", "torchvision_resnet18.pth", "moco-v2", "", 0,
			[]string{"is not a moco-v2 checkpoint", `no "state_dict" entry`, "top-level keys: conv1.weight (tensor)",
				"tensor key prefixes: conv1.weight (1), bn1.weight (1)", "layer1.0.* (", "--format is one of torchvision, moco-v2, moco-v3",
				"it reads as --format torchvision"}},
		{"nested layout under the wrong format", "moco_v2_800ep_pretrain.pth.tar", "mae", "", 0,
			[]string{"is not a mae checkpoint", `no "model" entry`, "state_dict (dict of", "epoch (int)",
				"state_dict: module.queue (1)", "module.encoder_q.* (322)", "module.encoder_k.* (322)", "it reads as --format moco-v2"}},
		{"prefix absent", "moco_v3_r50.pth.tar", "moco-v2", "", 0,
			[]string{`no tensors under "module.encoder_q."`, "module.base_encoder.* (", "it reads as --format moco-v3"}},
		{"family the project does not publish", "mae_pretrain_checkpoint.pth", "solo-learn", "", 0, []string{`no "state_dict" entry`}},
		{"heads unknown for the width", "dino_vit_backbone.pth", "dino", "", 0,
			[]string{"DINO (vision_transformer.py) publishes ViTs of width 192 (3 heads), 384 (6 heads), 768 (12 heads) only, so the attention heads of a width-32 ViT are unknown; pass --heads"}},
		{"heads that do not divide", "dino_vit_backbone.pth", "dino", "", 5, []string{"--heads 5 does not divide the ViT width 32"}},
		{"heads on a ResNet", "swav_800ep_pretrain.pth.tar", "swav", "", 2, []string{"--heads is for ViTs"}},
		{"unknown format", "swav_800ep_pretrain.pth.tar", "simclr", "", 0, []string{`unknown format "simclr"`, "hf-bert"}},
		{"missing file", "nope.pth", "swav", "", 0, []string{"nope.pth", "no such file"}},
		{"BERT arch disagreeing with config.json", "hf_bert", "hf-bert", "bert-mini", 0,
			[]string{"config.json describes bert-L2-H16-A4-v40", "not --arch bert-mini"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ckptimport.ImportWith(filepath.Join("testdata", c.file), ckptimport.Options{Format: c.format, Arch: c.arch, Heads: c.heads})
			if err == nil {
				t.Fatal("imported")
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines:\n%s", msg)
			}
		})
	}
}

// TestBERTNeedsConfig: without config.json the heads are unknown, and the
// error says to pass --arch; with --arch the file imports.
func TestBERTNeedsConfig(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pytorch_model.bin")
	raw, err := os.ReadFile("testdata/hf_bert/pytorch_model.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ckptimport.Import(bin, "hf-bert", "")
	if err == nil || !strings.Contains(err.Error(), "no config.json beside") || !strings.Contains(err.Error(), "pass --arch (bert-base, bert-mini") {
		t.Fatalf("error %v", err)
	}
	// The fixture's sizes are no registered BERT's, so --arch is refused
	// on the first tensor that differs.
	_, err = ckptimport.Import(bin, "hf-bert", "bert-tiny")
	if err == nil || !strings.Contains(err.Error(), "tensor embeddings.word_embeddings.weight: checkpoint shape [40 16], --arch bert-tiny shape [30522 128]") {
		t.Fatalf("error %v", err)
	}
}

// TestExplicitArch: a checkpoint that is a registered architecture imports
// under that name, with --arch or without, and records it.
func TestExplicitArch(t *testing.T) {
	spec, err := zoo.Arch("resnet18")
	if err != nil {
		t.Fatal(err)
	}
	m, err := spec.Build(rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "resnet18.safetensors")
	if err := nn.SaveState(src, m, nil); err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"resnet18", ""} {
		res, err := ckptimport.Import(src, "torchvision", arch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Spec.Name != "resnet18" || res.Meta[ckptimport.MetaBackbone] != "resnet18" || res.EmbeddingDim != 512 || res.Container != "safetensors" {
			t.Errorf("--arch %q: imported %s (%s) from %s", arch, res.Spec.Name, res.Spec.ConfigJSON(), res.Container)
		}
	}
	for arch, want := range map[string]string{
		"resnet34":       "the checkpoint has no tensor layer1.2.conv1.weight, which --arch resnet34 needs (shape [64 64 3 3])",
		"resnet18-cifar": "tensor conv1.weight: checkpoint shape [64 3 7 7], --arch resnet18-cifar shape [64 3 3 3]",
	} {
		if _, err := ckptimport.Import(src, "torchvision", arch); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", arch, err, want)
		}
	}
}

// TestHostileCheckpoints: pickles naming code are refused, naming the
// global, before anything runs; storages larger than the file are refused
// before they are allocated; truncated files fail cleanly.
func TestHostileCheckpoints(t *testing.T) {
	pwned := "/tmp/sslzoo-import-pwned"
	os.Remove(pwned)
	cases := []struct{ file, want string }{
		{"evil_os_system.pth", "refused global os.system: it can run code"},
		{"evil_posix_system.pth", "refused global posix.system: it can run code"},
		{"evil_builtins_eval.pth", "refused global builtins.eval: it can run code"},
		{"evil_subprocess_popen.pth", "refused global subprocess.Popen: it can run code"},
		{"huge_storage.pth", "FloatStorage \"0\" declares 1099511627776 elements (4398046511104 bytes) but its record archive/data/0 holds 16 bytes"},
		{"huge_storage_legacy.pth", "FloatStorage \"0\": 4398046511104 bytes of data but the file ends 16 bytes later"},
	}
	for _, c := range cases {
		for _, format := range []string{"torchvision", "moco-v2", "dino"} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ckptimport.Import(filepath.Join("testdata", c.file), format, "")
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
				t.Errorf("%s as %s: error %v, want one naming the file and containing %q", c.file, format, err, c.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("%s: allocated %d bytes", c.file, grew)
			}
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatal("a payload ran")
	}

	dir := t.TempDir()
	for _, fx := range []string{"moco_v2_800ep_pretrain.pth.tar", "dino_full_checkpoint.pth", "hf_bert/pytorch_model.bin"} {
		full, err := os.ReadFile(filepath.Join("testdata", fx))
		if err != nil {
			t.Fatal(err)
		}
		format := map[string]string{"moco_v2_800ep_pretrain.pth.tar": "moco-v2", "dino_full_checkpoint.pth": "dino"}[fx]
		for _, frac := range []float64{0, 0.01, 0.2, 0.5, 0.9, 0.999} {
			p := filepath.Join(dir, "cut.pth")
			if err := os.WriteFile(p, full[:int(frac*float64(len(full)))], 0o644); err != nil {
				t.Fatal(err)
			}
			if format == "" {
				format = "hf-bert"
				os.WriteFile(filepath.Join(dir, "config.json"), mustRead(t, "testdata/hf_bert/config.json"), 0o644)
			}
			_, err := ckptimport.Import(p, format, "")
			if err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s cut to %.1f%%: error %v, want one line naming the file", fx, 100*frac, err)
			}
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteNeedsFolder: the output folder must exist.
func TestWriteNeedsFolder(t *testing.T) {
	res, err := ckptimport.ImportWith("testdata/dino_vit_backbone.pth", ckptimport.Options{Format: "dino", Heads: 4})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "missing", "x.safetensors")
	if err := ckptimport.Write(res, out); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("error %v", err)
	}
}
