package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// Layer is a module with a single-input forward pass, which is what
// Sequential chains.
type Layer interface {
	Module
	Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// mustInit runs an initialiser whose shape the constructor itself chose, so
// an error is a bug in this package, not bad input.
func mustInit(err error) {
	if err != nil {
		panic(fmt.Sprintf("nn: initialising a layer: %v", err))
	}
}

// checkDims rejects non-positive layer sizes with an OpError (layers are
// built from configs, and Catch turns that into an ordinary error).
func checkDims(layer string, dims ...int) {
	for _, d := range dims {
		if d <= 0 {
			autograd.Failf(layer, "sizes %v must all be positive", dims)
		}
	}
}

// Linear is torch.nn.Linear: y = x W^T + b with W [out, in].
type Linear struct {
	Weight *autograd.Var // [out, in]
	Bias   *autograd.Var // [out], nil without bias
}

// NewLinear builds a Linear layer with PyTorch's default initialisation.
func NewLinear(in, out int, bias bool, rng *rand.Rand) *Linear {
	checkDims("Linear", in, out)
	l := &Linear{Weight: autograd.NewParam("weight", tensor.New(out, in))}
	var b *tensor.Tensor
	if bias {
		b = tensor.New(out)
		l.Bias = autograd.NewParam("bias", b)
	}
	mustInit(DefaultInit(l.Weight.Value, b, rng))
	return l
}

func (l *Linear) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.Linear(x, l.Weight, l.Bias)
}

func (l *Linear) CollectState(prefix string, s *State) {
	s.Params = append(s.Params, Param{Join(prefix, "weight"), l.Weight})
	if l.Bias != nil {
		s.Params = append(s.Params, Param{Join(prefix, "bias"), l.Bias})
	}
}

func (l *Linear) SetTraining(bool) {}

// LayerNorm is torch.nn.LayerNorm over the last axis.
type LayerNorm struct {
	Weight, Bias *autograd.Var // [D] each; nil when not elementwise-affine
	Eps          float32
}

// NewLayerNorm builds a LayerNorm over d features with weight 1 and bias 0
// (PyTorch's default eps is 1e-5; ViTs use 1e-6, BERT 1e-12).
func NewLayerNorm(d int, eps float32) *LayerNorm {
	checkDims("LayerNorm", d)
	w := tensor.New(d)
	Ones(w)
	return &LayerNorm{
		Weight: autograd.NewParam("weight", w),
		Bias:   autograd.NewParam("bias", tensor.New(d)),
		Eps:    eps,
	}
}

func (l *LayerNorm) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.LayerNorm(x, l.Weight, l.Bias, l.Eps)
}

func (l *LayerNorm) CollectState(prefix string, s *State) {
	if l.Weight != nil {
		s.Params = append(s.Params, Param{Join(prefix, "weight"), l.Weight})
	}
	if l.Bias != nil {
		s.Params = append(s.Params, Param{Join(prefix, "bias"), l.Bias})
	}
}

func (l *LayerNorm) SetTraining(bool) {}

// Embedding is torch.nn.Embedding: a lookup table of n vectors of size d.
type Embedding struct {
	Weight *autograd.Var // [n, d]
}

// NewEmbedding builds an embedding table initialised from N(0, 1), as
// PyTorch does.
func NewEmbedding(n, d int, rng *rand.Rand) *Embedding {
	checkDims("Embedding", n, d)
	w := tensor.New(n, d)
	Normal(w, 0, 1, rng)
	return &Embedding{Weight: autograd.NewParam("weight", w)}
}

// Forward looks up ids, laid out in shape, giving shape+[d].
func (e *Embedding) Forward(tp *autograd.Tape, ids []int, shape []int) *autograd.Var {
	return tp.Embedding(e.Weight, ids, shape)
}

func (e *Embedding) CollectState(prefix string, s *State) {
	s.Params = append(s.Params, Param{Join(prefix, "weight"), e.Weight})
}

func (e *Embedding) SetTraining(bool) {}

// Dropout is torch.nn.Dropout: active in training mode only. Modules start
// in training mode, as in PyTorch.
type Dropout struct {
	P   float32
	Rng *rand.Rand // the mask stream; must be set when P > 0 and training

	eval bool
}

// NewDropout builds a dropout layer drawing its masks from rng.
func NewDropout(p float32, rng *rand.Rand) *Dropout { return &Dropout{P: p, Rng: rng} }

func (d *Dropout) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.Dropout(x, d.P, !d.eval, d.Rng)
}

func (d *Dropout) CollectState(string, *State) {}
func (d *Dropout) SetTraining(on bool)         { d.eval = !on }

// Stateless activation layers, for Sequential.
type (
	ReLU     struct{}
	GELU     struct{}
	Tanh     struct{}
	Sigmoid  struct{}
	Identity struct{}
	// Flatten is torch.nn.Flatten(): [N, ...] -> [N, prod(...)].
	Flatten struct{}
)

func (ReLU) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var    { return tp.ReLU(x) }
func (GELU) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var    { return tp.GELU(x) }
func (Tanh) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var    { return tp.Tanh(x) }
func (Sigmoid) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var { return tp.Sigmoid(x) }
func (Identity) Forward(_ *autograd.Tape, x *autograd.Var) *autograd.Var { return x }
func (Flatten) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	if len(x.Value.Shape) < 1 {
		autograd.Failf("Flatten", "x is a scalar")
	}
	return tp.Reshape(x, x.Value.Shape[0], -1)
}

func (ReLU) CollectState(string, *State)     {}
func (GELU) CollectState(string, *State)     {}
func (Tanh) CollectState(string, *State)     {}
func (Sigmoid) CollectState(string, *State)  {}
func (Identity) CollectState(string, *State) {}
func (Flatten) CollectState(string, *State)  {}
func (ReLU) SetTraining(bool)                {}
func (GELU) SetTraining(bool)                {}
func (Tanh) SetTraining(bool)                {}
func (Sigmoid) SetTraining(bool)             {}
func (Identity) SetTraining(bool)            {}
func (Flatten) SetTraining(bool)             {}

// Activation returns the layer for an activation name: "relu", "gelu",
// "tanh", "sigmoid" or "identity".
func Activation(name string) (Layer, error) {
	switch name {
	case "relu":
		return ReLU{}, nil
	case "gelu":
		return GELU{}, nil
	case "tanh":
		return Tanh{}, nil
	case "sigmoid":
		return Sigmoid{}, nil
	case "identity", "none", "":
		return Identity{}, nil
	}
	return nil, fmt.Errorf("nn: unknown activation %q (known: relu, gelu, tanh, sigmoid, identity)", name)
}

// Sequential is torch.nn.Sequential: layers applied in order, named "0",
// "1", ... in the state_dict (stateless layers such as ReLU use up an index
// too, exactly as in PyTorch).
type Sequential struct {
	Layers []Layer
}

// NewSequential chains layers.
func NewSequential(layers ...Layer) *Sequential { return &Sequential{Layers: layers} }

func (s *Sequential) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	for _, l := range s.Layers {
		x = l.Forward(tp, x)
	}
	return x
}

func (s *Sequential) CollectState(prefix string, st *State) {
	for i, l := range s.Layers {
		l.CollectState(Join(prefix, fmt.Sprint(i)), st)
	}
}

func (s *Sequential) SetTraining(on bool) {
	for _, l := range s.Layers {
		l.SetTraining(on)
	}
}
