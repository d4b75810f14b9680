package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Transform is one random (or fixed) augmentation step. Apply may modify m
// in place and return it, or return a new image; callers must use the
// result. All randomness comes from rng, so a per-sample rng makes the
// output independent of which goroutine ran it.
type Transform interface {
	Apply(m *Image, rng *rand.Rand) (*Image, error)
}

// Compose applies its transforms in order.
type Compose []Transform

// Apply implements Transform.
func (c Compose) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	var err error
	for _, t := range c {
		if m, err = t.Apply(m, rng); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RandomApply applies T with probability P (torchvision RandomApply).
type RandomApply struct {
	P float64
	T Transform
}

// Apply implements Transform.
func (r RandomApply) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if rng.Float64() < r.P {
		return r.T.Apply(m, rng)
	}
	return m, nil
}

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// RandomResizedCrop crops a random box of area fraction in Scale and aspect
// ratio (w/h, log-uniform) in Ratio, and resizes it to H x W (bilinear,
// antialiased; see ResizedCrop). Zero Scale or Ratio mean torchvision's
// defaults (0.08, 1) and (3/4, 4/3).
type RandomResizedCrop struct {
	H, W  int
	Scale [2]float64
	Ratio [2]float64
}

// NewRandomResizedCrop returns a size x size crop with the default scale and
// ratio ranges.
func NewRandomResizedCrop(size int) RandomResizedCrop {
	return RandomResizedCrop{H: size, W: size, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}
}

func (t RandomResizedCrop) ranges() (scale, ratio [2]float64) {
	scale, ratio = t.Scale, t.Ratio
	if scale == [2]float64{} {
		scale = [2]float64{0.08, 1}
	}
	if ratio == [2]float64{} {
		ratio = [2]float64{3.0 / 4, 4.0 / 3}
	}
	return scale, ratio
}

// Params draws a crop box for an h x w image as torchvision's get_params:
// up to ten tries at a random area and aspect ratio, then a centre crop
// clipped to the ratio range. Python's round (half to even) is kept.
func (t RandomResizedCrop) Params(rng *rand.Rand, height, width int) (top, left, h, w int) {
	scale, ratio := t.ranges()
	area := float64(height * width)
	lr0, lr1 := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * uniform(rng, scale[0], scale[1])
		ar := math.Exp(uniform(rng, lr0, lr1))
		w = int(math.RoundToEven(math.Sqrt(target * ar)))
		h = int(math.RoundToEven(math.Sqrt(target / ar)))
		if w > 0 && w <= width && h > 0 && h <= height {
			top = rng.IntN(height - h + 1)
			left = rng.IntN(width - w + 1)
			return top, left, h, w
		}
	}
	in := float64(width) / float64(height)
	switch {
	case in < min(ratio[0], ratio[1]):
		w = width
		h = int(math.RoundToEven(float64(w) / min(ratio[0], ratio[1])))
	case in > max(ratio[0], ratio[1]):
		h = height
		w = int(math.RoundToEven(float64(h) * max(ratio[0], ratio[1])))
	default:
		w, h = width, height
	}
	return (height - h) / 2, (width - w) / 2, h, w
}

// Apply implements Transform.
func (t RandomResizedCrop) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if t.H <= 0 || t.W <= 0 {
		return nil, fmt.Errorf("augment: RandomResizedCrop size %dx%d", t.H, t.W)
	}
	scale, ratio := t.ranges()
	if !(scale[0] > 0 && scale[0] <= scale[1]) || !(ratio[0] > 0 && ratio[0] <= ratio[1]) {
		return nil, fmt.Errorf("augment: RandomResizedCrop scale %v ratio %v: want 0 < min <= max", scale, ratio)
	}
	top, left, h, w := t.Params(rng, m.H, m.W)
	return ResizedCrop(m, top, left, h, w, t.H, t.W)
}

// Resize scales the whole image to H x W (bilinear, antialiased).
type Resize struct{ H, W int }

// Apply implements Transform.
func (t Resize) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	if m.H == t.H && m.W == t.W {
		return m, nil
	}
	return ResizedCrop(m, 0, 0, m.H, m.W, t.H, t.W)
}

// CenterResize is torchvision's Resize(Size) then CenterCrop(Size): the
// shorter side scaled to Size (the longer one truncated as
// int(Size*long/short)), then the centred Size x Size square, with the
// offset rounded half to even. It is the geometry the exported models'
// preprocessing records (data/preprocess: resize_size = Size, crop
// "center"), so evaluation here and `embed` elsewhere see the same part
// of a non-square image; a square one is only resized.
type CenterResize struct{ Size int }

// Apply implements Transform.
func (t CenterResize) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	if t.Size < 1 {
		return nil, fmt.Errorf("augment: center resize to %d pixels", t.Size)
	}
	rh, rw := t.Size, t.Size
	if m.W < m.H {
		rh = int(float64(t.Size*m.H) / float64(m.W))
	} else if m.H < m.W {
		rw = int(float64(t.Size*m.W) / float64(m.H))
	}
	r, err := Resize{H: rh, W: rw}.Apply(m, nil)
	if err != nil || (rh == t.Size && rw == t.Size) {
		return r, err
	}
	top := int(math.RoundToEven(float64(rh-t.Size) / 2))
	left := int(math.RoundToEven(float64(rw-t.Size) / 2))
	out := NewImage(r.C, t.Size, t.Size)
	for c := range r.C {
		src, dst := r.Plane(c), out.Plane(c)
		for y := range t.Size {
			copy(dst[y*t.Size:(y+1)*t.Size], src[(y+top)*rw+left:])
		}
	}
	return out, nil
}

// RandomHorizontalFlip mirrors with probability P (torchvision default 0.5).
type RandomHorizontalFlip struct{ P float64 }

// Apply implements Transform.
func (t RandomHorizontalFlip) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if rng.Float64() < t.P {
		HFlip(m)
	}
	return m, nil
}

// ColorJitter changes brightness, contrast, saturation and hue by factors
// drawn uniformly from their ranges, in a random order, like torchvision's
// ColorJitter. A range equal to the identity ({1,1}, or {0,0} for hue, or
// the zero value for any of them) leaves that property alone. Wrap it in
// RandomApply for the usual "with probability 0.8".
type ColorJitter struct {
	Brightness, Contrast, Saturation, Hue [2]float64
}

// NewColorJitter takes torchvision's scalar arguments: factors in
// [max(0, 1-b), 1+b] (likewise c, s) and hue in [-h, h].
func NewColorJitter(b, c, s, h float64) ColorJitter {
	r := func(v float64) [2]float64 { return [2]float64{max(0, 1-v), 1 + v} }
	return ColorJitter{Brightness: r(b), Contrast: r(c), Saturation: r(s), Hue: [2]float64{-h, h}}
}

func active(r [2]float64, identity float64) bool {
	return r != [2]float64{} && r != [2]float64{identity, identity}
}

// JitterParams are the draws of one ColorJitter application. Order is a
// permutation of 0..3 (brightness, contrast, saturation, hue); a factor is
// NaN when its property is off.
type JitterParams struct {
	Order                                 [4]int
	Brightness, Contrast, Saturation, Hue float64
}

// Params draws the order and the factors.
func (t ColorJitter) Params(rng *rand.Rand) JitterParams {
	var p JitterParams
	for i, v := range rng.Perm(4) {
		p.Order[i] = v
	}
	draw := func(r [2]float64, identity float64) float64 {
		if !active(r, identity) {
			return math.NaN()
		}
		return uniform(rng, r[0], r[1])
	}
	p.Brightness = draw(t.Brightness, 1)
	p.Contrast = draw(t.Contrast, 1)
	p.Saturation = draw(t.Saturation, 1)
	p.Hue = draw(t.Hue, 0)
	return p
}

// ApplyParams applies fixed draws.
func (p JitterParams) ApplyParams(m *Image) error {
	for _, op := range p.Order {
		var err error
		switch op {
		case 0:
			if !math.IsNaN(p.Brightness) {
				err = AdjustBrightness(m, p.Brightness)
			}
		case 1:
			if !math.IsNaN(p.Contrast) {
				err = AdjustContrast(m, p.Contrast)
			}
		case 2:
			if !math.IsNaN(p.Saturation) {
				err = AdjustSaturation(m, p.Saturation)
			}
		case 3:
			if !math.IsNaN(p.Hue) {
				err = AdjustHue(m, p.Hue)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Apply implements Transform.
func (t ColorJitter) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	return m, t.Params(rng).ApplyParams(m)
}

// RandomGrayscale turns an RGB image grey (in all three channels) with
// probability P (torchvision default 0.1; SSL recipes use 0.2).
type RandomGrayscale struct{ P float64 }

// Apply implements Transform.
func (t RandomGrayscale) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if rng.Float64() < t.P {
		Grayscale(m)
	}
	return m, nil
}

// RandomGaussianBlur blurs with a Kernel x Kernel Gaussian (odd size) whose
// sigma is uniform in Sigma (torchvision GaussianBlur; default sigma
// (0.1, 2)). It always blurs: wrap it in RandomApply for a probability.
type RandomGaussianBlur struct {
	Kernel int
	Sigma  [2]float64
}

// BlurKernelFor returns the SimCLR kernel size for an image side: 10% of
// it, made odd, at least 3.
func BlurKernelFor(size int) int {
	k := size / 10
	if k%2 == 0 {
		k++
	}
	return max(k, 3)
}

// Apply implements Transform.
func (t RandomGaussianBlur) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	s := t.Sigma
	if s == [2]float64{} {
		s = [2]float64{0.1, 2}
	}
	if !(s[0] > 0 && s[0] <= s[1]) {
		return nil, fmt.Errorf("augment: blur sigma range %v: want 0 < min <= max", s)
	}
	sigma := uniform(rng, s[0], s[1])
	return m, GaussianBlur(m, t.Kernel, t.Kernel, sigma, sigma)
}

// RandomSolarize solarizes at Threshold with probability P (BYOL: 0.5 on
// [0,1] images, P 0.2 on the second view).
type RandomSolarize struct{ Threshold, P float64 }

// Apply implements Transform.
func (t RandomSolarize) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if rng.Float64() < t.P {
		return m, Solarize(m, t.Threshold)
	}
	return m, nil
}

// Normalization subtracts Mean and divides by Std per channel; with one
// value for a three-channel image that value is used for all channels.
type Normalization struct{ Mean, Std []float64 }

// Apply implements Transform.
func (t Normalization) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	mean, std := t.Mean, t.Std
	if len(mean) == 1 && m.C == 3 {
		mean = []float64{mean[0], mean[0], mean[0]}
	}
	if len(std) == 1 && m.C == 3 {
		std = []float64{std[0], std[0], std[0]}
	}
	return m, Normalize(m, mean, std)
}

// ToRGB repeats a grey channel three times (an RGB image is unchanged), for
// RGB backbones on grey data. Put it before ColorJitter if the jitter is to
// act on the copies (saturation and hue do nothing on grey images anyway).
type ToRGB struct{}

// Apply implements Transform.
func (ToRGB) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	if m.C == 3 {
		return m, nil
	}
	out := NewImage(3, m.H, m.W)
	n := m.H * m.W
	for c := 0; c < 3; c++ {
		copy(out.Pix[c*n:(c+1)*n], m.Pix)
	}
	return out, nil
}
