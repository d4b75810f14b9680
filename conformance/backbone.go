package conformance

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// Backbone is an export.Backbone with the checking tools the suite runs
// it through: random inputs of the right kind and the model's own Go
// forward, the reference every engine is judged against.
type Backbone struct {
	*export.Backbone
}

// BackboneOptions adjust an export (see export.BackboneOptions).
type BackboneOptions = export.BackboneOptions

// NewBackbone wraps m for export as export.NewBackbone does.
func NewBackbone(arch string, m zoo.Backbone, opts BackboneOptions) (*Backbone, error) {
	b, err := export.NewBackbone(arch, m, opts)
	if err != nil {
		return nil, err
	}
	return &Backbone{b}, nil
}

// RandomInputs makes a batch the backbone accepts: standard normal pixels,
// or token ids with right padding (rows of different lengths, id PadID and
// mask 0 past each row's length; the first token is never padding).
func (b *Backbone) RandomInputs(rng *rand.Rand, batch int) []*onnxrt.Tensor {
	if !b.Text {
		x := make([]float32, batch*b.Channels*b.Height*b.Width)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return []*onnxrt.Tensor{onnxrt.NewTensor([]int{batch, b.Channels, b.Height, b.Width}, x)}
	}
	ids, mask := make([]int64, batch*b.Seq), make([]int64, batch*b.Seq)
	for r := range batch {
		n := b.Seq - (r*(b.Seq/4+1))%b.Seq // full length on row 0, shorter later
		for j := range b.Seq {
			i := r*b.Seq + j
			if j < n {
				ids[i], mask[i] = int64(1+rng.IntN(b.Vocab-1)), 1
				if ids[i] == int64(b.PadID) {
					ids[i] = int64((b.PadID + 1) % b.Vocab)
				}
			} else {
				ids[i] = int64(b.PadID)
			}
		}
	}
	return []*onnxrt.Tensor{onnxrt.NewTensor([]int{batch, b.Seq}, ids), onnxrt.NewTensor([]int{batch, b.Seq}, mask)}
}

// GoForward runs the model's own forward (the reference the exports are
// judged against) on engine-style inputs and copies the outputs off the
// tape.
func (b *Backbone) GoForward(inputs []*onnxrt.Tensor) ([]*onnxrt.Tensor, error) {
	return goForward(b.Spec.Forward, inputs)
}

// goForward runs fwd on runtime tensors. Int64 inputs reach the forward as
// float32 values, as the tracer passes them (read them with export.IntsOf).
func goForward(fwd func(*autograd.Tape, []*autograd.Var) []*autograd.Var, inputs []*onnxrt.Tensor) ([]*onnxrt.Tensor, error) {
	vars := make([]*autograd.Var, len(inputs))
	for i, t := range inputs {
		x := tensor.New(t.Shape...)
		switch d := t.Data.(type) {
		case []float32:
			copy(x.Data, d)
		case []int64:
			for j, v := range d {
				x.Data[j] = float32(v)
			}
		default:
			return nil, fmt.Errorf("input %d: %v tensors are not supported by the Go forward", i, t.DType)
		}
		vars[i] = autograd.Const(x)
	}
	tp := autograd.NewTape()
	defer tp.Reset()
	var outs []*onnxrt.Tensor
	err := autograd.Catch(func() {
		tp.NoGrad(func() {
			for _, o := range fwd(tp, vars) {
				outs = append(outs, onnxrt.NewTensor(o.Value.Shape, slices.Clone(o.Value.Data)))
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return outs, nil
}
