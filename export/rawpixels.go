package export

import (
	"fmt"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/tensor"
)

// RawPixelsInput is the input of a RawPixels graph.
const RawPixelsInput = "pixels"

// RawPixels wraps an image Spec (one float32 NCHW input) so that the graph
// takes uint8 pixels [batch, H, W, C], as image decoders hand them out,
// and does the transpose, scale and normalisation inside. A caller that
// has decoded and resized an image needs nothing else. p must match the
// model's input: p.Size and p.NumChannels() against s.Inputs[0].
func RawPixels(s Spec, p preprocess.Spec) (Spec, error) {
	if len(s.Inputs) != 1 || len(s.Inputs[0].Shape) != 4 || s.Inputs[0].Int || s.Inputs[0].Uint8 {
		return Spec{}, fmt.Errorf("export %s: --raw-pixels needs an image model with one float32 [batch, C, H, W] input", s.Name)
	}
	c, h, w := s.Inputs[0].Shape[1], s.Inputs[0].Shape[2], s.Inputs[0].Shape[3]
	if p.NumChannels() != c || p.Size != [2]int{h, w} {
		return Spec{}, fmt.Errorf("export %s: preprocessing gives %d channel(s) at %dx%d but the model takes %d at %dx%d",
			s.Name, p.NumChannels(), p.Size[0], p.Size[1], c, h, w)
	}
	if len(p.Mean) != c || len(p.Std) != c {
		return Spec{}, fmt.Errorf("export %s: preprocessing has %d means and %d stds for %d channels", s.Name, len(p.Mean), len(p.Std), c)
	}
	// (x*scale - mean)/std as one multiply and one add per channel.
	mul, add := tensor.New(1, c, 1, 1), tensor.New(1, c, 1, 1)
	for i := range c {
		mul.Data[i] = float32(p.Scale / p.Std[i])
		add.Data[i] = float32(-p.Mean[i] / p.Std[i])
	}
	inner := s.Forward
	out := s
	out.Inputs = []Input{{Name: RawPixelsInput, Shape: []int{1, h, w, c}, Uint8: true}}
	out.Forward = func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
		x := tp.Transpose(in[0], 0, 3, 1, 2)
		x = tp.Add(tp.Mul(x, autograd.Const(mul)), autograd.Const(add))
		return inner(tp, []*autograd.Var{x})
	}
	meta := map[string]string{}
	for k, v := range s.Metadata {
		meta[k] = v
	}
	meta["sslzoo.input"] = `{"name":"pixels","dtype":"uint8","layout":"NHWC","note":"decoded, converted and resized pixels; scale and normalisation happen inside the graph"}`
	out.Metadata = meta
	return out, nil
}
