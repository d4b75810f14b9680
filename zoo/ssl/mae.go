package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// MAEConfig configures a masked autoencoder (He et al. 2021, "Masked
// Autoencoders Are Scalable Vision Learners").
type MAEConfig struct {
	// MaskRatio is the fraction of patches hidden from the encoder (0.75).
	MaskRatio float64
	// DecoderDim, DecoderDepth and DecoderHeads size the lightweight
	// decoder (512, 8 and 16 in the paper); DecoderMLPRatio its MLP (4).
	DecoderDim, DecoderDepth, DecoderHeads int
	DecoderMLPRatio                        float64
	// NormPixLoss regresses each patch's pixels normalised by the patch's
	// own mean and (unbiased) variance, the paper's better-performing
	// target.
	NormPixLoss bool
	// Optim is AdamW with betas (0.9, 0.95) in the recipe. Biases and
	// other 1-D parameters get no weight decay, as in the reference.
	Optim OptimConfig
}

// DefaultMAEConfig is the paper's pre-training recipe scaled to the run:
// mask ratio 0.75, normalised-pixel loss, AdamW with betas (0.9, 0.95),
// learning rate 1.5e-4*batch/256, weight decay 0.05, 40 warmup epochs and a
// cosine decay to 0. The decoder is the paper's (512 wide, 8 blocks, 16
// heads) for backbones at least 512 wide; for the small ViTs sslzoo trains
// on CPUs it is as wide as the backbone with its head count and 2 blocks, so
// that the decoder stays lighter than the encoder as the paper intends.
func DefaultMAEConfig(backbone *zoo.ViT, batch, stepsPerEpoch, epochs int) MAEConfig {
	c := MAEConfig{MaskRatio: 0.75, DecoderDim: 512, DecoderDepth: 8, DecoderHeads: 16, DecoderMLPRatio: 4, NormPixLoss: true,
		Optim: OptimConfig{Name: "adamw", LR: scaleLR(1.5e-4, batch), WeightDecay: 0.05, Beta1: 0.9, Beta2: 0.95,
			WarmupSteps: warmupOf(40, epochs, stepsPerEpoch), TotalSteps: epochs * stepsPerEpoch}}
	if backbone != nil && backbone.Config.Dim < 512 {
		c.DecoderDim, c.DecoderDepth, c.DecoderHeads = backbone.Config.Dim, 2, backbone.Config.Heads
	}
	return c
}

// MAE is a masked autoencoder around a ViT. The encoder sees only a random
// subset of each image's patches (plus the class token); the decoder gets
// the encoded tokens back in place among shared mask tokens and predicts
// the pixels of every patch; the loss counts the hidden patches only.
//
// Its state uses the reference implementation's names: the encoder under
// "backbone." (timm names), then mask_token, decoder_embed,
// decoder_pos_embed, decoder_blocks.N, decoder_norm and decoder_pred. Both
// position tables are fixed 2-D sine-cosine embeddings, as in the
// reference, and are not trained.
type MAE struct {
	Config  MAEConfig
	Encoder *zoo.ViT
	Decoder *MAEDecoder
	parts
	opt nn.Optimizer
	// maskSeed and the step counter fix each step's masks, so a run
	// resumed from a checkpoint draws the masks an unbroken run would.
	maskSeed uint64
}

// MAEDecoder is the MAE decoder with the reference's names.
type MAEDecoder struct {
	Embed     *nn.Linear    // decoder_embed
	MaskToken *autograd.Var // mask_token [1, 1, DecoderDim]
	PosEmbed  *autograd.Var // decoder_pos_embed [1, 1+L, DecoderDim]
	Blocks    []*zoo.ViTBlock
	Norm      *nn.LayerNorm // decoder_norm
	Pred      *nn.Linear    // decoder_pred: DecoderDim -> patch*patch*channels
}

// CollectState implements nn.Module.
func (d *MAEDecoder) CollectState(prefix string, s *nn.State) {
	s.Params = append(s.Params, nn.Param{Name: nn.Join(prefix, "mask_token"), Var: d.MaskToken})
	d.Embed.CollectState(nn.Join(prefix, "decoder_embed"), s)
	s.Params = append(s.Params, nn.Param{Name: nn.Join(prefix, "decoder_pos_embed"), Var: d.PosEmbed})
	for i, b := range d.Blocks {
		b.CollectState(nn.Join(prefix, "decoder_blocks."+strconv.Itoa(i)), s)
	}
	d.Norm.CollectState(nn.Join(prefix, "decoder_norm"), s)
	d.Pred.CollectState(nn.Join(prefix, "decoder_pred"), s)
}

// SetTraining implements nn.Module (the decoder has no dropout).
func (d *MAEDecoder) SetTraining(bool) {}

// NewMAE wraps a ViT backbone (Pool "cls": MAE normalises every encoded
// token with the final norm) with a decoder and the optimizer, and
// initialises both as the reference does: Xavier-uniform Linear weights
// and patch projection, zero biases, class and mask tokens normal with std
// 0.02, fixed sine-cosine position tables. The masks of step s come from a
// PCG seeded with a number drawn from rng here and s.
func NewMAE(cfg MAEConfig, backbone *zoo.ViT, rng *rand.Rand) (*MAE, error) {
	if backbone == nil {
		return nil, fmt.Errorf("mae: nil backbone")
	}
	bc := backbone.Config
	g := bc.Grid()
	if cfg.DecoderMLPRatio == 0 {
		cfg.DecoderMLPRatio = 4
	}
	switch {
	case backbone.Norm == nil:
		return nil, fmt.Errorf("mae: backbone pool %q has no final norm over the tokens; MAE needs a ViT with Pool \"cls\"", bc.Pool)
	case !(cfg.MaskRatio >= 0 && cfg.MaskRatio < 1):
		return nil, fmt.Errorf("mae: mask ratio %g outside [0, 1)", cfg.MaskRatio)
	case cfg.DecoderDim < 1 || cfg.DecoderDepth < 0 || cfg.DecoderHeads < 1 || cfg.DecoderDim%cfg.DecoderHeads != 0:
		return nil, fmt.Errorf("mae: decoder dim %d, depth %d, heads %d: need dim > 0 divisible by heads > 0", cfg.DecoderDim, cfg.DecoderDepth, cfg.DecoderHeads)
	case bc.Dim%4 != 0 || cfg.DecoderDim%4 != 0:
		return nil, fmt.Errorf("mae: encoder dim %d and decoder dim %d must be multiples of 4 for the 2-D sine-cosine position embedding", bc.Dim, cfg.DecoderDim)
	case !(cfg.DecoderMLPRatio > 0) || int(float64(cfg.DecoderDim)*cfg.DecoderMLPRatio) < 1:
		return nil, fmt.Errorf("mae: decoder MLP ratio %g", cfg.DecoderMLPRatio)
	}
	dd, p := cfg.DecoderDim, bc.PatchSize
	dec := &MAEDecoder{
		Embed:     nn.NewLinear(bc.Dim, dd, true, rng),
		MaskToken: autograd.NewParam("mask_token", tensor.New(1, 1, dd)),
		PosEmbed:  autograd.NewParam("decoder_pos_embed", tensor.FromSlice(SinCosPosEmbed(dd, g, true), 1, 1+g*g, dd)),
		Norm:      nn.NewLayerNorm(dd, 1e-6),
		Pred:      nn.NewLinear(dd, p*p*bc.InChannels, true, rng),
	}
	hidden := int(float64(dd) * cfg.DecoderMLPRatio)
	for range cfg.DecoderDepth {
		dec.Blocks = append(dec.Blocks, &zoo.ViTBlock{
			Norm1: nn.NewLayerNorm(dd, 1e-6), QKV: nn.NewLinear(dd, 3*dd, true, rng), Proj: nn.NewLinear(dd, dd, true, rng),
			Norm2: nn.NewLayerNorm(dd, 1e-6), FC1: nn.NewLinear(dd, hidden, true, rng), FC2: nn.NewLinear(hidden, dd, true, rng),
			Heads: cfg.DecoderHeads,
		})
	}
	m := &MAE{Config: cfg, Encoder: backbone, Decoder: dec, maskSeed: rng.Uint64()}
	if err := m.initWeights(rng); err != nil {
		return nil, fmt.Errorf("mae: %w", err)
	}
	backbone.PosEmbed.SetRequiresGrad(false)
	dec.PosEmbed.SetRequiresGrad(false)
	m.list = group{{"backbone", backbone, true}, {"", dec, true}}
	var decay, noDecay []nn.Param
	for _, prm := range m.trainable() {
		switch {
		case !prm.Var.RequiresGrad():
		case len(prm.Var.Shape()) <= 1 || strings.HasSuffix(prm.Name, ".bias"):
			noDecay = append(noDecay, prm)
		default:
			decay = append(decay, prm)
		}
	}
	if cfg.Optim.Name != "adamw" {
		return nil, fmt.Errorf("mae: optimizer %q; the recipe uses adamw", cfg.Optim.Name)
	}
	if err := cfg.Optim.validate(); err != nil {
		return nil, fmt.Errorf("mae: %w", err)
	}
	oc := cfg.Optim
	m.opt = NewAdamWGroups(decay, noDecay, nn.AdamWConfig{LR: float32(oc.LRAt(0)), Beta1: float32(oc.Beta1),
		Beta2: float32(oc.Beta2), WeightDecay: float32(oc.WeightDecay)})
	m.SetTraining(true)
	return m, nil
}

// initWeights applies the reference's initialisation to encoder and
// decoder.
func (m *MAE) initWeights(rng *rand.Rand) error {
	e, d := m.Encoder, m.Decoder
	g := e.Config.Grid()
	copy(e.PosEmbed.Value.Data, SinCosPosEmbed(e.Config.Dim, g, true))
	// The patch projection is initialised like a Linear on its flattened
	// [out, in*p*p] view.
	w := e.PatchEmbed.Weight.Value
	flat := &tensor.Tensor{Shape: []int{w.Shape[0], w.Numel() / w.Shape[0]}, Data: w.Data}
	if err := nn.XavierUniform(flat, 1, rng); err != nil {
		return err
	}
	nn.Normal(e.ClsToken.Value, 0, 0.02, rng)
	nn.Normal(d.MaskToken.Value, 0, 0.02, rng)
	linears := []*nn.Linear{d.Embed, d.Pred}
	norms := []*nn.LayerNorm{e.Norm, d.Norm}
	for _, bs := range [][]*zoo.ViTBlock{e.Blocks, d.Blocks} {
		for _, b := range bs {
			linears = append(linears, b.QKV, b.Proj, b.FC1, b.FC2)
			norms = append(norms, b.Norm1, b.Norm2)
		}
	}
	for _, l := range linears {
		if err := nn.XavierUniform(l.Weight.Value, 1, rng); err != nil {
			return err
		}
		if l.Bias != nil {
			l.Bias.Value.Zero()
		}
	}
	for _, n := range norms {
		n.Weight.Value.Fill(1)
		n.Bias.Value.Zero()
	}
	return nil
}

func (m *MAE) Name() string            { return "mae" }
func (m *MAE) Backbone() Encoder       { return m.Encoder }
func (m *MAE) Optimizer() nn.Optimizer { return m.opt }
func (m *MAE) Configuration() any      { return m.Config }
func (m *MAE) Schedule() OptimConfig   { return m.Config.Optim }

// SinCosPosEmbed is MAE's fixed 2-D sine-cosine position table for a
// grid x grid patch layout, [grid*grid (+1 with cls), dim] row-major: the
// first half of each row encodes the patch's column, the second half its
// row, each as sines then cosines of position/10000^(2i/(dim/2)). The class
// token's row is zero.
func SinCosPosEmbed(dim, grid int, cls bool) []float32 {
	off := 0
	if cls {
		off = 1
	}
	out := make([]float32, (off+grid*grid)*dim)
	half, quarter := dim/2, dim/4
	for r := range grid {
		for c := range grid {
			row := out[(off+r*grid+c)*dim:]
			for k, pos := range [2]float64{float64(c), float64(r)} {
				part := row[k*half:]
				for i := range quarter {
					omega := 1 / math.Pow(10000, float64(i)/(float64(half)/2))
					part[i] = float32(math.Sin(pos * omega))
					part[quarter+i] = float32(math.Cos(pos * omega))
				}
			}
		}
	}
	return out
}

// MAEMasking is one batch's random split of patches into kept and hidden,
// laid out as the reference's random_masking returns it.
type MAEMasking struct {
	Batch, Patches, Keep int
	// IDsKeep [Batch*Keep] lists each image's visible patches, in the order
	// the encoder sees them; IDsRestore [Batch*Patches] maps patch positions
	// back from that shuffled order.
	IDsKeep, IDsRestore []int
	// Mask [Batch*Patches] is 1 for hidden patches, 0 for visible ones.
	Mask []float32
}

// RandomMasking keeps the int(patches*(1-ratio)) patches with the smallest
// noise in each image, as MAE's argsort of uniform noise does. noise holds
// batch*patches values.
func RandomMasking(noise []float32, batch, patches int, ratio float64) (MAEMasking, error) {
	if batch < 1 || patches < 1 || len(noise) != batch*patches {
		return MAEMasking{}, fmt.Errorf("mae masking: %d noise values for %d images of %d patches", len(noise), batch, patches)
	}
	if !(ratio >= 0 && ratio < 1) {
		return MAEMasking{}, fmt.Errorf("mae masking: ratio %g outside [0, 1)", ratio)
	}
	keep := int(float64(patches) * (1 - ratio))
	mk := MAEMasking{Batch: batch, Patches: patches, Keep: keep,
		IDsKeep: make([]int, batch*keep), IDsRestore: make([]int, batch*patches), Mask: make([]float32, batch*patches)}
	shuffle := make([]int, patches)
	for b := range batch {
		nz := noise[b*patches : (b+1)*patches]
		for i := range shuffle {
			shuffle[i] = i
		}
		// Stable, so equal noise keeps the lower patch index first.
		slices.SortStableFunc(shuffle, func(i, j int) int {
			switch {
			case nz[i] < nz[j]:
				return -1
			case nz[i] > nz[j]:
				return 1
			}
			return 0
		})
		copy(mk.IDsKeep[b*keep:], shuffle[:keep])
		for rank, id := range shuffle {
			mk.IDsRestore[b*patches+id] = rank
			if rank >= keep {
				mk.Mask[b*patches+id] = 1
			}
		}
	}
	return mk, nil
}

// Patchify turns images [N, C, H, W] into patch rows [N, L, p*p*C], each
// row ordered (row in patch, column in patch, channel) as the reference's
// patchify. H and W must be multiples of p.
func Patchify(imgs *tensor.Tensor, p int) (*tensor.Tensor, error) {
	s := imgs.Shape
	if len(s) != 4 || p < 1 || s[2] < p || s[3] < p || s[2]%p != 0 || s[3]%p != 0 {
		return nil, fmt.Errorf("patchify: image shape %v is not [N, C, H, W] with H and W positive multiples of the patch size %d", s, p)
	}
	n, c, h, w := s[0], s[1], s[2], s[3]
	gh, gw := h/p, w/p
	out := tensor.New(n, gh*gw, p*p*c)
	for b := range n {
		for ch := range c {
			img := imgs.Data[(b*c+ch)*h*w:]
			for y := range h {
				for x := range w {
					l := (y/p)*gw + x/p
					out.Data[(b*gh*gw+l)*p*p*c+((y%p)*p+x%p)*c+ch] = img[y*w+x]
				}
			}
		}
	}
	return out, nil
}

// Unpatchify inverts Patchify for a gh x gw patch grid: [N, gh*gw, p*p*C]
// -> [N, C, gh*p, gw*p].
func Unpatchify(x *tensor.Tensor, p, c, gh, gw int) (*tensor.Tensor, error) {
	s := x.Shape
	if len(s) != 3 || p < 1 || c < 1 || gh < 1 || gw < 1 || s[1] != gh*gw || s[2] != p*p*c {
		return nil, fmt.Errorf("unpatchify: patch shape %v, want [N, %d, %d]", s, gh*gw, p*p*c)
	}
	n, h, w := s[0], gh*p, gw*p
	out := tensor.New(n, c, h, w)
	for b := range n {
		for ch := range c {
			img := out.Data[(b*c+ch)*h*w:]
			for y := range h {
				for xx := range w {
					l := (y/p)*gw + xx/p
					img[y*w+xx] = x.Data[(b*gh*gw+l)*p*p*c+((y%p)*p+xx%p)*c+ch]
				}
			}
		}
	}
	return out, nil
}

// MAEOutput is the result of one forward pass.
type MAEOutput struct {
	Loss    *autograd.Var // scalar: mean squared error over hidden patches
	Pred    *autograd.Var // decoder predictions [N, L, p*p*C] (in the normalised space with NormPixLoss)
	Masking MAEMasking
}

// Forward runs encoder, decoder and loss on images [N, C, H, W] at the
// backbone's training size. noise (N*L values) fixes the masking; nil draws
// the current step's.
func (m *MAE) Forward(tp *autograd.Tape, imgs *tensor.Tensor, noise []float32) (MAEOutput, error) {
	bc := m.Encoder.Config
	s := imgs.Shape
	if len(s) != 4 || s[1] != bc.InChannels || s[2] != bc.ImageSize || s[3] != bc.ImageSize {
		return MAEOutput{}, fmt.Errorf("mae: image batch shape %v, want [N, %d, %d, %d] (the backbone's image size)", s, bc.InChannels, bc.ImageSize, bc.ImageSize)
	}
	if s[2]%bc.PatchSize != 0 {
		return MAEOutput{}, fmt.Errorf("mae: image size %d is not a multiple of the patch size %d", s[2], bc.PatchSize)
	}
	n, l := s[0], bc.Grid()*bc.Grid()
	if noise == nil {
		noise = make([]float32, n*l)
		r := rand.New(rand.NewPCG(m.maskSeed, uint64(m.steps)))
		rank, _ := m.ranks()
		for range rank * n * l { // the draws of the ranks before this one
			r.Float32()
		}
		for i := range noise {
			noise[i] = r.Float32()
		}
	}
	mk, err := RandomMasking(noise, n, l, m.Config.MaskRatio)
	if err != nil {
		return MAEOutput{}, fmt.Errorf("mae: %w", err)
	}
	target, err := Patchify(imgs, bc.PatchSize)
	if err != nil {
		return MAEOutput{}, fmt.Errorf("mae: %w", err)
	}
	if m.Config.NormPixLoss {
		normalizePatches(target)
	}
	var out MAEOutput
	err = autograd.Catch(func() {
		latent := m.encode(tp, autograd.Const(imgs), mk)
		pred := m.decode(tp, latent, mk)
		out = MAEOutput{Loss: maskedMSE(tp, pred, target, mk.Mask), Pred: pred, Masking: mk}
	})
	if err != nil {
		return MAEOutput{}, fmt.Errorf("mae: %w", err)
	}
	return out, nil
}

// encode embeds all patches (class token and position embeddings
// included), keeps the visible ones and runs the encoder: [N, 1+Keep, D].
func (m *MAE) encode(tp *autograd.Tape, x *autograd.Var, mk MAEMasking) *autograd.Var {
	tokens := m.Encoder.Embed(tp, x)
	cls := tp.Slice(tokens, 1, 0, 1)
	patches := tp.Slice(tokens, 1, 1, 1+mk.Patches)
	kept := tp.TakeAlongAxis(patches, 1, mk.IDsKeep, mk.Keep)
	h := m.Encoder.Encode(tp, tp.Concat([]*autograd.Var{cls, kept}, 1))
	return m.Encoder.Norm.Forward(tp, h)
}

// decode puts the encoded tokens back among mask tokens in patch order and
// predicts every patch's pixels: [N, L, p*p*C].
func (m *MAE) decode(tp *autograd.Tape, latent *autograd.Var, mk MAEMasking) *autograd.Var {
	d := m.Decoder
	n, dd := mk.Batch, m.Config.DecoderDim
	x := d.Embed.Forward(tp, latent)
	parts := []*autograd.Var{tp.Slice(x, 1, 1, 1+mk.Keep)}
	if hidden := mk.Patches - mk.Keep; hidden > 0 {
		parts = append(parts, tp.Add(autograd.Const(tp.AllocZeroed(n, hidden, dd)), d.MaskToken))
	}
	shuffled := parts[0]
	if len(parts) > 1 {
		shuffled = tp.Concat(parts, 1)
	}
	restored := tp.TakeAlongAxis(shuffled, 1, mk.IDsRestore, mk.Patches)
	x = tp.Add(tp.Concat([]*autograd.Var{tp.Slice(x, 1, 0, 1), restored}, 1), d.PosEmbed)
	for _, b := range d.Blocks {
		x = b.Forward(tp, x)
	}
	x = d.Pred.Forward(tp, d.Norm.Forward(tp, x))
	return tp.Slice(x, 1, 1, 1+mk.Patches)
}

// normalizePatches standardises each patch row in place by its mean and
// unbiased variance (+1e-6), the norm_pix_loss target.
func normalizePatches(t *tensor.Tensor) {
	k := t.Shape[len(t.Shape)-1]
	for r := 0; r < len(t.Data); r += k {
		row := t.Data[r : r+k]
		var mean, ss float64
		for _, v := range row {
			mean += float64(v)
		}
		mean /= float64(k)
		for _, v := range row {
			ss += (float64(v) - mean) * (float64(v) - mean)
		}
		// torch.var is unbiased; a one-value patch divides by zero there
		// too, so NaN is what the reference would produce.
		sd := math.Sqrt(ss/float64(k-1) + 1e-6)
		for i, v := range row {
			row[i] = float32((float64(v) - mean) / sd)
		}
	}
}

// maskedMSE is the per-patch mean squared error averaged over the hidden
// patches: sum(mean_k (pred-target)^2 * mask) / sum(mask).
func maskedMSE(tp *autograd.Tape, pred *autograd.Var, target *tensor.Tensor, mask []float32) *autograd.Var {
	per := tp.Mean(tp.Square(tp.Sub(pred, autograd.Const(target))), []int{2}, false) // [N, L]
	var total float32
	for _, v := range mask {
		total += v
	}
	if total == 0 {
		// Nothing hidden (mask ratio 0): the reference divides 0 by 0; a
		// zero loss with zero gradients is the useful reading.
		return tp.MulScalar(tp.SumAll(per), 0)
	}
	mt := tensor.FromSlice(append([]float32(nil), mask...), pred.Shape()[0], pred.Shape()[1])
	return tp.MulScalar(tp.SumAll(tp.Mul(per, autograd.Const(mt))), 1/total)
}

// Reconstruct runs the model without recording gradients and returns the
// predicted images [N, C, H, W] (denormalised per patch with the original
// patch statistics when NormPixLoss is on, as the MAE demo does), with the
// visible patches left as predicted, and the masking used.
func (m *MAE) Reconstruct(imgs *tensor.Tensor, noise []float32) (*tensor.Tensor, MAEMasking, error) {
	tp := autograd.NewTape()
	defer tp.Reset()
	var out MAEOutput
	var err error
	tp.NoGrad(func() { out, err = m.Forward(tp, imgs, noise) })
	if err != nil {
		return nil, MAEMasking{}, err
	}
	bc := m.Encoder.Config
	pred := &tensor.Tensor{Shape: slices.Clone(out.Pred.Shape()), Data: slices.Clone(out.Pred.Value.Data)}
	if m.Config.NormPixLoss {
		orig, _ := Patchify(imgs, bc.PatchSize)
		k := orig.Shape[2]
		for r := 0; r < len(orig.Data); r += k {
			row := orig.Data[r : r+k]
			var mean, ss float64
			for _, v := range row {
				mean += float64(v)
			}
			mean /= float64(k)
			for _, v := range row {
				ss += (float64(v) - mean) * (float64(v) - mean)
			}
			sd := math.Sqrt(ss/float64(k-1) + 1e-6)
			for i := range k {
				pred.Data[r+i] = float32(float64(pred.Data[r+i])*sd + mean)
			}
		}
	}
	img, err := Unpatchify(pred, bc.PatchSize, bc.InChannels, bc.Grid(), bc.Grid())
	return img, out.Masking, err
}

// Step runs one MAE iteration on the first view [N, C, H, W] (MAE uses a
// single augmented view; further views are ignored). The loss is a mean of
// per-image terms: on several ranks nothing is gathered, and rank r takes
// its rows' masks from the global batch's draws.
func (m *MAE) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("mae", views, 1, false); err != nil {
		return 0, err
	}
	return runStep(tp, "mae", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		out, err := m.Forward(tp, views[0], nil)
		return out.Loss, err
	}, m.opt.Step)
}

// AdamWGroups is AdamW over two parameter groups, with and without weight
// decay (the MAE reference's add_weight_decay, and Hugging Face's Trainer
// excluding biases and LayerNorm weights), acting as one optimizer whose
// state saves and loads as one.
type AdamWGroups struct {
	groups []*nn.AdamW
	names  []map[string]bool
	lr     float32
}

// NewAdamWGroups builds AdamW with cfg over decay and with cfg but no
// weight decay over noDecay. Parameter names must be unique.
func NewAdamWGroups(decay, noDecay []nn.Param, cfg nn.AdamWConfig) *AdamWGroups {
	g := &AdamWGroups{lr: cfg.LR}
	for i, ps := range [][]nn.Param{decay, noDecay} {
		c := cfg
		if i == 1 {
			c.WeightDecay = 0
		}
		names := map[string]bool{}
		for _, p := range ps {
			names[p.Name] = true
		}
		g.groups = append(g.groups, nn.NewAdamW(ps, c))
		g.names = append(g.names, names)
	}
	return g
}

// Decays reports whether the named parameter is in the decayed group.
func (g *AdamWGroups) Decays(name string) bool { return g.names[0][name] }

func (g *AdamWGroups) Step() {
	for _, o := range g.groups {
		o.Step()
	}
}

func (g *AdamWGroups) ZeroGrad() {
	for _, o := range g.groups {
		o.ZeroGrad()
	}
}

func (g *AdamWGroups) SetLR(lr float32) {
	g.lr = lr
	for _, o := range g.groups {
		o.SetLR(lr)
	}
}

func (g *AdamWGroups) LR() float32 { return g.lr }

// StateTensors implements nn.OptimizerState; parameter names are unique
// across the groups, so the maps merge without clashes.
func (g *AdamWGroups) StateTensors() map[string]*weights.Tensor {
	out := map[string]*weights.Tensor{}
	for _, o := range g.groups {
		for k, v := range o.StateTensors() {
			out[k] = v
		}
	}
	return out
}

// LoadStateTensors implements nn.OptimizerState, handing each group the
// entries of its own parameters.
func (g *AdamWGroups) LoadStateTensors(ts map[string]*weights.Tensor) error {
	parts := make([]map[string]*weights.Tensor, len(g.groups))
	for i := range parts {
		parts[i] = map[string]*weights.Tensor{}
	}
	for k, v := range ts {
		if k == "optim.lr" {
			for i := range parts {
				parts[i][k] = v
			}
			continue
		}
		placed := false
		for i, names := range g.names {
			if name, ok := paramOfStateKey(k, names); ok && names[name] {
				parts[i][k], placed = v, true
				break
			}
		}
		if !placed {
			return fmt.Errorf("adamw groups: unexpected optimizer state entry %q", k)
		}
	}
	for i, o := range g.groups {
		if err := o.LoadStateTensors(parts[i]); err != nil {
			return err
		}
	}
	if lr, ok := ts["optim.lr"]; ok {
		if t, err := lr.Float32(); err == nil && len(t.Data) == 1 {
			g.lr = t.Data[0]
		}
	}
	return nil
}

// paramOfStateKey finds the parameter name in "optim.<param>.<slot>"
// among names (parameter names contain dots, so the slot is what follows
// the longest matching name).
func paramOfStateKey(key string, names map[string]bool) (string, bool) {
	rest, ok := strings.CutPrefix(key, "optim.")
	if !ok {
		return "", false
	}
	for i := len(rest) - 1; i > 0; i-- {
		if rest[i] == '.' && names[rest[:i]] {
			return rest[:i], true
		}
	}
	return "", false
}
