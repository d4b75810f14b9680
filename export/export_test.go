package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/internal/safepath"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

const python = "/usr/bin/python3"

// checkONNX runs the reference checker (Debian python3-onnx) with
// full_check (type and shape inference) on a file we wrote.
func checkONNX(t *testing.T, path string) {
	t.Helper()
	if exec.Command(python, "-c", "import onnx").Run() != nil {
		t.Log("python3-onnx not installed: skipping onnx.checker")
		return
	}
	script := "import sys, onnx\nonnx.checker.check_model(sys.argv[1], full_check=True)\n"
	if out, err := exec.Command(python, "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("onnx.checker rejected %s: %v\n%s", path, err, out)
	}
}

// randomizeState fills every parameter and buffer with random values
// (variances positive) so that no term of the graph is trivially 0 or 1.
func randomizeState(m nn.Module, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := nn.StateOf(m)
	for _, p := range s.Params {
		for i := range p.Var.Value.Data {
			p.Var.Value.Data[i] += float32(rng.NormFloat64() * 0.1)
		}
	}
	for _, b := range s.Buffers {
		if b.T == nil {
			continue
		}
		for i := range b.T.Data {
			if strings.HasSuffix(b.Name, "running_var") {
				b.T.Data[i] = 0.5 + rng.Float32()
			} else {
				b.T.Data[i] = float32(rng.NormFloat64() * 0.1)
			}
		}
	}
}

// calibrate runs training-mode forwards on random batches so that the
// BatchNorm running statistics describe the activations, as after real
// training: eval-mode outputs then stay O(1) instead of growing layer by
// layer, and the comparison tolerance means what it says. Leaves m in eval
// mode.
func calibrate(m nn.Module, fwd func(*autograd.Tape, *autograd.Var) *autograd.Var, shape []int) {
	rng := rand.New(rand.NewPCG(11, 12))
	m.SetTraining(true)
	tp := autograd.NewTape()
	for range 30 {
		tp.NoGrad(func() { fwd(tp, autograd.Const(randTensor(rng, shape...))) })
		tp.Reset()
	}
	m.SetTraining(false)
}

func randTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// goForward runs the engine and copies the outputs off the tape.
func goForward(t *testing.T, fwd func(*autograd.Tape, []*autograd.Var) []*autograd.Var, in []*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	tp := autograd.NewTape()
	defer tp.Reset()
	vars := make([]*autograd.Var, len(in))
	for i, x := range in {
		vars[i] = autograd.Const(x)
	}
	var outs []*tensor.Tensor
	err := autograd.Catch(func() {
		for _, o := range fwd(tp, vars) {
			outs = append(outs, &tensor.Tensor{Shape: slices.Clone(o.Value.Shape), Data: slices.Clone(o.Value.Data)})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

// compareEngine runs the exported file on an engine (ONNX Runtime, or the Go
// engine through the ONNX importer) and checks every output against the Go
// forward: the largest |ORT-Go| must stay within
// tol*max(1, max|Go|) (float32 rounding drifts with depth, so deep models
// are judged against their output scale). It returns the largest absolute
// difference and the smallest cosine similarity over the outputs.
func compareEngine(t *testing.T, engine, path string, fwd func(*autograd.Tape, []*autograd.Var) []*autograd.Var, in []*tensor.Tensor, tol float64) (maxDiff, minCos float64) {
	t.Helper()
	s, err := onnxrt.OpenEngine(path, engine, onnxrt.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rin := make([]*onnxrt.Tensor, len(in))
	for i, x := range in {
		rin[i] = onnxrt.NewTensor(x.Shape, x.Data)
	}
	got, err := s.Run(rin...)
	if err != nil {
		t.Fatal(err)
	}
	want := goForward(t, fwd, in)
	minCos = 1
	for i, w := range want {
		g, err := got[i].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[i].Shape, w.Shape) {
			t.Fatalf("output %d: %s shape %v, Go forward shape %v", i, engine, got[i].Shape, w.Shape)
		}
		var dot, ng, nw, diff, scale float64
		worst := 0
		for j := range g {
			a, b := float64(g[j]), float64(w.Data[j])
			if d := math.Abs(a - b); d > diff || math.IsNaN(d) {
				diff, worst = d, j
			}
			scale = max(scale, math.Abs(b))
			dot, ng, nw = dot+a*b, ng+a*a, nw+b*b
		}
		if !(diff <= tol*max(1, scale)) {
			t.Fatalf("output %d element %d: %s %v, Go forward %v (|diff| %.3g > %.3g = %g * max(1, max|Go| %.3g))",
				i, worst, engine, g[worst], w.Data[worst], diff, tol*max(1, scale), tol, scale)
		}
		maxDiff = max(maxDiff, diff)
		if ng > 0 && nw > 0 {
			minCos = min(minCos, dot/math.Sqrt(ng*nw))
		}
	}
	return maxDiff, minCos
}

func ortAvailable(t *testing.T) bool {
	if err := onnxrt.Available(); err != nil {
		t.Logf("ONNX Runtime unavailable, skipping the ORT comparison: %v", err)
		return false
	}
	return true
}

// engines lists the engines to check exports on: the Go engine always,
// ONNX Runtime when its library loads.
func engines(t *testing.T) []string {
	if ortAvailable(t) {
		return []string{onnxrt.EngineORT, onnxrt.EngineGo}
	}
	return []string{onnxrt.EngineGo}
}

// TestResNetEndToEnd exports ResNets from the zoo (both stems, basic and
// bottleneck blocks, with and without a classifier), validates the files
// with onnx.checker, and compares ONNX Runtime with the Go forward at batch
// 1 and 7.
func TestResNetEndToEnd(t *testing.T) {
	cases := []struct {
		cfg  zoo.ResNetConfig
		size int
	}{
		{zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.25, NumClasses: 10}, 16},
		{zoo.ResNetConfig{Depth: 18, Stem: "imagenet", Width: 0.125}, 32},
		{zoo.ResNetConfig{Depth: 50, Stem: "imagenet", Width: 0.125, InChannels: 1}, 32},
	}
	for _, c := range cases {
		name := fmt.Sprintf("resnet%d-%s-w%g-c%d", c.cfg.Depth, c.cfg.Stem, c.cfg.Width, c.cfg.NumClasses)
		t.Run(name, func(t *testing.T) {
			m, err := zoo.NewResNet(c.cfg, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			randomizeState(m, 3)
			inC := max(c.cfg.InChannels, 3)
			if c.cfg.InChannels == 1 {
				inC = 1
			}
			calibrate(m, m.Forward, []int{8, inC, c.size, c.size})
			fwd := func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
				return []*autograd.Var{m.Forward(tp, in[0])}
			}
			spec := Spec{
				Name:     name,
				Inputs:   []Input{{Name: "pixel_values", Shape: []int{1, inC, c.size, c.size}}},
				Outputs:  []string{"embedding"},
				Forward:  fwd,
				Module:   m,
				Metadata: map[string]string{"sslzoo.backbone": name},
			}
			path := filepath.Join(t.TempDir(), "model.onnx")
			if err := Export(spec, path, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			checkONNX(t, path)
			mp, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			checkGraph(t, mp, m)
			rng := rand.New(rand.NewPCG(5, 6))
			for _, batch := range []int{1, 7} {
				x := randTensor(rng, batch, inC, c.size, c.size)
				for _, e := range engines(t) {
					d, cos := compareEngine(t, e, path, fwd, []*tensor.Tensor{x}, 1e-4)
					t.Logf("batch %d, %s engine: max |diff| to the Go forward %.3g, cosine %.9f", batch, e, d, cos)
				}
			}
		})
	}
}

// checkGraph checks the file's interface and naming: the symbolic batch
// axis, the state_dict names of the initializers, and that no Reshape
// carries a traced batch size.
func checkGraph(t *testing.T, m *onnxpb.ModelProto, mod nn.Module) {
	t.Helper()
	if m.GetIrVersion() != IRVersion || m.GetOpsetImport()[0].GetVersion() != Opset {
		t.Errorf("ir %d opset %d", m.GetIrVersion(), m.GetOpsetImport()[0].GetVersion())
	}
	g := m.GetGraph()
	for _, v := range append(slices.Clone(g.GetInput()), g.GetOutput()...) {
		d0 := v.GetType().GetTensorType().GetShape().GetDim()[0]
		if d0.GetDimParam() != BatchAxis {
			t.Errorf("%s: first axis %v, want %q", v.GetName(), d0, BatchAxis)
		}
	}
	inits := map[string]bool{}
	for _, x := range g.GetInitializer() {
		inits[x.GetName()] = true
	}
	s := nn.StateOf(mod)
	for _, p := range s.Params {
		if !inits[p.Name] {
			t.Errorf("parameter %s is not an initializer", p.Name)
		}
	}
	for _, b := range s.Buffers {
		if b.T != nil && !inits[b.Name] {
			t.Errorf("buffer %s is not an initializer", b.Name)
		}
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Reshape" || n.GetOpType() == "Dropout" {
			t.Errorf("unexpected %s node %s in a ResNet export", n.GetOpType(), n.GetName())
		}
	}
}

// TestViTEndToEnd exports small ViTs (class-token and mean pooling, with a
// head) and compares ONNX Runtime with the Go forward at batch 1 and 7; the
// class token's broadcast over the batch is a batch-following constant.
func TestViTEndToEnd(t *testing.T) {
	for _, cfg := range []zoo.ViTConfig{
		{ImageSize: 16, PatchSize: 4, Dim: 32, Depth: 2, Heads: 4, MLPRatio: 2, Pool: "cls"},
		{ImageSize: 16, PatchSize: 8, InChannels: 1, Dim: 24, Depth: 1, Heads: 3, Pool: "mean", NumClasses: 5},
	} {
		name := fmt.Sprintf("vit-%s-d%d", cfg.Pool, cfg.Dim)
		t.Run(name, func(t *testing.T) {
			m, err := zoo.NewViT(cfg, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			randomizeState(m, 4)
			m.SetTraining(false)
			inC := max(cfg.InChannels, 3)
			if cfg.InChannels == 1 {
				inC = 1
			}
			fwd := func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
				return []*autograd.Var{m.Forward(tp, in[0])}
			}
			spec := Spec{
				Name:    name,
				Inputs:  []Input{{Name: "pixel_values", Shape: []int{1, inC, cfg.ImageSize, cfg.ImageSize}}},
				Outputs: []string{"embedding"},
				Forward: fwd,
				Module:  m,
			}
			path := filepath.Join(t.TempDir(), "model.onnx")
			if err := Export(spec, path, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			checkONNX(t, path)
			rng := rand.New(rand.NewPCG(5, 6))
			for _, batch := range []int{1, 7} {
				x := randTensor(rng, batch, inC, cfg.ImageSize, cfg.ImageSize)
				for _, e := range engines(t) {
					d, cos := compareEngine(t, e, path, fwd, []*tensor.Tensor{x}, 1e-4)
					t.Logf("batch %d, %s engine: max |diff| to the Go forward %.3g, cosine %.9f", batch, e, d, cos)
				}
			}
		})
	}
}

// TestExternalData forces the external-data layout with a tiny threshold:
// the big initializers move to model.onnx.data, the checker and ONNX
// Runtime still accept the file, and Load brings back the very same bytes.
func TestExternalData(t *testing.T) {
	m, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.125, NumClasses: 3}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	randomizeState(m, 3)
	calibrate(m, m.Forward, []int{8, 3, 8, 8})
	fwd := func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
		return []*autograd.Var{m.Forward(tp, in[0])}
	}
	spec := Spec{Name: "ext", Inputs: []Input{{Name: "pixel_values", Shape: []int{1, 3, 8, 8}}},
		Outputs: []string{"embedding"}, Forward: fwd, Module: m}
	mp, err := Trace(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inline, ext := filepath.Join(dir, "inline.onnx"), filepath.Join(dir, "model.onnx")
	if err := Save(mp, inline, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Save(mp, ext, SaveOptions{ExternalDataThreshold: 1}); err != nil {
		t.Fatal(err)
	}
	// Save must not have touched the model it was given.
	for _, x := range mp.GetGraph().GetInitializer() {
		if x.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || x.RawData == nil {
			t.Fatalf("Save modified initializer %s", x.GetName())
		}
	}
	is, es, ds := fileSize(t, inline), fileSize(t, ext), fileSize(t, ext+".data")
	t.Logf("inline %d bytes; external: model %d + data %d bytes", is, es, ds)
	if es > is/4 || ds < is*3/4 {
		t.Errorf("external layout did not move the weights out (model %d, data %d, inline %d)", es, ds, is)
	}
	back, err := Load(ext)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, x := range mp.GetGraph().GetInitializer() {
		want[x.GetName()] = x.GetRawData()
	}
	external := 0
	for _, x := range back.GetGraph().GetInitializer() {
		if !slices.Equal(x.GetRawData(), want[x.GetName()]) {
			t.Errorf("initializer %s differs after the external round trip", x.GetName())
		}
		if len(x.GetRawData()) >= 1024 {
			external++
		}
	}
	if external == 0 {
		t.Error("no initializer was large enough to go external")
	}
	checkONNX(t, ext)
	x := randTensor(rand.New(rand.NewPCG(9, 9)), 7, 3, 8, 8)
	for _, e := range engines(t) {
		d, _ := compareEngine(t, e, ext, fwd, []*tensor.Tensor{x}, 1e-4)
		t.Logf("batch 7 from external data, %s engine: max |diff| %.3g", e, d)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestLoadRejectsEscapingLocation: an external data location may not point
// outside the model's folder, by name or through a symlink; one inside it
// loads.
func TestLoadRejectsEscapingLocation(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte{0, 0, 128, 63}, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"link.data": secret, "sub": outside, "inside.data": "real.data"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "real.data"), []byte{0, 0, 128, 63}, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		loc string
		ok  bool
	}{
		{"../" + filepath.Base(outside) + "/secret", false}, {secret, false}, {"/etc/passwd", false}, {"", false},
		{"link.data", false}, {"sub/secret", false}, {"inside.data", true}, {"real.data", true},
	} {
		m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: &onnxpb.GraphProto{Initializer: []*onnxpb.TensorProto{{
			Name: proto.String("w"), DataType: proto.Int32(1), Dims: []int64{1},
			DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
			ExternalData: []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String(c.loc)}},
		}}}}
		path := filepath.Join(dir, "m.onnx")
		if err := Save(m, path, SaveOptions{ExternalDataThreshold: -1}); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if c.ok {
			if err != nil || string(got.GetGraph().GetInitializer()[0].GetRawData()) != "\x00\x00\x80?" {
				t.Errorf("location %q: %v", c.loc, err)
			}
		} else if !errors.Is(err, safepath.ErrEscape) {
			t.Errorf("location %q: got %v, want a refusal", c.loc, err)
		}
	}
}

// TestTraceErrors: models that cannot become a batch-independent inference
// graph are refused with a message saying why.
func TestTraceErrors(t *testing.T) {
	bn := nn.NewBatchNorm(3)
	lin := nn.NewLinear(4, 2, true, rand.New(rand.NewPCG(1, 1)))
	in := []Input{{Name: "x", Shape: []int{1, 3, 2, 2}}}
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"training batchnorm", Spec{Inputs: in, Outputs: []string{"y"}, Module: bn,
			Forward: func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var {
				return []*autograd.Var{bn.Forward(tp, x[0])}
			}},
			"SetTraining(false)"},
		{"input-derived constant", Spec{Inputs: in, Outputs: []string{"y"},
			Forward: func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var {
				c := tensor.New(x[0].Shape()...)
				copy(c.Data, x[0].Value.Data) // computed outside the tape
				return []*autograd.Var{tp.Add(x[0], autograd.Const(c))}
			}}, "one value along the batch axis"},
		{"batch-dependent slice", Spec{Inputs: in, Outputs: []string{"y"},
			Forward: func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var {
				return []*autograd.Var{tp.Slice(x[0], 0, 0, x[0].Shape()[0]-1)}
			}}, "depends on the batch size"},
		{"loss", Spec{Inputs: []Input{{Name: "x", Shape: []int{1, 4}}}, Outputs: []string{"y"}, Module: lin,
			Forward: func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var {
				return []*autograd.Var{tp.CrossEntropy(lin.Forward(tp, x[0]), make([]int, x[0].Shape()[0]))}
			}}, "loss ops"},
		{"op error", Spec{Inputs: in, Outputs: []string{"y"},
			Forward: func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var {
				return []*autograd.Var{tp.Reshape(x[0], 5, -1)}
			}},
			"Reshape"},
		{"arity", Spec{Inputs: in, Outputs: []string{"y", "z"},
			Forward: func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var { return []*autograd.Var{tp.ReLU(x[0])} }},
			"returned 1 outputs"},
		{"names", Spec{Inputs: in, Outputs: []string{"x"},
			Forward: func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var { return []*autograd.Var{tp.ReLU(x[0])} }},
			"used twice"},
	} {
		c.spec.Name = c.name
		_, err := Trace(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestImageSpecMetadata: the metadata lands in metadata_props, the file
// passes the checker, both engines report it, and the preprocessing JSON
// decodes.
func TestImageSpecMetadata(t *testing.T) {
	m, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.125}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	pp := &Preprocess{Channels: "RGB", Size: [2]int{8, 8}, Resize: "bilinear", Crop: "center", Scale: 1.0 / 255,
		Mean: []float64{0.4914, 0.4822, 0.4465}, Std: []float64{0.247, 0.243, 0.261}}
	spec, err := ImageSpec("resnet18-cifar", m, 3, 8, 8, Metadata{Method: "simclr", Backbone: "resnet18-cifar",
		EmbeddingDim: m.FeatureDim(), Version: "0.1.0", WeightsSHA256: strings.Repeat("ab", 32), Preprocess: pp})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := Export(spec, path, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	checkONNX(t, path)
	for _, e := range engines(t) {
		s, err := onnxrt.OpenEngine(path, e, onnxrt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		md := s.Metadata()
		s.Close()
		var back Preprocess
		if err := json.Unmarshal([]byte(md["sslzoo.preprocess"]), &back); err != nil || back.Layout != "NCHW" || back.Mean[2] != 0.4465 {
			t.Errorf("%s: preprocess %q: %v", e, md["sslzoo.preprocess"], err)
		}
		if md["sslzoo.embedding_dim"] != fmt.Sprint(m.FeatureDim()) || md["sslzoo.method"] != "simclr" || md["sslzoo.weights_sha256"] == "" {
			t.Errorf("%s: metadata %v", e, md)
		}
	}
	if _, err := (Metadata{Preprocess: &Preprocess{Mean: []float64{1}}}).Props(); err == nil {
		t.Error("mismatched mean/std accepted")
	}
}

// TestBERTEndToEnd exports a small BERT with int64 inputs input_ids and
// attention_mask (padding included) and compares both engines with the Go
// forward at batch 1 and 7. The word embeddings read input_ids, the
// all-zero token types follow the batch, and the additive attention mask
// (computed in Go from the ints) is recognised as an affine function of
// attention_mask.
func TestBERTEndToEnd(t *testing.T) {
	cfg := zoo.BERTConfig{VocabSize: 50, Hidden: 32, Layers: 2, Heads: 4, Intermediate: 64, MaxPositions: 16,
		HiddenDropout: 0.1, AttentionDropout: 0.1, Pooler: true}
	m, err := zoo.NewBERT(cfg, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	randomizeState(m, 5)
	m.SetTraining(false)
	const seq = 8
	fwd := func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
		out := m.Forward(tp, zoo.BERTInput{Batch: in[0].Shape()[0], Seq: seq, IDs: IntsOf(in[0]), Mask: IntsOf(in[1])})
		return []*autograd.Var{out.Sequence, out.Pooled}
	}
	spec := Spec{
		Name: "bert-test",
		Inputs: []Input{
			{Name: "input_ids", Shape: []int{1, seq}, Int: true, Low: 0, High: cfg.VocabSize},
			{Name: "attention_mask", Shape: []int{1, seq}, Int: true, Low: 0, High: 2},
		},
		Outputs: []string{"last_hidden_state", "pooler_output"},
		Forward: fwd,
		Module:  m,
	}
	path := filepath.Join(t.TempDir(), "bert.onnx")
	if err := Export(spec, path, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	checkONNX(t, path)
	mp, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]bool{}
	for _, n := range mp.GetGraph().GetNode() {
		for _, in := range n.GetInput() {
			uses[in] = true
		}
	}
	for _, v := range mp.GetGraph().GetInput() {
		if v.GetType().GetTensorType().GetElemType() != int32(onnxpb.TensorProto_INT64) || !uses[v.GetName()] {
			t.Errorf("input %s: want an int64 input that the graph reads", v.GetName())
		}
	}
	for _, p := range nn.StateOf(m).Params {
		if !p.Var.RequiresGrad() {
			t.Fatalf("export left parameter %s frozen", p.Name)
		}
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for _, batch := range []int{1, 7} {
		ids, mask := make([]int64, batch*seq), make([]int64, batch*seq)
		fIDs, fMask := tensor.New(batch, seq), tensor.New(batch, seq)
		for i := range ids {
			ids[i] = int64(rng.IntN(cfg.VocabSize))
			// Sequences of different lengths, padded at the end.
			if i%seq < seq-(i/seq)%4 {
				mask[i] = 1
			}
			fIDs.Data[i], fMask.Data[i] = float32(ids[i]), float32(mask[i])
		}
		want := goForward(t, fwd, []*tensor.Tensor{fIDs, fMask})
		for _, e := range engines(t) {
			s, err := onnxrt.OpenEngine(path, e, onnxrt.Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Run(onnxrt.NewTensor([]int{batch, seq}, ids), onnxrt.NewTensor([]int{batch, seq}, mask))
			s.Close()
			if err != nil {
				t.Fatalf("%s: %v", e, err)
			}
			for o, w := range want {
				g, _ := got[o].Float32s()
				if !slices.Equal(got[o].Shape, w.Shape) {
					t.Fatalf("%s output %d: shape %v, want %v", e, o, got[o].Shape, w.Shape)
				}
				var diff float64
				for j := range g {
					diff = max(diff, math.Abs(float64(g[j]-w.Data[j])))
				}
				if !(diff <= 1e-4) {
					t.Errorf("%s batch %d output %s: max |diff| %.3g", e, batch, spec.Outputs[o], diff)
				}
				t.Logf("batch %d, %s engine, %s: max |diff| to the Go forward %.3g", batch, e, spec.Outputs[o], diff)
			}
		}
	}
}
