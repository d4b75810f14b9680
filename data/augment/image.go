// Package augment holds the image augmentations used by self-supervised
// training: the torchvision ops (RandomResizedCrop, flips, ColorJitter,
// RandomGrayscale, GaussianBlur, Solarize, Normalize) with torchvision's
// defaults and probabilities, multi-view and multi-crop recipes, and their
// deterministic functional forms, which are tested against torchvision 0.14.
//
// Images are float32, channel-major (CHW), with values in [0,1] (except after
// Normalize). That is the layout the network consumes, and the one
// torchvision's tensor ops use, so each colour op is the same float32 maths.
// Resampling goes through golang.org/x/image/draw: Image implements
// draw.RGBA64Image, so the scaler reads and writes it directly at 16 bits per
// channel (quantisation error at most 1/131070 per value).
package augment

import (
	"fmt"
	"image"
	"image/color"
)

// Image is a float32 CHW image with C = 1 (grey) or 3 (RGB).
type Image struct {
	C, H, W int
	Pix     []float32 // len C*H*W, channel planes one after another
}

// NewImage returns a zeroed image.
func NewImage(c, h, w int) *Image {
	return &Image{C: c, H: h, W: w, Pix: make([]float32, c*h*w)}
}

// Plane returns channel ch as a slice of H*W values.
func (m *Image) Plane(ch int) []float32 {
	n := m.H * m.W
	return m.Pix[ch*n : (ch+1)*n]
}

// Clone returns a deep copy.
func (m *Image) Clone() *Image {
	c := &Image{C: m.C, H: m.H, W: m.W, Pix: make([]float32, len(m.Pix))}
	copy(c.Pix, m.Pix)
	return c
}

// Check reports a malformed image (wrong channel count or buffer length).
func (m *Image) Check() error {
	if m == nil {
		return fmt.Errorf("augment: nil image")
	}
	if m.C != 1 && m.C != 3 {
		return fmt.Errorf("augment: image has %d channels, want 1 or 3", m.C)
	}
	if m.H <= 0 || m.W <= 0 || len(m.Pix) != m.C*m.H*m.W {
		return fmt.Errorf("augment: image %dx%dx%d with %d values", m.C, m.H, m.W, len(m.Pix))
	}
	return nil
}

// FromImage converts any image.Image to a CHW float image in [0,1]. Grey
// sources (image.Gray, image.Gray16) give one channel, everything else three.
// Alpha is dropped after un-premultiplying, which is how PIL's convert("RGB")
// treats the colour of translucent pixels closely enough for training data.
func FromImage(src image.Image) *Image {
	b := src.Bounds()
	h, w := b.Dy(), b.Dx()
	switch s := src.(type) {
	case *image.Gray:
		m := NewImage(1, h, w)
		for y := 0; y < h; y++ {
			row := s.Pix[(y)*s.Stride : y*s.Stride+w]
			for x, v := range row {
				m.Pix[y*w+x] = float32(v) / 255
			}
		}
		return m
	case *image.Gray16:
		m := NewImage(1, h, w)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				m.Pix[y*w+x] = float32(s.Gray16At(b.Min.X+x, b.Min.Y+y).Y) / 65535
			}
		}
		return m
	}
	m := NewImage(3, h, w)
	n := h * w
	// 8-bit formats divide by 255 so that a uint8 pixel maps to exactly the
	// value torchvision's ToTensor gives it.
	if s, ok := src.(*image.RGBA); ok {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := s.Pix[y*s.Stride+4*x:]
				a := float32(p[3])
				if a == 0 {
					continue
				}
				if p[3] == 255 {
					m.Pix[y*w+x] = float32(p[0]) / 255
					m.Pix[n+y*w+x] = float32(p[1]) / 255
					m.Pix[2*n+y*w+x] = float32(p[2]) / 255
					continue
				}
				m.Pix[y*w+x] = float32(p[0]) / a
				m.Pix[n+y*w+x] = float32(p[1]) / a
				m.Pix[2*n+y*w+x] = float32(p[2]) / a
			}
		}
		return m
	}
	if s, ok := src.(*image.NRGBA); ok {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p := s.Pix[y*s.Stride+4*x:]
				m.Pix[y*w+x] = float32(p[0]) / 255
				m.Pix[n+y*w+x] = float32(p[1]) / 255
				m.Pix[2*n+y*w+x] = float32(p[2]) / 255
			}
		}
		return m
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA64Model.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
			m.Pix[y*w+x] = float32(c.R) / 65535
			m.Pix[n+y*w+x] = float32(c.G) / 65535
			m.Pix[2*n+y*w+x] = float32(c.B) / 65535
		}
	}
	return m
}

// The methods below make *Image a draw.RGBA64Image, so x/image/draw's
// scalers take their RGBA64 fast path on it in both directions.

// ColorModel implements image.Image.
func (m *Image) ColorModel() color.Model { return color.RGBA64Model }

// Bounds implements image.Image.
func (m *Image) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// At implements image.Image.
func (m *Image) At(x, y int) color.Color { return m.RGBA64At(x, y) }

func to16(v float32) uint16 {
	if !(v > 0) { // also maps NaN to 0
		return 0
	}
	if v >= 1 {
		return 0xffff
	}
	return uint16(v*65535 + 0.5)
}

// RGBA64At implements image.RGBA64Image; values are clamped to [0,1].
func (m *Image) RGBA64At(x, y int) color.RGBA64 {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.RGBA64{}
	}
	i := y*m.W + x
	if m.C == 1 {
		g := to16(m.Pix[i])
		return color.RGBA64{g, g, g, 0xffff}
	}
	n := m.H * m.W
	return color.RGBA64{to16(m.Pix[i]), to16(m.Pix[n+i]), to16(m.Pix[2*n+i]), 0xffff}
}

// SetRGBA64 implements draw.RGBA64Image. Colours are taken as opaque; a grey
// image stores the red channel, since its sources are grey too.
func (m *Image) SetRGBA64(x, y int, c color.RGBA64) {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return
	}
	i := y*m.W + x
	m.Pix[i] = float32(c.R) / 65535
	if m.C == 3 {
		n := m.H * m.W
		m.Pix[n+i] = float32(c.G) / 65535
		m.Pix[2*n+i] = float32(c.B) / 65535
	}
}

// Set implements draw.Image.
func (m *Image) Set(x, y int, c color.Color) {
	m.SetRGBA64(x, y, color.RGBA64Model.Convert(c).(color.RGBA64))
}

// clamp01 bounds v to [0,1] the way torch.clamp does (NaN passes through).
func clamp01(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}
