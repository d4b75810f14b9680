package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	// Decoders registered with image.Decode.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/sslzoo/sslzoo/data/augment"
)

// DecodePolicy says what an ImageFolder does with a file that fails to
// decode.
type DecodePolicy int

const (
	// FailOnDecodeError (the default) makes Get return the error, which stops
	// the Loader: a broken file in a training set is usually a bug worth
	// seeing.
	FailOnDecodeError DecodePolicy = iota
	// SkipOnDecodeError logs a warning (FolderOptions.Warn) and drops the
	// sample: the Loader leaves it out of its batch, which is then one
	// shorter. A file that failed once is not read again.
	SkipOnDecodeError
)

// ParseDecodePolicy maps the CLI values "fail" and "skip" to a policy.
func ParseDecodePolicy(s string) (DecodePolicy, error) {
	switch s {
	case "fail", "":
		return FailOnDecodeError, nil
	case "skip":
		return SkipOnDecodeError, nil
	}
	return 0, fmt.Errorf("decode-error policy %q: want fail or skip", s)
}

func (p DecodePolicy) String() string {
	if p == SkipOnDecodeError {
		return "skip"
	}
	return "fail"
}

// ErrSkipSample marks an error for a sample the dataset chose to skip; the
// Loader drops such samples instead of failing.
var ErrSkipSample = errors.New("sample skipped")

// DecodeError is a file that failed to decode.
type DecodeError struct {
	Path   string
	Offset int64 // bytes the decoder had consumed when it failed
	Size   int64
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s: byte offset %d of %d: decode: %v", e.Path, e.Offset, e.Size, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ImageExtensions are the file name endings ImageFolder picks up by default
// (case-insensitive).
var ImageExtensions = []string{".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

// FolderOptions configure OpenImageFolder.
type FolderOptions struct {
	OnDecodeError DecodePolicy
	Extensions    []string    // nil: ImageExtensions
	Warn          func(error) // nil: log.Printf
}

// ImageFolder is a dataset laid out as root/<class>/<image>, with classes
// numbered in sorted name order (torchvision's ImageFolder). Images decode
// on each Get, in the caller's goroutine; grey images (PNG/JPEG grey, etc.)
// give one channel, all others three.
type ImageFolder struct {
	Root    string
	Classes []string
	Paths   []string
	Labels  []int
	opts    FolderOptions
	bad     []atomic.Bool // files that failed under SkipOnDecodeError
}

// OpenImageFolder lists the images under root. It fails when root has no
// class folder or no image.
func OpenImageFolder(root string, opts FolderOptions) (*ImageFolder, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", err)
	}
	exts := opts.Extensions
	if exts == nil {
		exts = ImageExtensions
	}
	f := &ImageFolder{Root: root, opts: opts}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		label := len(f.Classes)
		f.Classes = append(f.Classes, e.Name())
		var files []string
		err := filepath.WalkDir(filepath.Join(root, e.Name()), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != filepath.Join(root, e.Name()) {
				return filepath.SkipDir
			}
			if !d.IsDir() && hasExt(d.Name(), exts) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("image folder %s: %w", root, err)
		}
		sort.Strings(files)
		for _, p := range files {
			f.Paths = append(f.Paths, p)
			f.Labels = append(f.Labels, label)
		}
	}
	if len(f.Classes) == 0 {
		return nil, fmt.Errorf("image folder %s: no class subfolders", root)
	}
	if len(f.Paths) == 0 {
		return nil, fmt.Errorf("image folder %s: no images (%s) in %d class folders", root, strings.Join(exts, " "), len(f.Classes))
	}
	f.bad = make([]atomic.Bool, len(f.Paths))
	return f, nil
}

func hasExt(name string, exts []string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range exts {
		if ext == strings.ToLower(e) {
			return true
		}
	}
	return false
}

// Len implements Dataset.
func (f *ImageFolder) Len() int { return len(f.Paths) }

// Get implements Dataset: it reads and decodes file i. Under
// SkipOnDecodeError a failure is warned about once and returned wrapped in
// ErrSkipSample.
func (f *ImageFolder) Get(i int) (*augment.Image, int, error) {
	if i < 0 || i >= len(f.Paths) {
		return nil, 0, fmt.Errorf("image folder %s: sample %d out of range [0,%d)", f.Root, i, len(f.Paths))
	}
	if f.bad[i].Load() {
		return nil, 0, fmt.Errorf("%w: %s failed to decode before", ErrSkipSample, f.Paths[i])
	}
	m, err := DecodeImageFile(f.Paths[i])
	if err == nil {
		return m, f.Labels[i], nil
	}
	if f.opts.OnDecodeError != SkipOnDecodeError {
		return nil, 0, err
	}
	if f.bad[i].CompareAndSwap(false, true) {
		warn := f.opts.Warn
		if warn == nil {
			warn = func(err error) { log.Printf("warning: skipping %v", err) }
		}
		warn(err)
	}
	return nil, 0, fmt.Errorf("%w: %w", ErrSkipSample, err)
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

// DecodeImageFile decodes one image file (any registered format) to a CHW
// float image in [0,1]. A failure is a *DecodeError with the byte offset the
// decoder had reached (decoders read ahead in blocks, so the damage is at
// or before it).
func DecodeImageFile(path string) (*augment.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cr := &countingReader{r: bytes.NewReader(b)}
	img, format, err := image.Decode(cr)
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			// Sniffing looks at the first bytes only (the reader's read-ahead
			// is not where the problem is).
			return nil, &DecodeError{Path: path, Offset: 0, Size: int64(len(b)),
				Err: fmt.Errorf("%w: no decoder for a file starting % x", err, b[:min(len(b), 8)])}
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, &DecodeError{Path: path, Offset: cr.n, Size: int64(len(b)), Err: err}
	}
	if img.Bounds().Empty() {
		return nil, &DecodeError{Path: path, Offset: cr.n, Size: int64(len(b)), Err: errors.New("empty image")}
	}
	if format == "webp" {
		switch m := img.(type) {
		case *image.YCbCr:
			return studioYCbCr(m), nil
		case *image.NYCbCrA:
			return studioYCbCr(&m.YCbCr), nil
		}
	}
	return augment.FromImage(img), nil
}

// studioYCbCr converts lossy WebP's YCbCr, which is BT.601 "studio range"
// (Y in 16..235), to RGB. x/image/webp hands it over as an image.YCbCr,
// whose colour model is JPEG's full range, and that would make dark pixels
// up to 15/255 too bright and light ones 10/255 too dark. The constants are
// libwebp's (14-bit fixed point); chroma is taken from the sample covering
// each pixel, where libwebp interpolates between samples.
func studioYCbCr(m *image.YCbCr) *augment.Image {
	b := m.Bounds()
	h, w := b.Dy(), b.Dx()
	out := augment.NewImage(3, h, w)
	n := h * w
	const (
		kY  = 19077.0 / 16384
		kVR = 26149.0 / 16384
		kUG = 6419.0 / 16384
		kVG = 13320.0 / 16384
		kUB = 33050.0 / 16384
	)
	clamp := func(v float64) float32 { return float32(min(max(v, 0), 255) / 255) }
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
			Y := kY * (float64(m.Y[yi]) - 16)
			U, V := float64(m.Cb[ci])-128, float64(m.Cr[ci])-128
			out.Pix[y*w+x] = clamp(Y + kVR*V)
			out.Pix[n+y*w+x] = clamp(Y - kUG*U - kVG*V)
			out.Pix[2*n+y*w+x] = clamp(Y + kUB*U)
		}
	}
	return out
}
