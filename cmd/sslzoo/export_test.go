package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/internal/filehash"

	"github.com/sslzoo/sslzoo/conformance"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// TestExportRandomInit: the file has the advertised interface and
// metadata, the same seed gives the same bytes, and another seed other
// weights.
func TestExportRandomInit(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.onnx"), filepath.Join(dir, "b.onnx"), filepath.Join(dir, "c.onnx")
	code, out, errs := runCLI("export", "--arch", "resnet18-cifar", "--image-size", "8", "--seed", "3", "--out", a)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"wrote " + a, "MiB", "input  pixel_values float32 [batch 3 8 8]", "output embedding float32 [batch 512]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errs := runCLI("export", "--arch", "resnet18-cifar", "--image-size", "8", "--seed", "3", "--out", b); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := runCLI("export", "--arch", "resnet18-cifar", "--image-size", "8", "--seed", "4", "--out", c); code != 0 {
		t.Fatal(errs)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	bc, _ := os.ReadFile(c)
	if !bytes.Equal(ba, bb) {
		t.Error("the same seed wrote different files")
	}
	if bytes.Equal(ba, bc) {
		t.Error("different seeds wrote the same file")
	}
	info, err := onnxrt.ReadModelInfoFile(a)
	if err != nil {
		t.Fatal(err)
	}
	md := info.Metadata
	var pp export.Preprocess
	if err := json.Unmarshal([]byte(md["sslzoo.preprocess"]), &pp); err != nil || pp.Size != [2]int{8, 8} || pp.Mean[0] != 0.4914 {
		t.Errorf("preprocess %q: %v", md["sslzoo.preprocess"], err)
	}
	if md["sslzoo.backbone"] != "resnet18-cifar" || md["sslzoo.embedding_dim"] != "512" || md["sslzoo.version"] == "" || md["sslzoo.weights_sha256"] != "" {
		t.Errorf("metadata %v", md)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("export left %d files in the folder, want the 3 models", len(ents))
	}
}

// TestExportText: a BERT exports with int64 ids and mask at --seq and the
// two outputs.
func TestExportText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bert.onnx")
	code, out, errs := runCLI("export", "--arch", "bert-mini", "--seq", "8", "--out", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"input  input_ids int64 [batch 8]", "input  attention_mask int64 [batch 8]",
		"output embedding float32 [batch 256]", "output last_hidden_state float32 [batch 8 256]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestExportWeights loads weights into the export: a state_dict under a
// prefix (found automatically, extra keys ignored), with the file's sha256
// in the metadata, and the exported graph computes the loaded model.
func TestExportWeights(t *testing.T) {
	dir := t.TempDir()
	spec, _ := zoo.Arch("resnet18-cifar")
	m, err := spec.Build(rand.New(rand.NewPCG(42, 42)))
	if err != nil {
		t.Fatal(err)
	}
	ts := map[string]*weights.Tensor{}
	for k, v := range nn.StateTensors(m) {
		ts["backbone."+k] = v
	}
	ts["head.weight"] = weights.FromFloat32(randT(rand.New(rand.NewPCG(1, 1)), 4, 4))
	wpath := filepath.Join(dir, "ckpt.safetensors")
	if err := weights.Write(wpath, ts, map[string]string{"sslzoo.method": "simclr"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.onnx")
	if code, _, errs := runCLI("export", "--arch", "resnet18-cifar", "--image-size", "8", "--weights", wpath, "--out", out); code != 0 {
		t.Fatal(errs)
	}
	info, err := onnxrt.ReadModelInfoFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := filehash.SHA256(wpath)
	if info.Metadata["sslzoo.weights_sha256"] != sum || info.Metadata["sslzoo.method"] != "simclr" {
		t.Errorf("metadata %v, want sha256 %s", info.Metadata, sum)
	}
	// The exported graph must compute m itself.
	b, err := conformance.NewBackbone("resnet18-cifar", m, conformance.BackboneOptions{ImageSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	compareFile(t, out, b, 3)

	// A second full copy under another prefix makes the choice ambiguous;
	// --prefix settles it.
	for k, v := range nn.StateTensors(m) {
		ts["ema."+k] = v
	}
	if err := weights.Write(wpath, ts, nil); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("export", "--arch", "resnet18-cifar", "--weights", wpath, "--out", out)
	if code == 0 || !strings.Contains(errs, "backbone., ema.") || !strings.Contains(errs, "--prefix") {
		t.Errorf("ambiguous prefixes: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI("export", "--arch", "resnet18-cifar", "--image-size", "8", "--weights", wpath, "--prefix", "ema.", "--out", out); code != 0 {
		t.Error(errs)
	}
}

// TestExportTrainResult: a `sslzoo train` result rebuilds its own backbone
// (here one channel, width 0.25, 16 pixels) without --arch, and carries
// its preprocessing into the file, whether it was written in today's
// format or in the one before preprocess.Spec ("grey", no crop).
func TestExportTrainResult(t *testing.T) {
	spec := ssl.TrainSpec{Method: "byol", Data: "fashion-mnist", Arch: "resnet18-cifar", Width: 0.25, InChannels: 1, Size: 16,
		Mean: []float64{0.286}, Std: []float64{0.353}, Epochs: 1, Batch: 8}
	current, _ := json.Marshal(spec.Preprocess())
	for _, c := range []struct {
		name, preprocess string
	}{
		{"current", string(current)},
		{"old", `{"channels":"grey","layout":"NCHW","mean":[0.286],"resize":"bilinear","scale":0.00392156862745098,"size":[16,16],"std":[0.353]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			enc, err := spec.NewBackbone(rand.New(rand.NewPCG(5, 5)))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(spec)
			wpath := filepath.Join(dir, "final.safetensors")
			if err := nn.SaveState(wpath, enc, map[string]string{ssl.MetaTrain: string(raw), ssl.MetaMethod: "byol", ssl.MetaPreprocess: c.preprocess}); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "m.onnx")
			code, stdout, errs := runCLI("export", "--weights", wpath, "--out", out)
			if code != 0 {
				t.Fatal(errs)
			}
			if !strings.Contains(stdout, "pixel_values float32 [batch 1 16 16]") || !strings.Contains(stdout, "embedding float32 [batch 128]") {
				t.Errorf("interface:\n%s", stdout)
			}
			info, _ := onnxrt.ReadModelInfoFile(out)
			var pp export.Preprocess
			if err := json.Unmarshal([]byte(info.Metadata["sslzoo.preprocess"]), &pp); err != nil || pp.Mean[0] != 0.286 || pp.Size != [2]int{16, 16} {
				t.Errorf("preprocess %q: %v", info.Metadata["sslzoo.preprocess"], err)
			}
			pp.Normalize()
			if err := pp.Validate(); err != nil || pp.Channels != "L" {
				t.Errorf("preprocess %+v: %v", pp, err)
			}
			if info.Metadata["sslzoo.method"] != "byol" {
				t.Errorf("metadata %v", info.Metadata)
			}
			b, err := conformance.NewBackbone("resnet18-cifar", enc.(zoo.Backbone), conformance.BackboneOptions{ImageSize: 16})
			if err != nil {
				t.Fatal(err)
			}
			compareFile(t, out, b, 2)
			if code, _, errs := runCLI("export", "--arch", "vit-tiny", "--weights", wpath, "--out", out); code == 0 || !strings.Contains(errs, "resnet18-cifar backbone, not --arch vit-tiny") {
				t.Errorf("arch mismatch: exit %d %q", code, errs)
			}
		})
	}
}

// compareFile runs a file on the Go engine against b's Go forward.
func compareFile(t *testing.T, path string, b *conformance.Backbone, batch int) {
	t.Helper()
	e, err := onnxrt.OpenGo(path)
	if err != nil {
		t.Fatal(err)
	}
	in := b.RandomInputs(rand.New(rand.NewPCG(9, 9)), batch)
	got, err := e.Run(in...)
	if err != nil {
		t.Fatal(err)
	}
	want, err := b.GoForward(in)
	if err != nil {
		t.Fatal(err)
	}
	if c := conformance.CompareOutputs(got, want); !c.OK {
		t.Errorf("%s: %s", path, c.Problem)
	}
}

// TestExportErrors: one line, non-zero exit, no file left behind.
func TestExportErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.safetensors")
	os.WriteFile(garbage, []byte("not safetensors at all"), 0o644)
	other := filepath.Join(dir, "other.safetensors")
	spec, _ := zoo.Arch("bert-mini")
	spec.BERT.Layers = 1
	bm, _ := spec.Build(rand.New(rand.NewPCG(1, 1)))
	if err := nn.SaveState(other, bm, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"export", "--arch", "resnet7", "--out", out}, `unknown architecture "resnet7"`},
		{[]string{"export", "--arch", "resnet18"}, "--out is required"},
		{[]string{"export", "--out", out}, "name the architecture with --arch"},
		{[]string{"export", "--arch", "resnet18-cifar", "--out", filepath.Join(dir, "no", "such", "x.onnx")}, "does not exist"},
		{[]string{"export", "--arch", "resnet18-cifar", "--weights", garbage, "--out", out}, "garbage.safetensors"},
		{[]string{"export", "--arch", "resnet18-cifar", "--weights", filepath.Join(dir, "missing.safetensors"), "--out", out}, "missing.safetensors"},
		{[]string{"export", "--arch", "bert-mini", "--weights", other, "--out", out}, "missing keys: encoder.layer.1"},
		{[]string{"export", "--arch", "bert-mini", "--seq", "513", "--out", out}, "sequence length 513 outside 1..512"},
		{[]string{"export", "--arch", "vit-tiny", "--image-size", "32", "--out", out}, "training size 224"},
		{[]string{"export", "--arch", "resnet18-cifar", "--out", out, "extra"}, "a zoo name brings its own weights and architecture"},
	}
	for _, c := range cases {
		code, stdout, errs := runCLI(c.args...)
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) || stdout != "" {
			t.Errorf("%v: exit %d, stderr %q (want one line containing %q), stdout %q", c.args, code, errs, c.want, stdout)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, ".onnx") }) {
		t.Errorf("failed exports left files: %v", names)
	}
}

// TestExportTriton: a zoo name lands as a Triton model repository entry,
// the model under 1/ and a config naming its tensors without the batch
// axis; wrong uses fail in one line and leave no config behind.
func TestExportTriton(t *testing.T) {
	t.Setenv("SSLZOO_CACHE", t.TempDir())
	repo := t.TempDir()
	code, stdout, errs := runCLI("export", "simclr-resnet18-fmnist", "--triton", repo, "--max-batch", "16", "--instances", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	dir := filepath.Join(repo, "simclr-resnet18-fmnist")
	info, err := onnxrt.ReadModelInfoFile(filepath.Join(dir, "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`name: "simclr-resnet18-fmnist"`, `platform: "onnxruntime_onnx"`, "max_batch_size: 16", "count: 2",
		`name: "pixel_values"`, "dims: [ 1, 28, 28 ]", `name: "embedding"`, "dims: [ 128 ]", `key: "sslzoo.preprocess"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config.pbtxt lacks %q:\n%s", want, cfg)
		}
	}
	if len(info.Inputs) != 1 || info.Inputs[0].Name != "pixel_values" || !strings.Contains(stdout, "tritonserver --model-repository") {
		t.Errorf("inputs %v, stdout %q", info.Inputs, stdout)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "simclr-resnet18-fmnist", "--triton", repo, "--out", filepath.Join(repo, "x.onnx")}, "leave out --out"},
		{[]string{"export", "simclr-resnet18-fmnist", "--triton", filepath.Join(repo, "missing")}, "not a folder"},
		{[]string{"export", "simclr-resnet18-fmnist", "--triton", repo, "--triton-name", "../up"}, "plain folder name"},
		{[]string{"export", "simclr-resnet18-fmnist", "--triton", repo, "--max-batch", "0"}, "--max-batch 0"},
		{[]string{"export", "simclr-resnet18-fmnist", "--max-batch", "8", "--out", filepath.Join(repo, "x.onnx")}, "add --triton DIR"},
	} {
		code, _, errs := runCLI(c.args...)
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want one line containing %q", c.args, code, errs, c.want)
		}
	}
	if ents, _ := os.ReadDir(repo); len(ents) != 1 {
		t.Errorf("repository holds %d entries after the failures, want 1", len(ents))
	}
}
