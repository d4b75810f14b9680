// Package maegraph exports a trained MAE's masked-reconstruction graph
// (encoder and decoder) to ONNX, so another stack can reproduce sslzoo's
// reconstructions of any masking. It sits apart from package export
// because it needs zoo/ssl's MAE, training code the plain exporter and
// everything that reads ONNX metadata should not pull in.
package maegraph

import (
	"encoding/json"
	"fmt"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// Key is the metadata key describing the inputs and output of an MAE
// reconstruction graph.
const Key = "sslzoo.mae"

// Reconstruction wraps a trained MAE (encoder and decoder) as the Spec of
// its masked-reconstruction graph: inputs "pixel_values" [batch, C, H, W]
// at the training size and "mask" [batch, L] float32 (1 hides a patch, 0
// shows it, patches in row-major order), output "pred" [batch, L, p*p*C],
// the decoder's pixels for every patch in patchify order (normalised per
// patch when the MAE was trained with norm_pix_loss).
//
// The graph takes the mask, not MAE's random noise, so that another stack
// can reproduce sslzoo's reconstruction of any masking. Each mask row must
// hide exactly L-Keep patches (Keep = int(L*(1-mask ratio)), fixed at
// export and recorded in the metadata). The visible patches reach the
// encoder in patch order rather than MAE's shuffled order; attention,
// LayerNorm and the MLPs treat tokens as a set (their positions are already
// added), so the result is the same up to float rounding. The selection is
// a 0/1 matrix built from the mask with plain arithmetic (a running count
// of visible patches compared with each slot), so every engine runs it.
func Reconstruction(name string, m *ssl.MAE, meta export.Metadata) (export.Spec, error) {
	bc := m.Encoder.Config
	g := bc.Grid()
	l := g * g
	keep := int(float64(l) * (1 - m.Config.MaskRatio))
	if keep < 1 {
		return export.Spec{}, fmt.Errorf("mae reconstruction %s: mask ratio %g keeps no patch of %d", name, m.Config.MaskRatio, l)
	}
	if meta.Method == "" {
		meta.Method = "mae"
	}
	desc, _ := json.Marshal(map[string]any{
		"graph":         "masked reconstruction",
		"patch_size":    bc.PatchSize,
		"grid":          []int{g, g},
		"patches":       l,
		"keep":          keep,
		"mask_ratio":    m.Config.MaskRatio,
		"norm_pix_loss": m.Config.NormPixLoss,
		"mask":          fmt.Sprintf("float32 [batch, %d], 1 = hidden patch, row-major patch order; exactly %d hidden per row", l, l-keep),
		"pred":          "[batch, patches, patch*patch*channels] in patchify order (p, q, c); normalised per patch when norm_pix_loss",
	})
	props, err := meta.WithExtra(Key, string(desc)).Props()
	if err != nil {
		return export.Spec{}, fmt.Errorf("export %s: %w", name, err)
	}
	m.SetTraining(false)
	// upper[i][j] = 1 for i <= j: vis @ upper counts the visible patches up
	// to each position. slots[k] = k+1 is the count at the k-th kept patch.
	upper := tensor.New(l, l)
	for i := range l {
		for j := i; j < l; j++ {
			upper.Data[i*l+j] = 1
		}
	}
	slots := tensor.New(keep, 1)
	for k := range keep {
		slots.Data[k] = float32(k + 1)
	}
	upperV, slotsV := autograd.Const(upper), autograd.Const(slots)
	enc, dec := m.Encoder, m.Decoder
	return export.Spec{
		Name: name,
		Inputs: []export.Input{
			{Name: "pixel_values", Shape: []int{1, bc.InChannels, bc.ImageSize, bc.ImageSize}},
			{Name: "mask", Shape: []int{1, l}},
		},
		Outputs: []string{"pred"},
		Forward: func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
			x, mask := in[0], in[1]
			n := x.Shape()[0]
			tokens := enc.Embed(tp, x)
			cls := tp.Slice(tokens, 1, 0, 1)
			patches := tp.Slice(tokens, 1, 1, 1+l)
			vis := tp.AddScalar(tp.Neg(mask), 1)                                   // [n, L]
			count := tp.Reshape(tp.MatMul(vis, upperV), n, 1, l)                   // [n, 1, L]
			hit := tp.ReLU(tp.AddScalar(tp.Neg(tp.Abs(tp.Sub(count, slotsV))), 1)) // [n, K, L]: 1 where count == k+1
			sel := tp.Mul(hit, tp.Reshape(vis, n, 1, l))                           // only at visible patches
			kept := tp.MatMul(sel, patches)                                        // [n, K, D]
			latent := enc.Norm.Forward(tp, enc.Encode(tp, tp.Concat([]*autograd.Var{cls, kept}, 1)))
			h := dec.Embed.Forward(tp, latent)                                         // [n, 1+K, Dd]
			placed := tp.MatMul(tp.Transpose(sel, 0, 2, 1), tp.Slice(h, 1, 1, 1+keep)) // [n, L, Dd]
			hidden := tp.Mul(tp.Reshape(mask, n, l, 1), dec.MaskToken)                 // [n, L, Dd]
			h = tp.Concat([]*autograd.Var{tp.Slice(h, 1, 0, 1), tp.Add(placed, hidden)}, 1)
			h = tp.Add(h, dec.PosEmbed)
			for _, b := range dec.Blocks {
				h = b.Forward(tp, h)
			}
			pred := dec.Pred.Forward(tp, dec.Norm.Forward(tp, h))
			return []*autograd.Var{tp.Slice(pred, 1, 1, 1+l)}
		},
		Module:          m,
		Metadata:        props,
		ProducerVersion: meta.Version,
	}, nil
}
