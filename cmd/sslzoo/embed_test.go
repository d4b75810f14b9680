package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/conformance"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/internal/npy"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

func randT(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// embedEngines are the engines to check: the Go engine always, ONNX
// Runtime when it loads.
func embedEngines(t *testing.T) []string {
	if err := onnxrt.Available(); err != nil {
		t.Logf("ONNX Runtime unavailable, checking the Go engine only: %v", err)
		return []string{"go"}
	}
	return []string{"ort", "go"}
}

// smallBackbone builds arch (ResNets at 8 pixels) with fixed weights and
// exports it through the CLI.
func smallBackbone(t *testing.T, arch string, args ...string) (*conformance.Backbone, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), arch+".onnx")
	if code, _, errs := runCLI(append([]string{"export", "--arch", arch, "--seed", "7", "--out", path}, args...)...); code != 0 {
		t.Fatal(errs)
	}
	spec, _ := zoo.Arch(arch)
	m, err := spec.Build(rand.New(rand.NewPCG(7, 0x6578706f7274)))
	if err != nil {
		t.Fatal(err)
	}
	o := conformance.BackboneOptions{}
	if spec.Family == "resnet" {
		o.ImageSize = 8
	} else if spec.Family == "bert" {
		o.Seq = 8
	}
	b, err := conformance.NewBackbone(arch, m, o)
	if err != nil {
		t.Fatal(err)
	}
	return b, path
}

// TestEmbedImage runs 7 rows in batches of 3 on each engine and matches
// the model's Go forward (the same seed rebuilds the exported weights).
func TestEmbedImage(t *testing.T) {
	b, model := smallBackbone(t, "resnet18-cifar", "--image-size", "8")
	dir := t.TempDir()
	in := b.RandomInputs(rand.New(rand.NewPCG(3, 3)), 7)
	x := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(x, &npy.Array{DType: npy.Float32, Shape: in[0].Shape, Data: in[0].Data}); err != nil {
		t.Fatal(err)
	}
	want, err := b.GoForward(in)
	if err != nil {
		t.Fatal(err)
	}
	procs := goruntime.GOMAXPROCS(0)
	for _, e := range embedEngines(t) {
		y := filepath.Join(dir, e+".npy")
		code, out, errs := runCLI("embed", "--model", model, "--engine", e, "--input", x, "--out", y, "--batch", "3", "--threads", "1")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", e, code, errs)
		}
		if !strings.Contains(out, "embedding float32 [7 512]") {
			t.Errorf("%s: output %q", e, out)
		}
		if n := goruntime.GOMAXPROCS(0); n != procs {
			t.Errorf("%s: --threads left GOMAXPROCS at %d (was %d)", e, n, procs)
		}
		a, err := npy.ReadFile(y)
		if err != nil {
			t.Fatal(err)
		}
		got := []*onnxrt.Tensor{onnxrt.NewTensor(a.Shape, a.Data.([]float32))}
		if c := conformance.CompareOutputs(got, want); !c.OK {
			t.Errorf("%s: %s", e, c.Problem)
		}
	}
}

// TestEmbedText: token ids with right padding; the derived mask (ids != 0)
// gives what an explicit mask gives, int32 ids are widened, and --output
// picks the sequence output.
func TestEmbedText(t *testing.T) {
	b, model := smallBackbone(t, "bert-mini", "--seq", "8")
	dir := t.TempDir()
	in := b.RandomInputs(rand.New(rand.NewPCG(4, 4)), 5)
	ids, mask := in[0].Data.([]int64), in[1].Data.([]int64)
	for i := range ids {
		if (ids[i] == 0) != (mask[i] == 0) {
			t.Fatal("test inputs: padding must be exactly the zero ids")
		}
	}
	ids32 := make([]int32, len(ids))
	for i, v := range ids {
		ids32[i] = int32(v)
	}
	write := func(name string, a *npy.Array) string {
		p := filepath.Join(dir, name)
		if err := npy.WriteFile(p, a); err != nil {
			t.Fatal(err)
		}
		return p
	}
	xi := write("ids.npy", &npy.Array{DType: npy.Int64, Shape: in[0].Shape, Data: ids})
	xm := write("mask.npy", &npy.Array{DType: npy.Int64, Shape: in[1].Shape, Data: mask})
	x32 := write("ids32.npy", &npy.Array{DType: npy.Int32, Shape: in[0].Shape, Data: ids32})
	want, err := b.GoForward(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range embedEngines(t) {
		for _, c := range []struct {
			name string
			args []string
			want *onnxrt.Tensor
		}{
			{"derived mask", []string{"--input", xi}, want[0]},
			{"explicit mask", []string{"--input", xi, "--mask", xm}, want[0]},
			{"int32 ids", []string{"--input", x32, "--batch", "2", "--workers", "2"}, want[0]},
			{"sequence output", []string{"--input", xi, "--output", "last_hidden_state"}, want[1]},
		} {
			y := filepath.Join(dir, "y.npy")
			args := append([]string{"embed", "--model", model, "--engine", e, "--out", y}, c.args...)
			if code, _, errs := runCLI(args...); code != 0 {
				t.Fatalf("%s %s: %s", e, c.name, errs)
			}
			a, err := npy.ReadFile(y)
			if err != nil {
				t.Fatal(err)
			}
			got := []*onnxrt.Tensor{onnxrt.NewTensor(a.Shape, a.Data.([]float32))}
			if r := conformance.CompareOutputs(got, []*onnxrt.Tensor{c.want}); !r.OK {
				t.Errorf("%s %s: %s", e, c.name, r.Problem)
			}
		}
	}
}

// TestEmbedBadInput: every kind of bad input is one line on stderr, a
// non-zero exit and no output file.
func TestEmbedBadInput(t *testing.T) {
	_, model := smallBackbone(t, "resnet18-cifar", "--image-size", "8")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	npyOf := func(name string, a *npy.Array) string {
		b, err := npy.Encode(a)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, b)
	}
	good := npyOf("good.npy", &npy.Array{DType: npy.Float32, Shape: []int{2, 3, 8, 8}, Data: make([]float32, 2*3*8*8)})
	raw, _ := os.ReadFile(good)
	truncNpy := write("trunc.npy", raw[:len(raw)-10])
	garbageNpy := write("garbage.npy", []byte("this is not numpy"))
	f64 := npyOf("f64.npy", &npy.Array{DType: npy.Float64, Shape: []int{2, 3, 8, 8}, Data: make([]float64, 2*3*8*8)})
	i64 := npyOf("i64.npy", &npy.Array{DType: npy.Int64, Shape: []int{2, 3, 8, 8}, Data: make([]int64, 2*3*8*8)})
	shape := npyOf("shape.npy", &npy.Array{DType: npy.Float32, Shape: []int{2, 3, 9, 8}, Data: make([]float32, 2*3*9*8)})
	rank := npyOf("rank.npy", &npy.Array{DType: npy.Float32, Shape: []int{3, 8, 8}, Data: make([]float32, 3*8*8)})
	empty := npyOf("empty.npy", &npy.Array{DType: npy.Float32, Shape: []int{0, 3, 8, 8}, Data: []float32{}})
	mraw, _ := os.ReadFile(model)
	truncModel := write("trunc.onnx", mraw[:len(mraw)/2])
	garbageModel := write("garbage.onnx", []byte("definitely not an onnx model\n"))
	unknown := filepath.Join(dir, "unknown.onnx")
	if err := export.Save(unknownOpModel(), unknown, export.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.npy")
	type tc struct {
		name string
		args []string
		want string
	}
	cases := []tc{
		{"truncated npy", []string{"--input", truncNpy}, "truncated"},
		{"garbage npy", []string{"--input", garbageNpy}, "does not start with the NumPy magic"},
		{"float64", []string{"--input", f64}, "holds float64; the model's input pixel_values wants float32"},
		{"int64 pixels", []string{"--input", i64}, "holds int64"},
		{"wrong shape", []string{"--input", shape}, "has shape [2 3 9 8]; the model's input is pixel_values float32 [batch 3 8 8]"},
		{"wrong rank", []string{"--input", rank}, "has shape [3 8 8]"},
		{"no rows", []string{"--input", empty}, "has no rows"},
		{"missing input", []string{"--input", filepath.Join(dir, "nope.npy")}, "nope.npy"},
		{"mask on image model", []string{"--input", good, "--mask", good}, "no attention mask"},
		{"unknown output", []string{"--input", good, "--output", "logits"}, `no output "logits" (outputs: embedding)`},
		{"bad engine", []string{"--input", good, "--engine", "tf"}, `--engine "tf"`},
		{"bad device", []string{"--input", good, "--device", "tpu"}, `device "tpu"`},
		{"cuda on go", []string{"--input", good, "--engine", "go", "--device", "cuda"}, "the Go engine runs on the CPU"},
		{"negative batch", []string{"--input", good, "--batch", "-1"}, "must not be negative"},
		{"no workers", []string{"--input", good, "--workers", "0"}, "--workers must be at least 1"},
	}
	for _, e := range embedEngines(t) {
		cases = append(cases,
			tc{e + " truncated model", []string{"--input", good, "--engine", e, "--model", truncModel}, "trunc.onnx"},
			tc{e + " garbage model", []string{"--input", good, "--engine", e, "--model", garbageModel}, "garbage.onnx"},
			tc{e + " unknown op", []string{"--input", good, "--engine", e, "--model", unknown}, "NoSuchOp"},
			tc{e + " missing model", []string{"--input", good, "--engine", e, "--model", filepath.Join(dir, "none.onnx")}, "none.onnx"},
		)
	}
	if onnxrt.Available() == nil {
		cases = append(cases, tc{"cuda without provider", []string{"--input", good, "--engine", "ort", "--device", "cuda"}, "libonnxruntime_providers_shared.so is missing"})
	}
	for _, c := range cases {
		args := append([]string{"embed", "--model", model, "--out", out}, c.args...)
		// A later --model overrides the first.
		code, stdout, errs := runCLI(args...)
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) || stdout != "" {
			t.Errorf("%s: exit %d, stderr %q (want one line containing %q), stdout %q", c.name, code, errs, c.want, stdout)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: left an output file", c.name)
		}
	}
	for _, args := range [][]string{{"--input", good, "--out", out}, {"--model", model, "--out", out}, {"--model", model, "--input", good}} {
		code, stdout, errs := runCLI(append([]string{"embed"}, args...)...)
		if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "is required") || stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q", args, code, errs, stdout)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".out.npy") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// unknownOpModel is a valid ONNX model using an op no engine knows.
func unknownOpModel() *onnxpb.ModelProto {
	vi := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(1), Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch"}},
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 3}},
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 8}},
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 8}},
			}}},
		}}}
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name:   proto.String("g"),
			Input:  []*onnxpb.ValueInfoProto{vi("pixel_values")},
			Output: []*onnxpb.ValueInfoProto{vi("embedding")},
			Node:   []*onnxpb.NodeProto{{OpType: proto.String("NoSuchOp"), Input: []string{"pixel_values"}, Output: []string{"embedding"}}},
		},
	}
}

// TestEmbedHelperProcess is not a test: TestEmbedWithoutORT runs the test
// binary again with it, so that ONNX Runtime (loaded once per process) can
// be missing.
func TestEmbedHelperProcess(t *testing.T) {
	args := os.Getenv("SSLZOO_EMBED_HELPER_ARGS")
	if args == "" {
		return
	}
	os.Exit(run(append([]string{"sslzoo"}, strings.Split(args, "\x1f")...), os.Stdout, os.Stderr))
}

// runWithoutORT runs the CLI in a child process whose ONNX Runtime library
// path points at a missing file.
func runWithoutORT(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestEmbedHelperProcess$")
	cmd.Env = append(os.Environ(), "SSLZOO_EMBED_HELPER_ARGS="+strings.Join(args, "\x1f"),
		onnxrt.LibraryEnv+"="+filepath.Join(t.TempDir(), "no-libonnxruntime.so"))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestEmbedWithoutORT: with the ONNX Runtime library missing, --engine ort
// fails in one line naming the library, and auto falls back to the Go
// engine.
func TestEmbedWithoutORT(t *testing.T) {
	_, model := smallBackbone(t, "resnet18-cifar", "--image-size", "8")
	dir := t.TempDir()
	x := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(x, &npy.Array{DType: npy.Float32, Shape: []int{1, 3, 8, 8}, Data: make([]float32, 3*8*8)}); err != nil {
		t.Fatal(err)
	}
	runNoORT := func(args ...string) (int, string, string) { return runWithoutORT(t, args...) }
	y := filepath.Join(dir, "y.npy")
	code, _, errs := runNoORT("embed", "--model", model, "--engine", "ort", "--input", x, "--out", y)
	if code == 0 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "ONNX Runtime library not found") {
		t.Errorf("--engine ort without the library: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(y); err == nil {
		t.Fatal("failed run left an output file")
	}
	code, out, errs := runNoORT("embed", "--model", model, "--engine", "auto", "--input", x, "--out", y)
	if code != 0 || !strings.Contains(out, "go engine") {
		t.Errorf("--engine auto without the library: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
