package conformance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
)

// params makes named random parameters for one op case.
type params struct {
	rng *rand.Rand
	n   int
}

func (p *params) new(shape ...int) *autograd.Var {
	p.n++
	return autograd.NewParam(fmt.Sprintf("p%d", p.n), randTensor(p.rng, shape...))
}

// pos is a parameter with values in [0.5, 1.5) (variances, divisors).
func (p *params) pos(shape ...int) *autograd.Var {
	v := p.new(shape...)
	for i := range v.Value.Data {
		v.Value.Data[i] = 0.5 + p.rng.Float32()
	}
	return v
}

type fwd1 = func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var

// opCase is one engine op (or a short chain around it) exported alone.
// in lists the input shapes; their first axis is the batch.
type opCase struct {
	name  string
	in    [][]int
	build func(p *params) fwd1
}

func conv(pr autograd.ConvParams, o, c, k int, bias bool) func(p *params) fwd1 {
	return func(p *params) fwd1 {
		g := max(pr.Groups, 1)
		w := p.new(o, c/g, k, k)
		var b *autograd.Var
		if bias {
			b = p.new(o)
		}
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Conv2d(x[0], w, b, pr) }
	}
}

func batchNormCase(c int, affine bool) func(p *params) fwd1 {
	return func(p *params) fwd1 {
		var w, b *autograd.Var
		if affine {
			w, b = p.new(c), p.new(c)
		}
		mean, vr := p.new(c).Value, p.pos(c).Value
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.BatchNorm(x[0], w, b, mean, vr, false, 0.1, 1e-5)
		}
	}
}

func unary(f func(tp *autograd.Tape, x *autograd.Var) *autograd.Var) func(p *params) fwd1 {
	return func(*params) fwd1 {
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return f(tp, x[0]) }
	}
}

// positive keeps inputs away from 0 for Log, Sqrt and fractional powers.
func positive(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.AddScalar(tp.Abs(x), 0.25) }

func binop(f func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var, paramShape ...int) func(p *params) fwd1 {
	return func(p *params) fwd1 {
		var w *autograd.Var
		if paramShape != nil {
			w = p.pos(paramShape...)
		}
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			if w != nil {
				return f(tp, x[0], w)
			}
			return f(tp, x[0], x[1])
		}
	}
}

var opCases = []opCase{
	{"Conv2d 3x3 pad1", [][]int{{1, 3, 7, 6}}, conv(autograd.ConvParams{PadH: 1, PadW: 1}, 4, 3, 3, true)},
	{"Conv2d 3x3 stride2 no-bias", [][]int{{1, 4, 9, 8}}, conv(autograd.ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, 5, 4, 3, false)},
	{"Conv2d 1x1", [][]int{{1, 6, 5, 5}}, conv(autograd.ConvParams{}, 3, 6, 1, true)},
	{"Conv2d dilation2 groups2", [][]int{{1, 4, 9, 9}}, conv(autograd.ConvParams{DilationH: 2, DilationW: 2, Groups: 2, PadH: 2, PadW: 2}, 6, 4, 3, true)},
	{"Conv2d 7x7 stride2 pad3", [][]int{{1, 2, 12, 12}}, conv(autograd.ConvParams{StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}, 3, 2, 7, false)},
	{"BatchNorm 4-D", [][]int{{1, 3, 4, 5}}, batchNormCase(3, true)},
	{"BatchNorm 2-D no-affine", [][]int{{1, 6}}, batchNormCase(6, false)},
	{"MaxPool2d k3 s2 p1", [][]int{{1, 2, 9, 8}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.MaxPool2d(x, 3, 2, 1) })},
	{"MaxPool2d k2 s2", [][]int{{1, 3, 6, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.MaxPool2d(x, 2, 2, 0) })},
	{"AvgPool2d k3 s1 p1", [][]int{{1, 2, 5, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.AvgPool2d(x, 3, 1, 1) })},
	{"AvgPool2d k2 s2", [][]int{{1, 3, 8, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.AvgPool2d(x, 2, 2, 0) })},
	{"GlobalAvgPool", [][]int{{1, 5, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.GlobalAvgPool(x) })},
	{"Linear 2-D", [][]int{{1, 7}}, func(p *params) fwd1 {
		w, b := p.new(5, 7), p.new(5)
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], w, b) }
	}},
	{"Linear 3-D no-bias", [][]int{{1, 4, 6}}, func(p *params) fwd1 {
		w := p.new(3, 6)
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], w, nil) }
	}},
	{"Linear 3-D", [][]int{{1, 2, 6}}, func(p *params) fwd1 {
		w, b := p.new(4, 6), p.new(4)
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.Linear(x[0], w, b) }
	}},
	{"MatMul batched", [][]int{{1, 3, 4}, {1, 4, 5}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.MatMul(a, b) })},
	{"MatMul shared 2-D", [][]int{{1, 3, 4}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.MatMul(a, b) }, 4, 6)},
	{"MatMulT transB", [][]int{{1, 2, 3, 4}, {1, 2, 5, 4}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.MatMulT(a, b, false, true) })},
	{"MatMulT transA", [][]int{{1, 4, 3}, {1, 4, 5}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.MatMulT(a, b, true, false) })},
	{"Add same shape", [][]int{{1, 3, 4}, {1, 3, 4}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.Add(a, b) })},
	{"Add broadcast param", [][]int{{1, 3, 4}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.Add(a, b) }, 4)},
	{"Sub broadcast", [][]int{{1, 3, 1}, {1, 1, 4}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.Sub(a, b) })},
	{"Mul broadcast param", [][]int{{1, 2, 3, 4}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.Mul(a, b) }, 3, 1)},
	{"Div by param", [][]int{{1, 5}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var { return tp.Div(a, b) }, 5)},
	{"ReLU", [][]int{{1, 3, 5}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.ReLU(x) })},
	{"GELU", [][]int{{1, 4, 8}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.GELU(tp.MulScalar(x, 3)) })},
	{"Sigmoid", [][]int{{1, 7}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sigmoid(tp.MulScalar(x, 4)) })},
	{"Tanh", [][]int{{1, 7}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Tanh(tp.MulScalar(x, 2)) })},
	{"Neg", [][]int{{1, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Neg(x) })},
	{"Exp", [][]int{{1, 2, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Exp(x) })},
	{"Log", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Log(positive(tp, x)) })},
	{"Sqrt", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sqrt(positive(tp, x)) })},
	{"Abs", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Abs(x) })},
	{"Square", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Square(x) })},
	{"AddScalar", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.AddScalar(x, -1.5) })},
	{"MulScalar", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.MulScalar(x, 0.3) })},
	{"PowScalar 3", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.PowScalar(x, 3) })},
	{"PowScalar 0.5", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.PowScalar(positive(tp, x), 0.5) })},
	{"PowScalar 2", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.PowScalar(x, 2) })},
	{"Sum axis1 keep", [][]int{{1, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sum(x, []int{1}, true) })},
	{"Sum axes12", [][]int{{1, 3, 4, 2}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sum(x, []int{1, 2}, false) })},
	{"Sum over batch", [][]int{{1, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sum(x, []int{0}, false) })},
	{"Mean axis-1", [][]int{{1, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Mean(x, []int{-1}, false) })},
	{"Mean axes keep", [][]int{{1, 2, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Mean(x, []int{2, 3}, true) })},
	{"SumAll", [][]int{{1, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.SumAll(x) })},
	{"MeanAll", [][]int{{1, 5}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.MeanAll(x) })},
	{"Max axis1", [][]int{{1, 4, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Max(x, 1, false) })},
	{"Max axis-1 keep", [][]int{{1, 4, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Max(x, -1, true) })},
	{"Softmax last", [][]int{{1, 3, 7}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Softmax(tp.MulScalar(x, 3), -1) })},
	{"Softmax axis1", [][]int{{1, 5, 2, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Softmax(x, 1) })},
	{"LogSoftmax", [][]int{{1, 9}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.LogSoftmax(tp.MulScalar(x, 5), 1) })},
	{"LayerNorm affine", [][]int{{1, 3, 8}}, func(p *params) fwd1 {
		w, b := p.new(8), p.new(8)
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.LayerNorm(x[0], w, b, 1e-5) }
	}},
	{"LayerNorm plain", [][]int{{1, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.LayerNorm(x, nil, nil, 1e-6) })},
	{"LayerNorm weight only", [][]int{{1, 2, 5}}, func(p *params) fwd1 {
		w := p.new(5)
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var { return tp.LayerNorm(x[0], w, nil, 1e-12) }
	}},
	{"L2Normalize axis1", [][]int{{1, 8}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.L2Normalize(x, 1, 1e-12) })},
	{"L2Normalize axis1 of 3", [][]int{{1, 4, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.L2Normalize(x, 1, 1e-12) })},
	{"Reshape flatten", [][]int{{1, 2, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Reshape(x, x.Shape()[0], -1) })},
	{"Reshape split heads", [][]int{{1, 5, 12}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return tp.Reshape(x, x.Shape()[0], 5, 3, 4)
	})},
	{"Reshape merge batch", [][]int{{1, 5, 6}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return tp.Reshape(tp.ReLU(tp.Reshape(x, x.Shape()[0]*5, 6)), x.Shape()[0], 30)
	})},
	{"Transpose", [][]int{{1, 2, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Transpose(x, 0, 2, 3, 1) })},
	{"Concat inputs axis1", [][]int{{1, 2, 3}, {1, 4, 3}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var {
		return tp.Concat([]*autograd.Var{a, b, a}, 1)
	})},
	{"Concat batch axis", [][]int{{1, 3}, {1, 3}}, binop(func(tp *autograd.Tape, a, b *autograd.Var) *autograd.Var {
		return tp.Concat([]*autograd.Var{a, b}, 0)
	})},
	{"Slice axis1", [][]int{{1, 6, 2}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Slice(x, 1, 1, -2) })},
	{"Slice batch", [][]int{{1, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return tp.Slice(x, 0, 0, x.Shape()[0])
	})},
	{"Gather axis1", [][]int{{1, 5, 2}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return tp.Gather(x, 1, []int{4, 0, 0, 2})
	})},
	{"Gather axis-1", [][]int{{1, 3, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return tp.Gather(x, -1, []int{3, 1})
	})},
	{"Detach", [][]int{{1, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Detach(tp.Exp(x)) })},
	{"Embedding position ids", [][]int{{1, 4, 3}}, func(p *params) fwd1 {
		table := p.new(6, 3)
		return func(tp *autograd.Tape, x []*autograd.Var) *autograd.Var {
			return tp.Add(x[0], tp.Embedding(table, []int{5, 0, 3, 3}, []int{4}))
		}
	}},
	{"Dropout eval", [][]int{{1, 4}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return tp.Dropout(tp.ReLU(x), 0.5, false, nil)
	})},
	{"batch-shaped fill", [][]int{{1, 2, 3}}, unary(func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		fill := tensor.New(x.Shape()[0], 1, 3)
		fill.Fill(1.5)
		return tp.Add(autograd.Const(fill), x)
	})},
}

func randTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// OpTolerance is the per-op check: |engine - Go| <= OpAbs + OpRel*|Go|
// element-wise.
const (
	OpAbs = 1e-4
	OpRel = 1e-5
)

// OpBatches are the batch sizes every op case runs at.
var OpBatches = []int{1, 5}

// OpResult is one op case of the per-op suite.
type OpResult struct {
	Name string `json:"name"`
	// EngineOps are the engine ops the case records (autograd op names).
	EngineOps []string `json:"engine_ops"`
	// ORT and Go are "ok", a mismatch, or "" when the engine did not run.
	ORT   string `json:"ort,omitempty"`
	Go    string `json:"go_engine"`
	Error string `json:"error,omitempty"`
	OK    bool   `json:"ok"`
}

// OpSuite is the per-op suite's outcome.
type OpSuite struct {
	Cases []*OpResult `json:"cases"`
	// Uncovered lists exportable engine ops that no case exercises.
	Uncovered []string `json:"uncovered,omitempty"`
	// Checker is "ok", the files onnx.checker rejected, or "" when skipped.
	Checker string   `json:"onnx_checker,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
	OK      bool     `json:"ok"`
}

// RunOps exports every engine op alone (a short chain where the op needs
// positive inputs), checks the files with onnx.checker, and runs each on
// the Go engine and, unless noORT or it is missing, in ONNX Runtime, on
// random inputs at OpBatches against the Go kernel.
func RunOps(noORT, noChecker bool) (*OpSuite, error) {
	dir, err := os.MkdirTemp("", "sslzoo-ops-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s := &OpSuite{OK: true}
	engines := []string{onnxrt.EngineGo}
	switch {
	case noORT:
		s.Skipped = append(s.Skipped, "onnxruntime: not requested")
	case onnxrt.Available() != nil:
		s.Skipped = append(s.Skipped, "onnxruntime: "+oneLine(onnxrt.Available()))
	default:
		engines = append(engines, onnxrt.EngineORT)
	}
	covered := map[string]bool{}
	var paths []string
	for i, c := range opCases {
		r := &OpResult{Name: c.name, OK: true}
		s.Cases = append(s.Cases, r)
		p := &params{rng: rand.New(rand.NewPCG(uint64(i), 1))}
		f := c.build(p)
		fwd := func(tp *autograd.Tape, x []*autograd.Var) []*autograd.Var { return []*autograd.Var{f(tp, x)} }
		spec := export.Spec{Name: c.name, Outputs: []string{"y"}, Forward: fwd}
		for j, shape := range c.in {
			spec.Inputs = append(spec.Inputs, export.Input{Name: fmt.Sprintf("x%d", j), Shape: shape})
		}
		// Record which engine ops the case exercises.
		tp := autograd.NewTape()
		var in []*autograd.Var
		for _, shape := range c.in {
			in = append(in, autograd.Const(randTensor(p.rng, shape...)))
		}
		if err := autograd.Catch(func() { f(tp, in) }); err != nil {
			r.Error, r.OK = oneLine(err), false
			continue
		}
		for _, n := range tp.Nodes() {
			if !slices.Contains(r.EngineOps, n.Op) {
				r.EngineOps = append(r.EngineOps, n.Op)
			}
			covered[n.Op] = true
		}
		tp.Reset()
		path := filepath.Join(dir, fmt.Sprintf("op%02d.onnx", i))
		if err := export.Export(spec, path, export.SaveOptions{}); err != nil {
			r.Error, r.OK = oneLine(err), false
			continue
		}
		paths = append(paths, path)
		rng := rand.New(rand.NewPCG(uint64(i), 2))
		for _, batch := range OpBatches {
			var xs []*onnxrt.Tensor
			for _, shape := range c.in {
				x := randTensor(rng, append([]int{batch}, shape[1:]...)...)
				xs = append(xs, onnxrt.NewTensor(x.Shape, x.Data))
			}
			for _, e := range engines {
				res := &r.Go
				if e == onnxrt.EngineORT {
					res = &r.ORT
				}
				if *res != "" && *res != "ok" {
					continue // report the first mismatch
				}
				*res = "ok"
				if err := compareOp(e, path, fwd, xs); err != nil {
					*res = fmt.Sprintf("batch %d: %s", batch, oneLine(err))
					r.OK = false
				}
			}
		}
	}
	for _, r := range s.Cases {
		s.OK = s.OK && r.OK
	}
	for _, op := range export.ExportableOps() {
		if !covered[op] {
			s.Uncovered = append(s.Uncovered, op)
		}
	}
	sort.Strings(s.Uncovered)
	if len(s.Uncovered) > 0 {
		s.OK = false
	}
	if !noChecker {
		msg, skip := checkMany(paths)
		if skip != "" {
			s.Skipped = append(s.Skipped, "onnx.checker: "+skip)
		} else {
			s.Checker = msg
			s.OK = s.OK && msg == "ok"
		}
	}
	return s, nil
}

// compareOp is the element-wise per-op check.
func compareOp(engine, path string, fwd func(*autograd.Tape, []*autograd.Var) []*autograd.Var, xs []*onnxrt.Tensor) error {
	s, err := onnxrt.OpenEngine(path, engine, onnxrt.Options{IntraOpThreads: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	got, err := s.Run(xs...)
	if err != nil {
		return err
	}
	want, err := goForward(fwd, xs)
	if err != nil {
		return err
	}
	g, err := got[0].Float32s()
	if err != nil {
		return err
	}
	w, _ := want[0].Float32s()
	if !slices.Equal(got[0].Shape, want[0].Shape) {
		return fmt.Errorf("engine shape %v, Go forward shape %v", got[0].Shape, want[0].Shape)
	}
	for j := range g {
		a, b := float64(g[j]), float64(w[j])
		if d := math.Abs(a - b); !(d <= OpAbs+OpRel*math.Abs(b)) {
			return fmt.Errorf("element %d: engine %v, Go forward %v (|diff| %.3g)", j, a, b, d)
		}
	}
	return nil
}
