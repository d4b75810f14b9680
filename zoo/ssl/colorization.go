package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// ColorizationConfig configures Colorization (Zhang, Isola & Efros 2016,
// "Colorful Image Colorization").
type ColorizationConfig struct {
	// Stride is the target grid's step: the targets are the ab of every
	// Stride-th pixel each way from the top-left one (the reference
	// subsamples so, by 4: the paper predicts at a quarter of the input's
	// resolution).
	Stride int
	// Lambda mixes the uniform distribution into the empirical one before
	// it is inverted into the rebalancing weights (RebalanceLambda).
	Lambda float64
	// PriorSteps is the number of first steps whose targets make the
	// empirical ab distribution; the weights are then fixed. 0 trains
	// without rebalancing (every weight 1).
	PriorSteps int
	// Mean and Std normalise the backbone's input per channel: those the
	// exported backbone's preprocessing records, so that a grey image
	// preprocessed as any other reaches it as in training.
	Mean, Std []float64
	Optim     OptimConfig
}

// DefaultColorizationConfig is the paper's recipe scaled to the run: Adam
// with β = (0.9, 0.99) and weight decay 1e-3 (the paper's Sec. 3.1, as we
// recall it: lr 3e-5 at batch 40, dropped to 1e-5 and 3e-6 over 450k
// iterations), here AdamW (decoupled decay) at 3e-5*batch/40 by the linear
// scaling rule, no warmup, and a cosine decay to a tenth of the peak in
// place of the steps; targets at a quarter of the resolution; λ = 0.5; the
// empirical distribution counted over the first epoch (every training
// image once, in place of the paper's precomputed ImageNet prior);
// ImageNet's normalisation until the caller sets the run's.
func DefaultColorizationConfig(batch, stepsPerEpoch, epochs int) ColorizationConfig {
	lr := 3e-5 * float64(batch) / 40
	return ColorizationConfig{
		Stride: 4, Lambda: RebalanceLambda, PriorSteps: stepsPerEpoch,
		Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225},
		Optim: OptimConfig{Name: "adamw", LR: lr, FinalLR: lr / 10, Beta1: 0.9, Beta2: 0.99, WeightDecay: 1e-3,
			TotalSteps: epochs * stepsPerEpoch},
	}
}

// FeatureMapper is an encoder that gives its last feature map, [N, D, h,
// w] with D its FeatureDim, for dense methods; zoo.ResNet and zoo.ViT are
// both.
type FeatureMapper interface {
	FeatureMap(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// Colorization trains an encoder to colour grey images: it sees an
// image's lightness only and classifies the ab colour of each pixel of a
// coarse grid into the Q quantised ab bins of the sRGB gamut (ABBins), with
// a multinomial cross-entropy against the soft-encoded true colour, each
// pixel weighted to boost rare (saturated) colours.
//
// The design, in our terms:
//   - Input: the view is the sRGB crop in [0, 1], before normalisation.
//     The backbone sees its grey of the same lightness (L with a = b = 0,
//     in sRGB) in all three channels, normalised with Mean and Std, so the
//     exported backbone keeps the RGB interface and its recorded
//     preprocessing: a grey image preprocessed as any other is what it was
//     trained on. (The paper feeds L alone to a one-channel network; for
//     linear evaluation it also feeds L. A colour image is a shift of the
//     input distribution for this backbone.)
//   - Dense features: the backbone's last feature map, before the pooling
//     of Features (a ResNet's layer4; a ViT's patch tokens on their grid,
//     after its final norm where it has one; FeatureMapper for other
//     encoders), so every layer that is exported is trained.
//   - Head: one 1x1 convolution to the Q classes (the paper's conv8_313),
//     whose logits are resized bilinearly (align_corners=False) to the
//     target grid, ceil(H/Stride) x ceil(W/Stride): a quarter of the
//     resolution by default as in the paper, whose network upsamples its
//     1/8 map by a deconvolution. A CIFAR-stem ResNet's map is at 1/8 (×2
//     up), an ImageNet-stem one at 1/32 (×8 up). The head is not exported.
//   - Loss: the mean over the target pixels of the batch of
//     v · Σ_q z_q (-log softmax(logits)_q), z the soft encoding (the 5
//     nearest bins, Gaussian σ = 5) and v the rebalancing weight of the
//     nearest bin, times 0 for a grey image (the reference's
//     NonGrayMaskLayer). The paper sums over pixels; the mean only rescales
//     the loss, which Adam's steps barely see (its decay is decoupled).
//   - Rebalancing: w ∝ ((1-λ) p̃ + λ/Q)^-1 with E_p̃[w] = 1, p̃ the
//     smoothed empirical distribution of the training targets. Train gives
//     a method its batches only, so the distribution is counted from the
//     nearest bins of the colour targets of the first PriorSteps steps
//     (one epoch by default), each step using the counts so far, its own
//     included; then it is fixed. The counts, the weights and the bins are
//     state buffers ("ab_prior", "ab_prior_pixels", "ab_weights",
//     "ab_bins"), so a checkpoint carries them.
type Colorization struct {
	Config  ColorizationConfig
	Encoder Encoder
	// Head is the 1x1 convolution to the ab classes, "head.weight" [Q, D,
	// 1, 1] and "head.bias" [Q].
	Head *nn.Conv2d
	parts
	opt nn.Optimizer
	// bins [Q, 2] are the class centres, saved so that a checkpoint says
	// which classes its head scores; prior [Q] is the empirical
	// distribution of the nearest bins counted so far over priorPixels
	// target pixels, and weights [Q] the rebalancing weights in use.
	bins, prior, weights *tensor.Tensor
	priorPixels          int64
}

// NewColorization wraps backbone, which must take 3-channel images, with
// the colour head and builds the optimizer.
func NewColorization(cfg ColorizationConfig, backbone Encoder, rng *rand.Rand) (*Colorization, error) {
	switch {
	case cfg.Stride < 1:
		return nil, fmt.Errorf("colorization: target stride %d must be at least 1", cfg.Stride)
	case !(cfg.Lambda > 0 && cfg.Lambda <= 1):
		return nil, fmt.Errorf("colorization: rebalancing mix λ %g must lie in (0, 1]", cfg.Lambda)
	case cfg.PriorSteps < 0:
		return nil, fmt.Errorf("colorization: %d prior steps must not be negative", cfg.PriorSteps)
	}
	in := 3
	switch b := backbone.(type) {
	case *zoo.ResNet:
		in = b.Config.InChannels
	case *zoo.ViT:
		in = b.Config.InChannels
	case FeatureMapper:
	default:
		return nil, fmt.Errorf("colorization needs a dense feature map: a ResNet, a ViT or an encoder with FeatureMap, not %T", backbone)
	}
	if in != 3 {
		return nil, fmt.Errorf("colorization needs colour images: the backbone takes %d channel(s), want 3 (RGB)", in)
	}
	if len(cfg.Mean) != 3 || len(cfg.Std) != 3 {
		return nil, fmt.Errorf("colorization: normalisation of %d means and %d stds: want 3 each (RGB)", len(cfg.Mean), len(cfg.Std))
	}
	for i, s := range cfg.Std {
		if !(s > 0) || math.IsInf(s, 0) || math.IsNaN(cfg.Mean[i]) || math.IsInf(cfg.Mean[i], 0) {
			return nil, fmt.Errorf("colorization: channel %d normalisation mean %g std %g: need a finite mean and a positive std", i, cfg.Mean[i], s)
		}
	}
	d := backbone.FeatureDim()
	if d < 1 {
		return nil, fmt.Errorf("colorization: backbone feature width %d", d)
	}
	cfg.Mean, cfg.Std = slices.Clone(cfg.Mean), slices.Clone(cfg.Std)
	m := &Colorization{Config: cfg, Encoder: backbone, Head: nn.NewConv2d(d, NumABBins, 1, autograd.ConvParams{}, true, rng),
		bins: tensor.New(NumABBins, 2), prior: tensor.New(NumABBins), weights: tensor.New(NumABBins)}
	for i, c := range abCentres {
		m.bins.Data[i] = float32(c)
	}
	m.weights.Fill(1)
	m.list = []part{{"backbone", backbone, true}, {"head", m.Head, true}}
	m.buffers = func(prefix string, s *nn.State) {
		s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "ab_bins"), T: m.bins},
			nn.Buffer{Name: nn.Join(prefix, "ab_prior"), T: m.prior},
			nn.Buffer{Name: nn.Join(prefix, "ab_prior_pixels"), Count: &m.priorPixels},
			nn.Buffer{Name: nn.Join(prefix, "ab_weights"), T: m.weights})
	}
	var err error
	if m.opt, err = cfg.Optim.build(m.trainable()); err != nil {
		return nil, fmt.Errorf("colorization: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *Colorization) Name() string            { return "colorization" }
func (m *Colorization) Backbone() Encoder       { return m.Encoder }
func (m *Colorization) Optimizer() nn.Optimizer { return m.opt }
func (m *Colorization) Configuration() any      { return m.Config }
func (m *Colorization) Schedule() OptimConfig   { return m.Config.Optim }

// Weights returns the rebalancing weights in use, [Q] in class order.
func (m *Colorization) Weights() []float32 { return slices.Clone(m.weights.Data) }

// Prior returns the empirical ab distribution counted so far, [Q], and
// the number of target pixels it counts.
func (m *Colorization) Prior() ([]float32, int64) { return slices.Clone(m.prior.Data), m.priorPixels }

// checkState checks the buffers a checkpoint may have replaced.
func (m *Colorization) checkState() error {
	if len(m.bins.Data) != 2*NumABBins || len(m.prior.Data) != NumABBins || len(m.weights.Data) != NumABBins {
		return fmt.Errorf("colorization: state buffers ab_bins %v, ab_prior %v, ab_weights %v: want [%d, 2], [%d], [%d]",
			m.bins.Shape, m.prior.Shape, m.weights.Shape, NumABBins, NumABBins, NumABBins)
	}
	for i, c := range abCentres {
		if m.bins.Data[i] != float32(c) {
			return fmt.Errorf("colorization: the state's ab bins differ from this build's at class %d (%g, want %g): it was trained over other classes",
				i/2, m.bins.Data[i], c)
		}
	}
	return nil
}

// grayInput writes the backbone's input for sRGB images v [N, 3, H, W]
// into dst (same shape): each pixel's grey of the same lightness in the
// three channels, normalised per channel.
func grayInput(dst, v *tensor.Tensor, mean, std []float64) {
	n, hw := v.Shape[0], v.Shape[2]*v.Shape[3]
	tensor.Parallel(n, hw*40, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			src := v.Data[i*3*hw : (i+1)*3*hw]
			out := dst.Data[i*3*hw : (i+1)*3*hw]
			for p := range hw {
				g := srgbGray(float64(src[p]), float64(src[hw+p]), float64(src[2*hw+p]))
				for c := range 3 {
					out[c*hw+p] = float32((g - mean[c]) / std[c])
				}
			}
		}
	})
}

// colorTargets are the soft-encoded targets of a batch: for target pixel
// r (image-major, then row, then column of the TH x TW grid), its
// SoftNeighbours bins idx[r*K:] (nearest first) and weights w[r*K:]; an
// image's colour flag (false: grey, no loss).
type colorTargets struct {
	th, tw int
	idx    []int32
	w      []float32
	colour []bool
}

// targetsOf subsamples the ab of sRGB images v [N, 3, H, W] at stride s
// (pixels 0, s, 2s, ... each way) and soft-encodes it.
func targetsOf(v *tensor.Tensor, s int) colorTargets {
	n, h, w := v.Shape[0], v.Shape[2], v.Shape[3]
	hw := h * w
	th, tw := (h+s-1)/s, (w+s-1)/s
	k := SoftNeighbours
	t := colorTargets{th: th, tw: tw, idx: make([]int32, n*th*tw*k), w: make([]float32, n*th*tw*k), colour: make([]bool, n)}
	tensor.Parallel(n, th*tw*NumABBins*4, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			src := v.Data[i*3*hw : (i+1)*3*hw]
			for y := range th {
				for x := range tw {
					p := y*s*w + x*s
					_, a, b := SRGBToLab(float64(src[p]), float64(src[hw+p]), float64(src[2*hw+p]))
					if math.Abs(a) > GrayThreshold || math.Abs(b) > GrayThreshold {
						t.colour[i] = true
					}
					r := (i*th+y)*tw + x
					idx, wt := softEncode(a, b)
					copy(t.idx[r*k:], idx[:])
					for j, v := range wt {
						t.w[r*k+j] = float32(v)
					}
				}
			}
		}
	})
	return t
}

// softTargets writes the loss's targets [M, Q] into dst (zeroed): row r
// holds the soft encoding of target pixel r times its weight, the
// rebalancing weight of its nearest bin (0 for a grey image).
func (t colorTargets) softTargets(dst *tensor.Tensor, weights []float32) {
	k, per := SoftNeighbours, t.th*t.tw
	for r := range len(t.idx) / k {
		if !t.colour[r/per] {
			continue
		}
		v := weights[t.idx[r*k]]
		row := dst.Data[r*NumABBins : (r+1)*NumABBins]
		for j := range k {
			row[t.idx[r*k+j]] = v * t.w[r*k+j]
		}
	}
}

// bilinearMatrix is the [out, in] matrix that resamples a length-in
// signal to length out as torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False) does along one axis given a target size: source
// coordinate (dst+0.5)*in/out - 0.5, clamped at 0, two taps.
func bilinearMatrix(in, out int) []float64 {
	m := make([]float64, out*in)
	scale := float64(in) / float64(out)
	for d := range out {
		src := max(scale*(float64(d)+0.5)-0.5, 0)
		i0 := int(src)
		i1 := min(i0+1, in-1)
		l1 := src - float64(i0)
		m[d*in+i0] += 1 - l1
		m[d*in+i1] += l1
	}
	return m
}

// colorLogits are the head's scores of the feature map [N, D, h, w],
// resized bilinearly to the th x tw target grid, one row a target pixel:
// [N*th*tw, Q], row-major pixels of each image, images in order.
func colorLogits(tp *autograd.Tape, features *autograd.Var, head *nn.Conv2d, th, tw int) *autograd.Var {
	s := features.Shape()
	if len(s) != 4 || th < 1 || tw < 1 {
		autograd.Failf("colorization", "features shape %v and a %dx%d target grid: want [N, D, h, w] and a positive grid", s, th, tw)
	}
	n, h, w := s[0], s[2], s[3]
	logits := head.Forward(tp, features)
	q := logits.Shape()[1]
	if h != th || w != tw {
		// One matrix for both axes: [th*tw, h*w], the outer product of
		// the two one-axis resizes.
		mh, mw := bilinearMatrix(h, th), bilinearMatrix(w, tw)
		k := tp.Alloc(th*tw, h*w)
		for i := range th {
			for j := range tw {
				row := k.Data[(i*tw+j)*h*w:][:h*w]
				for p := range h {
					for r := range w {
						row[p*w+r] = float32(mh[i*h+p] * mw[j*w+r])
					}
				}
			}
		}
		logits = tp.MatMulT(tp.Reshape(logits, n*q, h*w), autograd.Const(k), false, true)
	}
	return tp.Reshape(tp.Transpose(tp.Reshape(logits, n, q, th*tw), 0, 2, 1), n*th*tw, q)
}

// ColorizationLoss is the colour classification loss: the mean over the
// N*th*tw target pixels of the cross-entropy of the head's resized scores
// of the feature map [N, D, h, w] against targets [N*th*tw, Q] (row-major
// pixels of each image, images in order), whose rows are the soft
// encodings times the pixels' weights.
func ColorizationLoss(tp *autograd.Tape, features *autograd.Var, head *nn.Conv2d, targets *autograd.Var, th, tw int) *autograd.Var {
	return tp.CrossEntropySoft(colorLogits(tp, features, head, th, tw), targets)
}

// featureMap is the backbone's last feature map, [N, D, h, w].
func (m *Colorization) featureMap(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	if e, ok := m.Encoder.(FeatureMapper); ok {
		return e.FeatureMap(tp, x)
	}
	autograd.Failf("colorization", "encoder %T has no feature map", m.Encoder)
	return nil
}

// checkSRGB checks that a view holds sRGB values in [0, 1]: Step takes
// the crops before normalisation (a normalised view would be read as
// wrong colours).
func checkSRGB(v *tensor.Tensor) error {
	if v.Shape[1] != 3 {
		return fmt.Errorf("colorization: views of %d channel(s); colorization needs RGB images", v.Shape[1])
	}
	for i, x := range v.Data {
		if x < 0 || x > 1 {
			return fmt.Errorf("colorization: view element %d is %g; Step takes sRGB crops in [0, 1], before normalisation", i, x)
		}
	}
	return nil
}

// Step runs one Colorization iteration on one view, sRGB crops [N, 3, H,
// W] in [0, 1] (not normalised): it derives the grey input and the colour
// targets, counts the targets into the empirical distribution during the
// prior steps, and trains the encoder and the head on the weighted
// cross-entropy.
//
// The loss is the mean of per-pixel, per-image terms, so under data
// parallelism averaging the gradients of equal-sized rank batches gives
// the global batch's gradient exactly: nothing is gathered for the loss.
// During the prior steps each rank's bin counts (Q+1 floats) are summed
// over the ranks, so every rank holds the global distribution and the
// same weights.
func (m *Colorization) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	if err := checkViews("colorization", views, 1, true); err != nil {
		return 0, err
	}
	if err := checkSRGB(views[0]); err != nil {
		return 0, err
	}
	return m.step(tp, views[0])
}

// step is Step on a checked view.
func (m *Colorization) step(tp *autograd.Tape, v *tensor.Tensor) (float32, error) {
	if err := m.checkState(); err != nil {
		return 0, err
	}
	n, h, w := v.Shape[0], v.Shape[2], v.Shape[3]
	// The distribution with this batch counted, kept when the step succeeds.
	var prior, weights []float32
	var pixels int64
	loss, err := runStep(tp, "colorization", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		t := targetsOf(v, m.Config.Stride)
		weights = m.weights.Data
		if m.steps < int64(m.Config.PriorSteps) {
			var err error
			if prior, pixels, err = m.count(t); err != nil {
				return nil, err
			}
			p := make([]float64, NumABBins)
			for i, x := range prior {
				p[i] = float64(x)
			}
			w64, err := RebalanceWeights(p, m.Config.Lambda)
			if err != nil {
				return nil, err
			}
			weights = make([]float32, NumABBins)
			for i, x := range w64 {
				weights[i] = float32(x)
			}
		}
		targets := tp.AllocZeroed(n*t.th*t.tw, NumABBins)
		t.softTargets(targets, weights)
		input := tp.Alloc(n, 3, h, w)
		grayInput(input, v, m.Config.Mean, m.Config.Std)
		feats := m.featureMap(tp, autograd.Const(input))
		return ColorizationLoss(tp, feats, m.Head, autograd.Const(targets), t.th, t.tw), nil
	}, m.opt.Step)
	if err == nil && prior != nil {
		copy(m.prior.Data, prior)
		copy(m.weights.Data, weights)
		m.priorPixels = pixels
	}
	return loss, err
}

// count adds the nearest bins of the colour targets of t (over every
// rank) to the distribution so far, and returns it with its pixel count.
func (m *Colorization) count(t colorTargets) ([]float32, int64, error) {
	k, per := SoftNeighbours, t.th*t.tw
	c := make([]float32, NumABBins+1)
	for r := range len(t.idx) / k {
		if t.colour[r/per] {
			c[t.idx[r*k]]++
			c[NumABBins]++
		}
	}
	if m.parallel() {
		if err := m.comm.AllreduceSum(c); err != nil {
			return nil, 0, fmt.Errorf("summing the ab counts over ranks: %w", err)
		}
	}
	added := int64(c[NumABBins])
	total := m.priorPixels + added
	out := slices.Clone(m.prior.Data)
	if total == 0 {
		return out, 0, nil
	}
	old := float64(m.priorPixels)
	for i := range out {
		out[i] = float32((float64(m.prior.Data[i])*old + float64(c[i])) / float64(total))
	}
	return out, total, nil
}

// PredictAB colours images: sRGB images [N, 3, H, W] in [0, 1] (only
// their lightness is used) -> ab [N, 2, th, tw] on the target grid (every
// Stride-th pixel), decoded by the annealed mean at temperature t
// (AnnealedMean; the paper's is AnnealTemperature). The network runs in
// evaluation mode, and training mode is restored after. Upsample the ab
// and join them to the full-resolution L for the coloured image.
func (m *Colorization) PredictAB(images *tensor.Tensor, t float64) (*tensor.Tensor, error) {
	if images == nil || len(images.Shape) != 4 || images.Numel() != len(images.Data) || images.Shape[0] < 1 {
		var s []int
		if images != nil {
			s = images.Shape
		}
		return nil, fmt.Errorf("colorization: images of shape %v, want [N, 3, H, W]", s)
	}
	if err := checkSRGB(images); err != nil {
		return nil, err
	}
	n, h, w := images.Shape[0], images.Shape[2], images.Shape[3]
	s := m.Config.Stride
	th, tw := (h+s-1)/s, (w+s-1)/s
	m.SetTraining(false)
	defer m.SetTraining(true)
	tp := autograd.NewTape()
	defer tp.Reset()
	var logits *tensor.Tensor
	err := autograd.Catch(func() {
		tp.NoGrad(func() {
			input := tp.Alloc(n, 3, h, w)
			grayInput(input, images, m.Config.Mean, m.Config.Std)
			logits = colorLogits(tp, m.featureMap(tp, autograd.Const(input)), m.Head, th, tw).Value.Clone()
		})
	})
	if err != nil {
		return nil, fmt.Errorf("colorization: predict: %w", err)
	}
	ab, err := AnnealedMean(logits, t)
	if err != nil {
		return nil, err
	}
	out := tensor.New(n, 2, th, tw)
	per := th * tw
	for r := range n * per {
		i, p := r/per, r%per
		out.Data[(i*2)*per+p] = ab.Data[2*r]
		out.Data[(i*2+1)*per+p] = ab.Data[2*r+1]
	}
	return out, nil
}

// Colorize recolours sRGB images [N, 3, H, W] in [0, 1] from their
// lightness alone: each pixel keeps its L and takes the predicted ab
// (PredictAB at temperature t), resized bilinearly from the target grid to
// the full image. It also returns the grey the network saw.
func (m *Colorization) Colorize(images *tensor.Tensor, t float64) (colour, grey *tensor.Tensor, err error) {
	ab, err := m.PredictAB(images, t)
	if err != nil {
		return nil, nil, err
	}
	n, h, w := images.Shape[0], images.Shape[2], images.Shape[3]
	th, tw := ab.Shape[2], ab.Shape[3]
	mh, mw := bilinearMatrix(th, h), bilinearMatrix(tw, w)
	colour, grey = tensor.New(n, 3, h, w), tensor.New(n, 3, h, w)
	hw := h * w
	tensor.Parallel(n, hw*200, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			src := images.Data[i*3*hw : (i+1)*3*hw]
			abi := ab.Data[i*2*th*tw : (i+1)*2*th*tw]
			for y := range h {
				for x := range w {
					// Each output pixel mixes at most 2x2 grid cells.
					var a, b float64
					for p := range th {
						wy := mh[y*th+p]
						if wy == 0 {
							continue
						}
						for q := range tw {
							if wx := mw[x*tw+q]; wx != 0 {
								a += wy * wx * float64(abi[p*tw+q])
								b += wy * wx * float64(abi[th*tw+p*tw+q])
							}
						}
					}
					px := y*w + x
					l, _, _ := SRGBToLab(float64(src[px]), float64(src[hw+px]), float64(src[2*hw+px]))
					r, g, bl := LabToSRGB(l, a, b)
					gr := srgbGray(float64(src[px]), float64(src[hw+px]), float64(src[2*hw+px]))
					for c, v := range [3]float64{r, g, bl} {
						colour.Data[(i*3+c)*hw+px] = float32(min(1, max(0, v)))
						grey.Data[(i*3+c)*hw+px] = float32(gr)
					}
				}
			}
		}
	})
	return colour, grey, nil
}
