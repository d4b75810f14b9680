// Package preprocess turns image files into model inputs the way the
// model's metadata says: decode, convert to the model's channels, resize,
// center crop, scale and normalise, as torchvision's eval transforms do on
// PIL images. One code path serves embed, serve, eval and the zoo API, so a
// model sees the same pixels whichever door an image comes in by.
//
// Decode reads PNG, JPEG, GIF (first frame), BMP, WebP and TIFF by content,
// refusing a header that declares more pixels than a limit before any pixel
// memory is allocated. Its pixels are PIL's: chroma upsampling and colour
// conversion of JPEG and lossy WebP follow libjpeg and libwebp, and a GIF's
// first frame sits on its logical screen as in PIL (only JPEG's IDCT is
// Go's, off by a level or two at most). Spec.Apply then converts to RGB or
// L, resizes, crops, scales and normalises; Files does all of it for many
// files on several goroutines, in order and in batches, and ExpandInputs
// turns command-line arguments (files, folders, globs) into the file list.
// scripts/gen_preprocess_golden.py holds the PIL/torchvision reference the
// tests compare against.
package preprocess

import (
	"fmt"
	"math"
	"strings"
)

// Channel modes, as PIL names them.
const (
	RGB = "RGB"
	L   = "L" // one luminance channel (ITU-R 601-2 luma, PIL's convert("L"))
)

// Spec is the preprocessing a model expects. It is stored as JSON under the
// "sslzoo.preprocess" key of ONNX metadata, in safetensors metadata and in
// the zoo manifest, so another stack can reproduce it from the file alone.
//
// The steps, in order: convert to Channels; when ResizeSize > 0, resize the
// shorter side to ResizeSize (aspect kept), else resize the whole image to
// Size; with Crop "center", cut the Size window out of the middle; multiply
// the 0..255 values by Scale; subtract Mean and divide by Std per channel.
// As with torchvision on a PIL image, the resize rounds back to 8-bit values
// and a crop larger than the resized image pads it with black (0) first.
type Spec struct {
	Layout     string    `json:"layout"`                // "NCHW"
	Channels   string    `json:"channels"`              // RGB or L
	Size       [2]int    `json:"size"`                  // height, width of the model input
	ResizeSize int       `json:"resize_size,omitempty"` // shorter side before the crop; 0: resize to Size
	Resize     string    `json:"resize"`                // interpolation, antialiased as PIL's: "bilinear" or "bicubic"
	Crop       string    `json:"crop"`                  // "center" or "none"
	Scale      float64   `json:"scale"`                 // applied to 0..255 pixels first, e.g. 1/255
	Mean       []float64 `json:"mean"`                  // per channel, after scaling
	Std        []float64 `json:"std"`                   // per channel, after scaling
}

// NumChannels is the number of input channels the spec produces.
func (s Spec) NumChannels() int {
	if s.Channels == L {
		return 1
	}
	return 3
}

// Normalize fills defaults and old spellings in place: "grey" (written by
// sslzoo before the zoo manifest) is L, an empty layout is NCHW, an empty
// crop is "none".
func (s *Spec) Normalize() {
	switch strings.ToLower(s.Channels) {
	case "grey", "gray", "l":
		s.Channels = L
	case "rgb":
		s.Channels = RGB
	}
	if s.Layout == "" {
		s.Layout = "NCHW"
	}
	if s.Crop == "" {
		s.Crop = "none"
	}
	if s.Resize == "" {
		s.Resize = "bilinear"
	}
}

// Validate reports the first thing wrong with a spec.
func (s Spec) Validate() error {
	switch {
	case s.Layout != "NCHW":
		return fmt.Errorf("preprocess: layout %q: want NCHW", s.Layout)
	case s.Channels != RGB && s.Channels != L:
		return fmt.Errorf("preprocess: channels %q: want RGB or L", s.Channels)
	case s.Size[0] < 1 || s.Size[1] < 1 || s.Size[0] > 1<<14 || s.Size[1] > 1<<14:
		return fmt.Errorf("preprocess: size %dx%d outside 1..16384", s.Size[0], s.Size[1])
	case s.ResizeSize < 0 || s.ResizeSize > 1<<14:
		return fmt.Errorf("preprocess: resize_size %d outside 0..16384", s.ResizeSize)
	case s.Resize != "bilinear" && s.Resize != "bicubic":
		return fmt.Errorf("preprocess: resize %q: want bilinear or bicubic", s.Resize)
	case s.Crop != "center" && s.Crop != "none":
		return fmt.Errorf("preprocess: crop %q: want center or none", s.Crop)
	case s.Crop == "none" && s.ResizeSize > 0:
		return fmt.Errorf("preprocess: resize_size %d without crop \"center\" gives inputs of varying size; use crop center, or resize_size 0 to resize to %dx%d", s.ResizeSize, s.Size[0], s.Size[1])
	case s.Crop == "center" && s.ResizeSize > 0 && s.ResizeSize < min(s.Size[0], s.Size[1]):
		return fmt.Errorf("preprocess: resize_size %d is smaller than the %dx%d crop", s.ResizeSize, s.Size[0], s.Size[1])
	case !(s.Scale > 0):
		return fmt.Errorf("preprocess: scale %g must be positive", s.Scale)
	case len(s.Mean) != s.NumChannels() || len(s.Std) != s.NumChannels():
		return fmt.Errorf("preprocess: %d means and %d stds for %d %s channel(s)", len(s.Mean), len(s.Std), s.NumChannels(), s.Channels)
	}
	for i, v := range s.Std {
		if !(v > 0) {
			return fmt.Errorf("preprocess: std[%d] = %g must be positive", i, v)
		}
	}
	// The arithmetic is float32's: a scale, mean or std that is finite as
	// float64 can still overflow there, or a std round to 0. The values are
	// linear in the pixel, so the ends of 0..255 bound them all.
	for c := range s.NumChannels() {
		for _, v := range []int{0, 255} {
			if x := float64(s.normalized(c, v)); math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("preprocess: channel %d: scale %g, mean %g and std %g give %v for pixel value %d in float32", c, s.Scale, s.Mean[c], s.Std[c], x, v)
			}
		}
	}
	return nil
}
