package data

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/data/preprocess"
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

// DecodeError is a file that failed to decode (preprocess's type).
type DecodeError = preprocess.DecodeError

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

// DecodeImageFile decodes one image file to a CHW float image in [0,1]
// through preprocess.DecodeFile, the decoder embed and serve use (so eval
// sees the same pixels): PNG, JPEG, GIF, BMP, WebP or TIFF by content, with
// the default pixel and file size limits. Grey sources give one channel,
// all others three, with alpha dropped as PIL's convert("RGB") drops it. A
// failure to decode is a *DecodeError with the byte offset the decoder had
// reached (decoders read ahead in blocks, so the damage is at or before it).
func DecodeImageFile(path string) (*augment.Image, error) {
	img, err := preprocess.DecodeFile(path, preprocess.DecodeOptions{})
	if err != nil {
		return nil, err
	}
	return preprocess.ToImage(img), nil
}
