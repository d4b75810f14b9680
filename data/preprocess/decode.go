package preprocess

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// Default limits of DecodeOptions.
const (
	DefaultMaxPixels = 64 << 20  // 64 megapixels: about 256 MiB once decoded to RGBA
	DefaultMaxBytes  = 256 << 20 // the largest file read into memory
)

// DecodeOptions bound what one decode may cost. Zero values take the
// defaults; a negative value means no limit.
type DecodeOptions struct {
	MaxPixels int64 // width*height declared by the header, checked before decoding
	MaxBytes  int64 // file size, checked before reading
}

func (o DecodeOptions) maxPixels() int64 {
	if o.MaxPixels == 0 {
		return DefaultMaxPixels
	}
	return o.MaxPixels
}

func (o DecodeOptions) maxBytes() int64 {
	if o.MaxBytes == 0 {
		return DefaultMaxBytes
	}
	return o.MaxBytes
}

// ErrTooLarge is wrapped by the error for an image or file over a limit.
var ErrTooLarge = errors.New("over the size limit")

// DecodeError is an image that failed to decode. Offset is how many bytes
// the decoder had consumed when it failed (decoders read ahead in blocks,
// so the damage is at or before it); it is 0 when the format itself was not
// recognised or the header was refused.
type DecodeError struct {
	Path   string
	Offset int64
	Size   int64
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s: byte offset %d of %d: decode: %v", e.Path, e.Offset, e.Size, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Format is an image file format, recognised by its first bytes.
type Format string

// The formats Decode reads.
const (
	PNG  Format = "png"
	JPEG Format = "jpeg"
	GIF  Format = "gif"
	BMP  Format = "bmp"
	WebP Format = "webp"
	TIFF Format = "tiff"
)

// Sniff names the format of an image file from its first bytes ("" when
// none matches). The extension plays no part: a PNG named .jpg is a PNG.
func Sniff(b []byte) Format {
	has := func(s string) bool { return bytes.HasPrefix(b, []byte(s)) }
	switch {
	case has("\x89PNG\r\n\x1a\n"):
		return PNG
	case has("\xff\xd8"):
		return JPEG
	case has("GIF87a"), has("GIF89a"):
		return GIF
	case has("BM"):
		return BMP
	case len(b) >= 16 && has("RIFF") && string(b[8:15]) == "WEBPVP8":
		return WebP
	case has("II*\x00"), has("MM\x00*"):
		return TIFF
	}
	return ""
}

type codec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// The decoders are called directly, not through image.Decode, so that what
// this package reads does not depend on which formats other packages
// happened to register.
var codecs = map[Format]codec{
	PNG:  {png.DecodeConfig, png.Decode},
	JPEG: {jpeg.DecodeConfig, jpeg.Decode},
	GIF:  {gif.DecodeConfig, gif.Decode}, // gif.Decode reads the first frame only
	BMP:  {bmp.DecodeConfig, bmp.Decode},
	WebP: {webp.DecodeConfig, webp.Decode},
	TIFF: {tiff.DecodeConfig, tiff.Decode},
}

// countingReader reports how far a decoder got before failing.
type countingReader struct {
	r *bytes.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ReadFile reads a whole file, refusing one larger than maxBytes (< 0: no
// limit) before reading it.
func ReadFile(path string, maxBytes int64) ([]byte, error) {
	return readFileInto(path, maxBytes, nil)
}

// DecodeFile reads and decodes one image file; see Decode.
func DecodeFile(path string, opts DecodeOptions) (image.Image, error) {
	b, err := ReadFile(path, opts.maxBytes())
	if err != nil {
		return nil, err
	}
	return Decode(path, b, opts)
}

// Decode decodes an image held in memory (PNG, JPEG, GIF's first frame,
// BMP, WebP or TIFF, told apart by content); name is what errors call it.
// The header's dimensions are checked against opts.MaxPixels before any
// pixel memory is allocated. Every failure is a *DecodeError.
//
// The image comes back as Go's decoders give it, with two corrections so
// that it holds the pixels PIL would see: a GIF's first frame is placed on
// its logical screen with the transparent palette entry keeping its colour
// (PIL's convert("RGB") shows it), and lossy WebP is converted from its
// studio-range YCbCr with libwebp's fancy chroma upsampling.
func Decode(name string, b []byte, opts DecodeOptions) (image.Image, error) {
	size := int64(len(b))
	fail := func(off int64, err error) error {
		return &DecodeError{Path: name, Offset: off, Size: size, Err: err}
	}
	format := Sniff(b)
	if format == "" {
		return nil, fail(0, fmt.Errorf("%w: not a PNG, JPEG, GIF, BMP, WebP or TIFF file (it starts % x)", image.ErrFormat, b[:min(len(b), 8)]))
	}
	c := codecs[format]
	cr := &countingReader{r: bytes.NewReader(b)}
	cfg, err := c.config(cr)
	if err != nil {
		return nil, fail(cr.n, fmt.Errorf("%s header: %w", format, eofIsUnexpected(err)))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fail(0, fmt.Errorf("%s header declares an empty %dx%d image", format, cfg.Width, cfg.Height))
	}
	if lim := opts.maxPixels(); lim >= 0 && int64(cfg.Width)*int64(cfg.Height) > lim {
		return nil, fail(0, fmt.Errorf("%w: %s header declares %dx%d pixels, the limit is %d (raise DecodeOptions.MaxPixels)",
			ErrTooLarge, format, cfg.Width, cfg.Height, lim))
	}
	cr = &countingReader{r: bytes.NewReader(b)}
	img, err := c.decode(cr)
	if err != nil {
		return nil, fail(cr.n, eofIsUnexpected(err))
	}
	if img.Bounds().Empty() {
		return nil, fail(cr.n, errors.New("empty image"))
	}
	switch format {
	case GIF:
		if p, ok := img.(*image.Paletted); ok {
			img, err = gifScreen(p, b, cfg)
			if err != nil {
				return nil, fail(0, err)
			}
		}
	case JPEG:
		if m, ok := img.(*image.YCbCr); ok {
			img = jpegRGB(m)
		}
	case WebP:
		switch m := img.(type) {
		case *image.YCbCr:
			img = webpRGB(m, nil)
		case *image.NYCbCrA:
			img = webpRGB(&m.YCbCr, m.A)
		}
	}
	return img, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
