package onnxrt

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export/onnxpb"
)

func floatInit(name string, rng *rand.Rand, shape ...int64) *onnxpb.TensorProto {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(Float32)), Dims: shape, FloatData: data}
}

func intInit(name string, v ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(Int64)), Dims: []int64{int64(len(v))}, Int64Data: v}
}

func scalarInit(name string, v float32) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(Float32)), FloatData: []float32{v}}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// fusableModel holds one of each pattern the plan fuses: Conv+BN+Relu,
// a weight Transpose (folded), MatMul+bias+GELU on a packed linear, and
// MatMul(k, Transpose(k)). extraOutputs adds graph outputs in the middle
// of those patterns, which must stop the fusions there.
func fusableModel(extraOutputs ...string) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	bnVar := floatInit("bn_var", rng, 4)
	for i, v := range bnVar.FloatData {
		bnVar.FloatData[i] = v*v + 0.1
	}
	outputs := []*onnxpb.ValueInfoProto{tensorValue("y", Float32, dims("n", 5, 5))}
	for _, o := range extraOutputs {
		outputs = append(outputs, tensorValue(o, Float32, nil))
	}
	return model(&onnxpb.GraphProto{
		Name: proto.String("fusable"),
		Node: []*onnxpb.NodeProto{
			node("Conv", []string{"x", "conv_w", "conv_b"}, []string{"conv"}, intsAttr("pads", 1, 1, 1, 1)),
			node("BatchNormalization", []string{"conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"}, []string{"bn"}),
			node("Relu", []string{"bn"}, []string{"relu"}),
			node("GlobalAveragePool", []string{"relu"}, []string{"pool"}),
			node("Flatten", []string{"pool"}, []string{"h"}),
			node("Transpose", []string{"fc_w"}, []string{"fc_wt"}, intsAttr("perm", 1, 0)),
			node("MatMul", []string{"h", "fc_wt"}, []string{"mm"}),
			node("Add", []string{"mm", "fc_b"}, []string{"lin"}),
			node("Div", []string{"lin", "sqrt2"}, []string{"div"}),
			node("Erf", []string{"div"}, []string{"erf"}),
			node("Add", []string{"erf", "one"}, []string{"erf1"}),
			node("Mul", []string{"lin", "erf1"}, []string{"mul"}),
			node("Mul", []string{"mul", "half"}, []string{"gelu"}),
			node("Unsqueeze", []string{"gelu", "axis2"}, []string{"k"}),
			node("Transpose", []string{"k"}, []string{"kt"}, intsAttr("perm", 0, 2, 1)),
			node("MatMul", []string{"k", "kt"}, []string{"y"}),
		},
		Initializer: []*onnxpb.TensorProto{
			floatInit("conv_w", rng, 4, 3, 3, 3), floatInit("conv_b", rng, 4),
			floatInit("bn_scale", rng, 4), floatInit("bn_bias", rng, 4), floatInit("bn_mean", rng, 4), bnVar,
			floatInit("fc_w", rng, 5, 4), floatInit("fc_b", rng, 5),
			scalarInit("sqrt2", math.Sqrt2), scalarInit("one", 1), scalarInit("half", 0.5),
			intInit("axis2", 2),
		},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("n", 3, 8, 8))},
		Output: outputs,
	}, nil)
}

func planOps(s *GoSession) []string {
	var ops []string
	for _, st := range s.plan.steps {
		ops = append(ops, st.node.op)
	}
	return ops
}

func randomInput(rng *rand.Rand, shape ...int) *Tensor {
	data := make([]float32, 1)
	for _, d := range shape {
		data = make([]float32, len(data)*d)
	}
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	return NewTensor(shape, data)
}

// TestPlanFusionsMatchORT: the fused plan computes what ONNX Runtime
// computes, and fuses only where no one else reads the value in between.
func TestPlanFusionsMatchORT(t *testing.T) {
	needORT(t)
	for _, c := range []struct {
		name   string
		extra  []string
		wantOp []string
	}{
		// The GELU goes into the MatMul by a constant (a packed linear).
		{"all fused", nil, []string{"Conv", "GlobalAveragePool", "Flatten", "MatMul", "Unsqueeze", "MatMul"}},
		// conv is read twice, so the BatchNormalization stays (and takes
		// the Relu); lin may still come from the fused MatMul.
		{"intermediates are outputs", []string{"conv", "lin", "erf", "kt"},
			[]string{"Conv", "BatchNormalization", "GlobalAveragePool", "Flatten", "MatMul", "Div", "Erf", "Add", "Mul", "Mul", "Unsqueeze", "Transpose", "MatMul"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := fusableModel(c.extra...)
			goS, err := OpenGoModel("fusable", mustParse(t, b))
			if err != nil {
				t.Fatal(err)
			}
			if got := planOps(goS); !slices.Equal(got, c.wantOp) {
				t.Errorf("plan %v, want %v", got, c.wantOp)
			}
			ort, err := OpenBytes("fusable", b, Options{IntraOpThreads: 1, Optimization: OptBasic})
			if err != nil {
				t.Fatal(err)
			}
			defer ort.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			// Buffers are recycled across sizes; the packed linear is
			// packed for the first and must serve the others.
			for _, n := range []int{1, 3, 1030, 2} {
				x := randomInput(rng, n, 3, 8, 8)
				want, err := ort.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				got, err := goS.Run(x)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if err := Close(got[i], want[i], 1e-5, 1e-5); err != nil {
						t.Errorf("batch %d output %d: %v", n, i, err)
					}
				}
			}
		})
	}
}

// TestPlanConcurrentRuns: Runs sharing a session (and its pooled tapes)
// each get their own answer.
func TestPlanConcurrentRuns(t *testing.T) {
	s, err := OpenGoModel("fusable", mustParse(t, fusableModel()))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	inputs := make([]*Tensor, 6)
	wants := make([][]*Tensor, len(inputs))
	for i := range inputs {
		inputs[i] = randomInput(rng, 1+i%3, 3, 8, 8)
		if wants[i], err = s.Run(inputs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range inputs {
		wg.Go(func() {
			for range 5 {
				got, err := s.Run(inputs[i])
				if err != nil {
					t.Error(err)
					return
				}
				if err := Close(got[0], wants[i][0], 0, 0); err != nil {
					t.Errorf("input %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func mustParse(t *testing.T, b []byte) *onnxpb.ModelProto {
	t.Helper()
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeclaredSizesRefused: sizes a file declares are bounded before
// anything is allocated, also when the plan folds them at load time.
func TestDeclaredSizesRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		nodes []*onnxpb.NodeProto
		inits []*onnxpb.TensorProto
		want  string
	}{
		{"ConstantOfShape 2^40", []*onnxpb.NodeProto{
			node("ConstantOfShape", []string{"huge"}, []string{"zeros"}),
			node("Add", []string{"x", "zeros"}, []string{"y"}),
		}, []*onnxpb.TensorProto{intInit("huge", 1<<20, 1<<20)}, "SSLZOO_MAX_TENSOR_ELEMENTS"},
		{"Reshape overflowing", []*onnxpb.NodeProto{
			node("Reshape", []string{"x", "target"}, []string{"y"}),
		}, []*onnxpb.TensorProto{intInit("target", 1<<32, 1<<32, 0)}, "overflows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := model(&onnxpb.GraphProto{
				Name: proto.String("declared"), Node: c.nodes, Initializer: c.inits,
				Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims(1))},
				Output: []*onnxpb.ValueInfoProto{tensorValue("y", Float32, nil)},
			}, nil)
			s, err := OpenGoModel("declared", mustParse(t, b))
			if err == nil {
				_, err = s.Run(NewTensor([]int{1}, []float32{1}))
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// residualModel is two ResNet blocks and what may follow them: a
// downsampling shortcut computed after the Conv it is added to, a
// shortcut whose last reader is the Add, element-wise ops on NHWC values
// (a scalar Mul, then a per-channel Add that must see NCHW), an NHWC
// value that is a graph output, and a Conv plus a broadcast constant Add
// (not a shortcut). With the graph output y1 the second shortcut lives
// on after its Add; without, the Add is its last reader and the Conv
// accumulates into its buffer.
func residualModel(outputY1 bool) []byte {
	outputs := []*onnxpb.ValueInfoProto{tensorValue("y", Float32, nil), tensorValue("a2", Float32, nil), tensorValue("bb", Float32, nil)}
	if outputY1 {
		outputs = append(outputs, tensorValue("y1", Float32, nil))
	}
	rng := rand.New(rand.NewPCG(9, 10))
	return model(&onnxpb.GraphProto{
		Name: proto.String("residual"),
		Node: []*onnxpb.NodeProto{
			node("Conv", []string{"x", "w1", "b1"}, []string{"c1"}, intsAttr("pads", 1, 1, 1, 1)),
			node("Relu", []string{"c1"}, []string{"r1"}),
			node("Conv", []string{"r1", "w2"}, []string{"c2"}, intsAttr("pads", 1, 1, 1, 1)),
			node("Conv", []string{"x", "wd", "bd"}, []string{"ds"}),
			node("Add", []string{"c2", "ds"}, []string{"a1"}),
			node("Relu", []string{"a1"}, []string{"y1"}),
			node("Conv", []string{"y1", "w3", "b3"}, []string{"c3"}, intsAttr("pads", 1, 1, 1, 1)),
			node("Add", []string{"y1", "c3"}, []string{"a2"}),
			node("Mul", []string{"a2", "scale"}, []string{"m"}),
			node("Add", []string{"m", "chan"}, []string{"bb"}),
			node("MaxPool", []string{"bb"}, []string{"p"}, intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2)),
			node("Conv", []string{"p", "w4", "b4"}, []string{"c4"}),
			node("Add", []string{"c4", "chan"}, []string{"y"}),
		},
		Initializer: []*onnxpb.TensorProto{
			floatInit("w1", rng, 8, 4, 3, 3), floatInit("b1", rng, 8), floatInit("w2", rng, 8, 8, 3, 3),
			floatInit("wd", rng, 8, 4, 1, 1), floatInit("bd", rng, 8),
			floatInit("w3", rng, 8, 8, 3, 3), floatInit("b3", rng, 8),
			scalarInit("scale", 0.5), floatInit("chan", rng, 1, 8, 1, 1),
			floatInit("w4", rng, 8, 8, 1, 1), floatInit("b4", rng, 8),
		},
		Input:  []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("n", 4, 6, 6))},
		Output: outputs,
	}, nil)
}

// TestPlanLayoutsMatchORT: with activations passed on NHWC between
// convolutions and shortcuts summed into them, every output (NHWC inside
// the plan or not) is what ONNX Runtime computes.
func TestPlanLayoutsMatchORT(t *testing.T) {
	needORT(t)
	for _, outputY1 := range []bool{false, true} {
		b := residualModel(outputY1)
		goS, err := OpenGoModel("residual", mustParse(t, b))
		if err != nil {
			t.Fatal(err)
		}
		// Relus fused; both shortcuts and the broadcast Add merged into Convs.
		want := []string{"Conv", "Conv", "Conv", "Conv", "Mul", "Add", "MaxPool", "Conv"}
		if got := planOps(goS); !slices.Equal(got, want) {
			t.Errorf("plan %v, want %v", got, want)
		}
		ort, err := OpenBytes("residual", b, Options{IntraOpThreads: 1, Optimization: OptBasic})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(11, 12))
		for _, n := range []int{2, 1, 3} {
			x := randomInput(rng, n, 4, 6, 6)
			want, err := ort.Run(x)
			if err != nil {
				t.Fatal(err)
			}
			got, err := goS.Run(x)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if err := Close(got[i], want[i], 1e-4, 1e-4); err != nil {
					t.Errorf("y1 an output %v, batch %d, output %s: %v", outputY1, n, goS.Outputs()[i].Name, err)
				}
			}
		}
		ort.Close()
	}
}

// attentionVariant picks how attentionModel writes the pattern.
type attentionVariant struct {
	separate bool // three projections (not one sliced), scores divided by √D
	masked   bool // a padding mask input, added to the scores as BERT's bias
	keysOnce bool // the keys transposed by one Transpose(0 2 3 1), as torch.onnx writes it
}

// attentionModel is a transformer's attention core as sslzoo exports it
// (one qkv projection, sliced into heads) or in the variant's other
// forms. extraOutputs makes intermediates graph outputs, which must stop
// the fusion.
func attentionModel(v attentionVariant, extraOutputs ...string) []byte {
	rng := rand.New(rand.NewPCG(13, 14))
	const tokens, heads, dim = 5, 2, 6
	width := int64(heads * dim)
	outputs := []*onnxpb.ValueInfoProto{tensorValue("y", Float32, nil)}
	for _, o := range extraOutputs {
		outputs = append(outputs, tensorValue(o, Float32, nil))
	}
	inputs := []*onnxpb.ValueInfoProto{tensorValue("x", Float32, dims("n", tokens, width))}
	var nodes []*onnxpb.NodeProto
	inits := []*onnxpb.TensorProto{
		intInit("split", 0, tokens, heads, dim), intInit("split_inferred", -1, tokens, heads, dim),
		intInit("merge", 0, tokens, width), scalarInit("scale", 1/float32(math.Sqrt(dim))),
		scalarInit("root", float32(math.Sqrt(dim))), intInit("mask_shape", -1, 1, 1, tokens),
	}
	src := [3]string{"qkv", "qkv", "qkv"}
	if v.separate {
		for i, p := range []string{"q", "k", "v"} {
			nodes = append(nodes, node("MatMul", []string{"x", p + "_w"}, []string{p + "_lin"}))
			inits = append(inits, floatInit(p+"_w", rng, width, width))
			src[i] = p + "_lin"
		}
	} else {
		nodes = append(nodes, node("MatMul", []string{"x", "qkv_w"}, []string{"qkv"}))
		inits = append(inits, floatInit("qkv_w", rng, width, 3*width), intInit("last", 2))
		for i, p := range []string{"q", "k", "v"} {
			inits = append(inits, intInit(p+"_start", int64(i)*width), intInit(p+"_end", int64(i+1)*width))
			nodes = append(nodes, node("Slice", []string{"qkv", p + "_start", p + "_end", "last"}, []string{p + "_lin"}))
			src[i] = p + "_lin"
		}
		nodes = append(nodes, node("Mul", []string{"q_lin", "scale"}, []string{"q_scaled"}))
		src[0] = "q_scaled"
	}
	for i, p := range []string{"q", "k", "v"} {
		target, perm := "split", []int64{0, 2, 1, 3}
		if i == 1 {
			target = "split_inferred"
			if v.keysOnce {
				perm = []int64{0, 2, 3, 1}
			}
		}
		nodes = append(nodes,
			node("Reshape", []string{src[i], target}, []string{p + "_split"}),
			node("Transpose", []string{p + "_split"}, []string{p + "_heads"}, intsAttr("perm", perm...)))
	}
	keys := "k_heads"
	if !v.keysOnce {
		nodes = append(nodes, node("Transpose", []string{"k_heads"}, []string{"k_t"}, intsAttr("perm", 0, 1, 3, 2)))
		keys = "k_t"
	}
	nodes = append(nodes, node("MatMul", []string{"q_heads", keys}, []string{"scores"}))
	probsIn := "scores"
	if v.separate {
		nodes = append(nodes, node("Div", []string{"scores", "root"}, []string{"scores_scaled"}))
		probsIn = "scores_scaled"
	}
	if v.masked {
		inputs = append(inputs, tensorValue("mask", Float32, dims("n", tokens)))
		nodes = append(nodes,
			node("Reshape", []string{"mask", "mask_shape"}, []string{"mask_bias"}),
			node("Add", []string{"mask_bias", probsIn}, []string{"scores_masked"}))
		probsIn = "scores_masked"
	}
	nodes = append(nodes,
		node("Softmax", []string{probsIn}, []string{"probs"}, &onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(-1)}),
		node("MatMul", []string{"probs", "v_heads"}, []string{"mixed"}),
		node("Transpose", []string{"mixed"}, []string{"mixed_t"}, intsAttr("perm", 0, 2, 1, 3)),
		node("Reshape", []string{"mixed_t", "merge"}, []string{"y"}))
	return model(&onnxpb.GraphProto{
		Name: proto.String("attention"), Node: nodes, Initializer: inits, Input: inputs, Output: outputs,
	}, nil)
}

// TestAttentionFusionMatchesORT: the fused attention computes what ONNX
// Runtime computes from the unfused nodes, and an intermediate that is a
// graph output keeps the pattern unfused.
func TestAttentionFusionMatchesORT(t *testing.T) {
	needORT(t)
	for _, c := range []struct {
		name      string
		variant   attentionVariant
		extra     []string
		wantFused bool
	}{
		{"one projection, sliced", attentionVariant{}, nil, true},
		{"three projections, scores divided", attentionVariant{separate: true}, nil, true},
		{"masked, keys transposed once", attentionVariant{separate: true, masked: true, keysOnce: true}, nil, true},
		{"sliced and masked", attentionVariant{masked: true}, nil, true},
		{"probabilities are an output", attentionVariant{}, []string{"probs"}, false},
		{"a head split is an output", attentionVariant{separate: true}, []string{"k_split"}, false},
		{"masked scores are an output", attentionVariant{masked: true}, []string{"scores_masked"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := attentionModel(c.variant, c.extra...)
			goS, err := OpenGoModel("attention", mustParse(t, b))
			if err != nil {
				t.Fatal(err)
			}
			if fused := slices.Contains(planOps(goS), "Attention"); fused != c.wantFused {
				t.Errorf("plan %v: fused %v, want %v", planOps(goS), fused, c.wantFused)
			}
			ort, err := OpenBytes("attention", b, Options{IntraOpThreads: 1, Optimization: OptBasic})
			if err != nil {
				t.Fatal(err)
			}
			defer ort.Close()
			rng := rand.New(rand.NewPCG(15, 16))
			for _, n := range []int{1, 3, 2} {
				in := []*Tensor{randomInput(rng, n, 5, 12)}
				if c.variant.masked {
					// Padding: the last tokens of some rows masked out.
					m := make([]float32, n*5)
					for i := range m {
						if i%5 >= 5-i/5%3 {
							m[i] = -10000
						}
					}
					in = append(in, NewTensor([]int{n, 5}, m))
				}
				want, err := ort.Run(in...)
				if err != nil {
					t.Fatal(err)
				}
				got, err := goS.Run(in...)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if err := Close(got[i], want[i], 1e-5, 1e-5); err != nil {
						t.Errorf("batch %d output %d: %v", n, i, err)
					}
				}
			}
		})
	}
}
