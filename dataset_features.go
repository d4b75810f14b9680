package sslzoo

import (
	"context"
	"fmt"
	"image"
	"math"

	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/eval"
)

// DatasetFeatures embeds every sample of ds with e, preprocessed as the
// model's metadata says (as `sslzoo embed` treats image files), with the
// samples' labels: the features `sslzoo eval knn|linear --model F.onnx`
// scores, so that an exported or quantized file is measured as it is
// served. progress, when not nil, hears how many samples are done.
func (e *Encoder) DatasetFeatures(ctx context.Context, ds data.Dataset, progress func(done int)) (*eval.Features, error) {
	if e.text != nil {
		return nil, fmt.Errorf("%s is a text model; image data sets need an image model", e.path)
	}
	// In-memory sets hand out their decoded images as they are; any other
	// set's samples are float images, which are image.Images too.
	direct, _ := ds.(interface {
		Image(i int) (image.Image, error)
	})
	f := &eval.Features{D: e.dim}
	batch := e.maxBatch()
	imgs := make([]image.Image, 0, batch)
	for lo := 0; lo < ds.Len(); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		imgs = imgs[:0]
		for i := lo; i < min(lo+batch, ds.Len()); i++ {
			img, label, err := sample(ds, direct, i)
			if err != nil {
				return nil, fmt.Errorf("sample %d: %w", i, err)
			}
			imgs = append(imgs, img)
			f.Labels = append(f.Labels, label)
		}
		rows, err := e.EmbedImages(imgs)
		if err != nil {
			return nil, fmt.Errorf("samples %d-%d: %w", lo, lo+len(imgs)-1, err)
		}
		for j, r := range rows {
			if f.D == 0 {
				f.D = len(r) // a file whose output shape leaves the width open
			}
			if len(r) != f.D {
				return nil, fmt.Errorf("sample %d: %d features, want %d", lo+j, len(r), f.D)
			}
			for k, v := range r {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("sample %d: feature %d is %g", lo+j, k, v)
				}
			}
			f.X = append(f.X, r...)
		}
		if progress != nil {
			progress(lo + len(imgs))
		}
	}
	f.N = len(f.Labels)
	return f, nil
}

// sample is image i of ds and its label: the decoded image and the label
// alone where the set hands them out, else its float sample.
func sample(ds data.Dataset, direct interface {
	Image(i int) (image.Image, error)
}, i int) (image.Image, int, error) {
	lab, labeled := ds.(data.Labeled)
	if direct != nil && labeled {
		img, err := direct.Image(i)
		return img, lab.Label(i), err
	}
	m, label, err := ds.Get(i)
	return m, label, err
}
