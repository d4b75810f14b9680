package export

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/runtime"
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

// compareORT runs the exported file in ONNX Runtime and checks every
// output against the Go forward: the largest |ORT-Go| must stay within
// tol*max(1, max|Go|) (float32 rounding drifts with depth, so deep models
// are judged against their output scale). It returns the largest absolute
// difference and the smallest cosine similarity over the outputs.
func compareORT(t *testing.T, path string, fwd func(*autograd.Tape, []*autograd.Var) []*autograd.Var, in []*tensor.Tensor, tol float64) (maxDiff, minCos float64) {
	t.Helper()
	s, err := runtime.Open(path, runtime.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rin := make([]*runtime.Tensor, len(in))
	for i, x := range in {
		rin[i] = runtime.NewTensor(x.Shape, x.Data)
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
			t.Fatalf("output %d: ORT shape %v, Go shape %v", i, got[i].Shape, w.Shape)
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
			t.Fatalf("output %d element %d: ORT %v, Go %v (|diff| %.3g > %.3g = %g * max(1, max|Go| %.3g))",
				i, worst, g[worst], w.Data[worst], diff, tol*max(1, scale), tol, scale)
		}
		maxDiff = max(maxDiff, diff)
		if ng > 0 && nw > 0 {
			minCos = min(minCos, dot/math.Sqrt(ng*nw))
		}
	}
	return maxDiff, minCos
}

func ortAvailable(t *testing.T) bool {
	if err := runtime.Available(); err != nil {
		t.Logf("ONNX Runtime unavailable, skipping the ORT comparison: %v", err)
		return false
	}
	return true
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
			if !ortAvailable(t) {
				return
			}
			rng := rand.New(rand.NewPCG(5, 6))
			for _, batch := range []int{1, 7} {
				x := randTensor(rng, batch, inC, c.size, c.size)
				d, cos := compareORT(t, path, fwd, []*tensor.Tensor{x}, 1e-4)
				t.Logf("batch %d: max |ORT-Go| %.3g, cosine %.9f", batch, d, cos)
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
