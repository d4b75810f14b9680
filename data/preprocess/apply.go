package preprocess

import (
	"fmt"
	"image"
	"math"

	"golang.org/x/image/draw"

	"github.com/sslzoo/sslzoo/data/augment"
)

// maxResized bounds the intermediate image a resize may produce: a 1x50000
// image resized to a shorter side of 256 would otherwise ask for 256x12.8M.
const maxResized = DefaultMaxPixels

// resizeSpread is how many times the spec's own pixel count (its crop, or
// resize_size squared) an upscaling resize may produce: aspect ratios up
// to 64:1 are kept whatever the size. Beyond that the intermediate grows
// with the aspect ratio, not with the pixels decoded (a 1x60000 strip
// would make 24x1.44M for resize_size 24), and only the crop survives it.
const resizeSpread = 64

// resizeLimit is the most pixels the resize of an image of n pixels may
// make: no more than the image itself, or resizeSpread times the spec.
func (s Spec) resizeLimit(n int64) int64 {
	own := max(int64(s.Size[0])*int64(s.Size[1]), int64(s.ResizeSize)*int64(s.ResizeSize))
	return min(maxResized, max(n, resizeSpread*own))
}

// Shape is the C, H, W of the tensor the spec produces for one image.
func (s Spec) Shape() (c, h, w int) { return s.NumChannels(), s.Size[0], s.Size[1] }

// Len is C*H*W, the number of float32 values per image.
func (s Spec) Len() int { c, h, w := s.Shape(); return c * h * w }

// ResizedSize is the height and width an h x w image has after the resize
// step (before the crop): torchvision's Resize(resize_size), which makes the
// shorter side resize_size and truncates the longer one, or Resize(size).
func (s Spec) ResizedSize(h, w int) (rh, rw int) {
	if s.ResizeSize <= 0 {
		return s.Size[0], s.Size[1]
	}
	short, long := h, w
	if w <= h {
		short, long = w, h
	}
	// As Python computes int(size * long / short): an exact integer product,
	// one float division, truncation.
	nl := int(float64(s.ResizeSize*long) / float64(short))
	if w <= h {
		return nl, s.ResizeSize
	}
	return s.ResizeSize, nl
}

// prepared is a validated spec with its per-channel lookup tables: after
// the 8-bit resize and crop every value is one of 256 per channel.
type prepared struct {
	Spec
	lut [3][256]float32
}

func (s Spec) prepare() (*prepared, error) {
	s.Normalize()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	p := &prepared{Spec: s}
	for c := 0; c < s.NumChannels(); c++ {
		for v := range 256 {
			p.lut[c][v] = s.normalized(c, v)
		}
	}
	return p, nil
}

// normalized is the model input for 8-bit value v of channel c.
func (s Spec) normalized(c, v int) float32 {
	mean, std := float32(s.Mean[c]), float32(s.Std[c])
	var x float32
	if s.Scale == 1.0/255 {
		x = float32(v) / 255 // ToTensor's division, bit for bit
	} else {
		x = float32(float64(v) * s.Scale)
	}
	return (x - mean) / std // Normalize's sub_ then div_ in float32
}

// Apply preprocesses a decoded image into a new C*H*W float32 slice (CHW).
func (s Spec) Apply(img image.Image) ([]float32, error) {
	p, err := s.prepare()
	if err != nil {
		return nil, err
	}
	dst := make([]float32, p.Len())
	if err := p.into(dst, img, nil); err != nil {
		return nil, err
	}
	return dst, nil
}

// ApplyInto is Apply writing into dst, which must hold exactly Len values.
func (s Spec) ApplyInto(dst []float32, img image.Image) error {
	p, err := s.prepare()
	if err != nil {
		return err
	}
	return p.into(dst, img, nil)
}

// File decodes the image at path with the default DecodeOptions and
// preprocesses it.
func (s Spec) File(path string) ([]float32, error) {
	p, err := s.prepare()
	if err != nil {
		return nil, err
	}
	img, err := DecodeFile(path, DecodeOptions{})
	if err != nil {
		return nil, err
	}
	dst := make([]float32, p.Len())
	if err := p.into(dst, img, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return dst, nil
}

// scratch is one worker's reusable memory.
type scratch struct {
	file         []byte
	pix, resized []uint8
}

// into runs the pipeline on img, writing Len values to dst.
func (p *prepared) into(dst []float32, img image.Image, sc *scratch) error {
	if len(dst) != p.Len() {
		return fmt.Errorf("preprocess: output buffer holds %d values, want %d (%dx%dx%d)", len(dst), p.Len(), p.NumChannels(), p.Size[0], p.Size[1])
	}
	if img == nil || img.Bounds().Empty() {
		return fmt.Errorf("preprocess: empty image")
	}
	if sc == nil {
		sc = &scratch{}
	}
	b := img.Bounds()
	rh, rw := p.ResizedSize(b.Dy(), b.Dx())
	if lim := p.resizeLimit(int64(b.Dx()) * int64(b.Dy())); rh < 1 || rw < 1 || int64(rh)*int64(rw) > lim {
		return fmt.Errorf("preprocess: a %dx%d image resizes to %dx%d, outside 1..%d pixels (aspect ratio too extreme for resize_size %d)",
			b.Dx(), b.Dy(), rw, rh, lim, p.ResizeSize)
	}
	px := toPixels8(img, p.Channels, sc.pix)
	sc.pix = px.Pix
	if rh != px.H || rw != px.W {
		var err error
		if px, err = resize(px, rh, rw, p.Resize, sc.resized); err != nil {
			return err
		}
		sc.resized = px.Pix
	}
	oh, ow := p.Size[0], p.Size[1]
	top, left := 0, 0
	if p.Crop == "center" {
		top, left = cropOffset(px.H, oh), cropOffset(px.W, ow)
	} else if px.H != oh || px.W != ow {
		return fmt.Errorf("preprocess: image is %dx%d after the resize, the model wants %dx%d; use crop \"center\"", px.W, px.H, ow, oh)
	}
	n := oh * ow
	for c := 0; c < px.C; c++ {
		lut := &p.lut[c]
		plane := px.Pix[c*px.H*px.W : (c+1)*px.H*px.W]
		out := dst[c*n : (c+1)*n]
		for y := 0; y < oh; y++ {
			sy := y + top
			row := out[y*ow : (y+1)*ow]
			if sy < 0 || sy >= px.H {
				for x := range row {
					row[x] = lut[0] // torchvision pads with black before normalising
				}
				continue
			}
			src := plane[sy*px.W : (sy+1)*px.W]
			for x := range row {
				sx := x + left
				if sx < 0 || sx >= px.W {
					row[x] = lut[0]
					continue
				}
				row[x] = lut[src[sx]]
			}
		}
	}
	return nil
}

// cropOffset is where torchvision's center_crop starts a crop of length c
// in a side of length n: int(round((n - c) / 2.0)) with Python's round half
// to even; when the crop is longer, center_crop first pads (c - n) // 2 on
// the leading side, so the offset is negative.
func cropOffset(n, c int) int {
	if c > n {
		return -((c - n) / 2)
	}
	return int(math.RoundToEven(float64(n-c) / 2))
}

// resize scales an 8-bit image with augment's antialiased bilinear
// resampler (PIL's filter) or x/image/draw's Catmull-Rom (PIL's bicubic),
// and rounds back to 8 bits, as PIL's resize of an 8-bit image
// does, so that the crop and lookup tables see the values PIL would.
func resize(px pixels8, rh, rw int, mode string, buf []uint8) (pixels8, error) {
	src := augment.NewImage(px.C, px.H, px.W)
	for i, v := range px.Pix {
		src.Pix[i] = float32(v) / 255
	}
	var dst *augment.Image
	var err error
	switch mode {
	case "bilinear":
		dst, err = augment.ResizedCrop(src, 0, 0, px.H, px.W, rh, rw)
	case "bicubic":
		// PIL's bicubic is the a = -0.5 cubic, which is x/image/draw's
		// Catmull-Rom, widened when shrinking as PIL does.
		dst = augment.NewImage(px.C, rh, rw)
		draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	default:
		err = fmt.Errorf("preprocess: resize %q is not supported", mode)
	}
	if err != nil {
		return pixels8{}, err
	}
	n := len(dst.Pix)
	if cap(buf) < n {
		buf = make([]uint8, n)
	}
	out := pixels8{C: dst.C, H: dst.H, W: dst.W, Pix: buf[:n]}
	for i, v := range dst.Pix {
		out.Pix[i] = uint8(min(max(v*255+0.5, 0), 255))
	}
	return out, nil
}
