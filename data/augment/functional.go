package augment

import (
	"fmt"
	"image"
	"math"
	"sync"
	"sync/atomic"

	"golang.org/x/image/draw"
)

// This file holds the deterministic ops, each the float32 counterpart of a
// torchvision.transforms.functional op on a float tensor. They check their
// arguments and return errors; the random transforms call them with
// arguments they know to be valid.

// ResizedCrop crops the box (top, left, h, w) out of src and resizes it to
// outH x outW with x/image/draw's BiLinear kernel, like torchvision's
// resized_crop with bilinear interpolation and antialias=True (PIL's
// behaviour): when shrinking, the kernel widens to cover the source pixels.
// Measured against torchvision 0.14: within 1.5e-5 of resized_crop on float
// tensors with antialias=True (and with antialias=False when enlarging),
// within 1/255 on PIL images. Shrinking with antialias=False is a different
// filter. The box must lie inside src.
func ResizedCrop(src *Image, top, left, h, w, outH, outW int) (*Image, error) {
	if err := src.Check(); err != nil {
		return nil, err
	}
	if h <= 0 || w <= 0 || top < 0 || left < 0 || top+h > src.H || left+w > src.W {
		return nil, fmt.Errorf("augment: crop box top=%d left=%d h=%d w=%d outside %dx%d image", top, left, h, w, src.H, src.W)
	}
	if outH <= 0 || outW <= 0 {
		return nil, fmt.Errorf("augment: resize to %dx%d", outH, outW)
	}
	dst := NewImage(src.C, outH, outW)
	resizedCropInto(dst, src, top, left, h, w)
	return dst, nil
}

func resizedCropInto(dst, src *Image, top, left, h, w int) {
	sr := image.Rect(left, top, left+w, top+h)
	if h == dst.H && w == dst.W {
		// Same size: a plain copy, which the scaler would also give but slower.
		for c := 0; c < src.C; c++ {
			sp, dp := src.Plane(c), dst.Plane(c)
			for y := 0; y < h; y++ {
				copy(dp[y*w:(y+1)*w], sp[(top+y)*src.W+left:(top+y)*src.W+left+w])
			}
		}
		return
	}
	scalerFor(dst.W, dst.H, w, h).Scale(dst, dst.Bounds(), src, sr, draw.Src, nil)
}

// Scalers are cached by (dst, src) size: NewScaler precomputes the kernel
// weights and pools its temporary buffer, which a one-off Scale recomputes
// and reallocates per call. Crops of small images repeat a few hundred
// sizes; the cache stops growing at maxScalers for large, varied images.
const maxScalers = 4096

var (
	scalers     sync.Map // [4]int -> draw.Scaler
	scalerCount atomic.Int32
)

func scalerFor(dw, dh, sw, sh int) draw.Scaler {
	key := [4]int{dw, dh, sw, sh}
	if s, ok := scalers.Load(key); ok {
		return s.(draw.Scaler)
	}
	if scalerCount.Load() >= maxScalers {
		return draw.BiLinear
	}
	s, loaded := scalers.LoadOrStore(key, draw.BiLinear.NewScaler(dw, dh, sw, sh))
	if !loaded {
		scalerCount.Add(1)
	}
	return s.(draw.Scaler)
}

// HFlip mirrors the image left to right in place.
func HFlip(m *Image) {
	for c := 0; c < m.C; c++ {
		p := m.Plane(c)
		for y := 0; y < m.H; y++ {
			row := p[y*m.W : (y+1)*m.W]
			for i, j := 0, len(row)-1; i < j; i, j = i+1, j-1 {
				row[i], row[j] = row[j], row[i]
			}
		}
	}
}

// Grey weights as torchvision's rgb_to_grayscale (ITU-R 601-2 luma, as in
// PIL and TensorFlow), rounded to float32 just as torch rounds the scalars.
const (
	lumaR = float32(0.2989)
	lumaG = float32(0.587)
	lumaB = float32(0.114)
)

// grayPlane writes the luma of an RGB image into out (len H*W).
func grayPlane(m *Image, out []float32) {
	r, g, b := m.Plane(0), m.Plane(1), m.Plane(2)
	for i := range out {
		out[i] = lumaR*r[i] + lumaG*g[i] + lumaB*b[i]
	}
}

// Grayscale replaces an RGB image by its luma in all three channels
// (rgb_to_grayscale with num_output_channels=3); a grey image is unchanged.
func Grayscale(m *Image) {
	if m.C != 3 {
		return
	}
	n := m.H * m.W
	grayPlane(m, m.Pix[:n])
	copy(m.Pix[n:2*n], m.Pix[:n])
	copy(m.Pix[2*n:], m.Pix[:n])
}

// blendScalar computes ratio*a + (1-ratio)*b clamped to [0,1], in place in a, with
// the same float32 rounding as torchvision's _blend.
func blendScalar(a []float32, b float32, ratio float64) {
	r, s := float32(ratio), float32(1-ratio)
	sb := s * b
	for i, v := range a {
		a[i] = clamp01(r*v + sb)
	}
}

// AdjustBrightness multiplies by factor (>= 0) and clamps.
func AdjustBrightness(m *Image, factor float64) error {
	if factor < 0 {
		return fmt.Errorf("augment: brightness factor %v is negative", factor)
	}
	blendScalar(m.Pix, 0, factor)
	return nil
}

// AdjustContrast blends with the mean grey level of the whole image.
func AdjustContrast(m *Image, factor float64) error {
	if factor < 0 {
		return fmt.Errorf("augment: contrast factor %v is negative", factor)
	}
	n := m.H * m.W
	var sum float64
	if m.C == 3 {
		r, g, b := m.Plane(0), m.Plane(1), m.Plane(2)
		for i := 0; i < n; i++ {
			sum += float64(lumaR*r[i] + lumaG*g[i] + lumaB*b[i])
		}
	} else {
		for _, v := range m.Pix[:n] {
			sum += float64(v)
		}
	}
	blendScalar(m.Pix, float32(sum/float64(n)), factor)
	return nil
}

// AdjustSaturation blends with the grey image; grey input is unchanged, as
// in torchvision (which follows PIL there).
func AdjustSaturation(m *Image, factor float64) error {
	if factor < 0 {
		return fmt.Errorf("augment: saturation factor %v is negative", factor)
	}
	if m.C != 3 {
		return nil
	}
	r, s := float32(factor), float32(1-factor)
	n := m.H * m.W
	R, G, B := m.Plane(0), m.Plane(1), m.Plane(2)
	for i := 0; i < n; i++ {
		g := s * (lumaR*R[i] + lumaG*G[i] + lumaB*B[i])
		R[i] = clamp01(r*R[i] + g)
		G[i] = clamp01(r*G[i] + g)
		B[i] = clamp01(r*B[i] + g)
	}
	return nil
}

// AdjustHue rotates the hue by factor turns (factor in [-0.5, 0.5]) through
// HSV, with torchvision's formulas; grey input is unchanged.
func AdjustHue(m *Image, factor float64) error {
	if !(factor >= -0.5 && factor <= 0.5) {
		return fmt.Errorf("augment: hue factor %v is outside [-0.5, 0.5]", factor)
	}
	if m.C != 3 {
		return nil
	}
	hf := float32(factor)
	n := m.H * m.W
	R, G, B := m.Plane(0), m.Plane(1), m.Plane(2)
	for i := 0; i < n; i++ {
		h, s, v := rgbToHSV(R[i], G[i], B[i])
		h = pyMod1(h + hf)
		R[i], G[i], B[i] = hsvToRGB(h, s, v)
	}
	return nil
}

// pyMod1 is torch's x % 1.0 (remainder: x - floor(x), in float32).
// Subtracting the integer part is exact for x >= 0; for negative x the
// float32 rounding of x + n is torch's too.
func pyMod1(x float32) float32 {
	return x - float32(math.Floor(float64(x)))
}

func rgbToHSV(r, g, b float32) (h, s, v float32) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	if maxc == minc {
		return 0, 0, maxc
	}
	cr := maxc - minc
	s = cr / maxc
	rc := (maxc - r) / cr
	gc := (maxc - g) / cr
	bc := (maxc - b) / cr
	switch {
	case maxc == r:
		h = bc - gc
	case maxc == g:
		h = 2 + rc - bc
	default:
		h = 4 + gc - rc
	}
	// torch.fmod(h/6 + 1, 1): the argument is in [0, 2), so fmod is the
	// exact subtraction of its integer part.
	h = h/6 + 1
	h -= float32(math.Floor(float64(h)))
	return h, s, maxc
}

func hsvToRGB(h, s, v float32) (r, g, b float32) {
	fi := float32(math.Floor(float64(h * 6)))
	f := h*6 - fi
	i := int(fi) % 6
	if i < 0 {
		i += 6
	}
	p := clamp01(v * (1 - s))
	q := clamp01(v * (1 - s*f))
	t := clamp01(v * (1 - s*(1-f)))
	switch i {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}

// GaussianKernel1D returns torchvision's normalised 1-D Gaussian of odd
// size k and standard deviation sigma.
func GaussianKernel1D(k int, sigma float64) []float32 {
	out := make([]float32, k)
	half := float32(k-1) * 0.5
	var sum float32
	for i := range out {
		// torch.linspace(-half, half, k): start + i*step.
		x := -half
		if k > 1 {
			x = -half + float32(i)*(2*half/float32(k-1))
		}
		z := x / float32(sigma)
		out[i] = float32(math.Exp(float64(-0.5 * z * z)))
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// reflect maps an index into [0,n) by mirror reflection without repeating
// the edge pixel (torch's "reflect" padding), repeatedly if needed.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// GaussianBlur convolves every channel with the separable Gaussian of size
// kx x ky (odd) and standard deviations sigmaX, sigmaY, with reflect
// padding, as torchvision's gaussian_blur.
func GaussianBlur(m *Image, kx, ky int, sigmaX, sigmaY float64) error {
	if kx <= 0 || ky <= 0 || kx%2 == 0 || ky%2 == 0 {
		return fmt.Errorf("augment: blur kernel %dx%d must be odd and positive", kx, ky)
	}
	if !(sigmaX > 0) || !(sigmaY > 0) {
		return fmt.Errorf("augment: blur sigma (%v, %v) must be positive", sigmaX, sigmaY)
	}
	gaussianBlur(m, GaussianKernel1D(kx, sigmaX), GaussianKernel1D(ky, sigmaY))
	return nil
}

func gaussianBlur(m *Image, wx, wy []float32) {
	H, W := m.H, m.W
	rx, ry := len(wx)/2, len(wy)/2
	tmp := make([]float32, H*W)
	// Column offsets with reflection, computed once per row position.
	xi := make([]int, W*len(wx))
	for x := 0; x < W; x++ {
		for k := range wx {
			xi[x*len(wx)+k] = reflect(x+k-rx, W)
		}
	}
	for c := 0; c < m.C; c++ {
		p := m.Plane(c)
		// Vertical pass into tmp, then horizontal back into p. torch uses
		// one 2-D convolution; the separable form differs only by float32
		// rounding (tested).
		for y := 0; y < H; y++ {
			out := tmp[y*W : (y+1)*W]
			clear(out)
			for k, wk := range wy {
				row := p[reflect(y+k-ry, H)*W:]
				for x := range out {
					out[x] += wk * row[x]
				}
			}
		}
		for y := 0; y < H; y++ {
			row := tmp[y*W : (y+1)*W]
			out := p[y*W : (y+1)*W]
			for x := range out {
				var s float32
				idx := xi[x*len(wx) : (x+1)*len(wx)]
				for k, wk := range wx {
					s += wk * row[idx[k]]
				}
				out[x] = s
			}
		}
	}
}

// Solarize inverts every value at or above threshold (v -> 1-v).
func Solarize(m *Image, threshold float64) error {
	if threshold > 1 {
		return fmt.Errorf("augment: solarize threshold %v above 1", threshold)
	}
	t := float32(threshold)
	for i, v := range m.Pix {
		if v >= t {
			m.Pix[i] = 1 - v
		}
	}
	return nil
}

// Normalize maps each channel c to (v - mean[c]) / std[c].
func Normalize(m *Image, mean, std []float64) error {
	if len(mean) != m.C || len(std) != m.C {
		return fmt.Errorf("augment: normalize with %d means and %d stds for %d channels", len(mean), len(std), m.C)
	}
	for c := 0; c < m.C; c++ {
		if std[c] == 0 {
			return fmt.Errorf("augment: normalize std[%d] is zero", c)
		}
		mu, sd := float32(mean[c]), float32(std[c])
		p := m.Plane(c)
		for i, v := range p {
			p[i] = (v - mu) / sd
		}
	}
	return nil
}
