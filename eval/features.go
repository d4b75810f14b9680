package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/nn"
)

// Features is a labelled feature matrix: N rows of D values, row-major.
type Features struct {
	N, D   int
	X      []float32
	Labels []int
}

// Row is sample i's feature vector.
func (f *Features) Row(i int) []float32 { return f.X[i*f.D : (i+1)*f.D] }

func (f *Features) check(name string) error {
	switch {
	case f == nil || f.N < 1 || f.D < 1:
		return fmt.Errorf("eval: %s features are empty", name)
	case len(f.X) != f.N*f.D || len(f.Labels) != f.N:
		return fmt.Errorf("eval: %s features hold %d values and %d labels for %d x %d", name, len(f.X), len(f.Labels), f.N, f.D)
	}
	for i, l := range f.Labels {
		if l < 0 {
			return fmt.Errorf("eval: %s sample %d has no label", name, i)
		}
	}
	return nil
}

// Encoder maps images [N, C, H, W] to features [N, FeatureDim];
// zoo.ResNet and zoo.ViT implement it.
type Encoder interface {
	nn.Module
	FeatureDim() int
	Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var
}

// ExtractConfig configures feature extraction.
type ExtractConfig struct {
	// Transform turns each decoded image into the network's input, e.g.
	// augment.Eval(32, norm); nil feeds the decoded image as it is.
	Transform augment.Transform
	Batch     int // images per forward pass; 0 means 256
	Workers   int // decoding goroutines; 0 means GOMAXPROCS
	// Warn receives skipped samples; nil logs them.
	Warn func(error)
}

// batches runs fn on every batch of ds (one view, in dataset order).
func batches(ctx context.Context, ds data.Dataset, cfg ExtractConfig, fn func(b *data.Batch) error) error {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	views := []augment.Transform{}
	if cfg.Transform != nil {
		views = append(views, cfg.Transform)
	}
	l, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: cfg.Batch, Workers: cfg.Workers, Views: views, Warn: cfg.Warn})
	if err != nil {
		return err
	}
	it := l.Epoch(ctx, 0)
	defer it.Close()
	for {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = fn(b)
		b.Release()
		if err != nil {
			return err
		}
	}
}

// Extract runs enc in evaluation mode (BatchNorm on running statistics)
// over every sample of ds and returns the features with the labels. It
// leaves enc in evaluation mode; a trainer switches it back.
func Extract(ctx context.Context, enc Encoder, ds data.Dataset, cfg ExtractConfig) (*Features, error) {
	enc.SetTraining(false)
	d := enc.FeatureDim()
	f := &Features{D: d}
	tp := autograd.NewTape()
	err := batches(ctx, ds, cfg, func(b *data.Batch) error {
		var out *autograd.Var
		err := autograd.Catch(func() {
			tp.NoGrad(func() { out = enc.Features(tp, autograd.Const(b.Views[0])) })
		})
		if err != nil {
			tp.Reset()
			return err
		}
		if s := out.Shape(); len(s) != 2 || s[1] != d {
			tp.Reset()
			return fmt.Errorf("encoder output shape %v, want [N, %d]", s, d)
		}
		f.X = append(f.X, out.Value.Data...)
		f.Labels = append(f.Labels, b.Labels...)
		tp.Reset()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("eval: extract features: %w", err)
	}
	f.N = len(f.Labels)
	for i, v := range f.X {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("eval: extract features: sample %d feature %d is %g", i/d, i%d, v)
		}
	}
	return f, nil
}

// Pixels returns the raw pixels of every sample (after cfg.Transform) as
// features: the baseline any learned representation should beat.
func Pixels(ctx context.Context, ds data.Dataset, cfg ExtractConfig) (*Features, error) {
	f := &Features{}
	err := batches(ctx, ds, cfg, func(b *data.Batch) error {
		v := b.Views[0]
		d := v.Numel() / v.Shape[0]
		if f.D != 0 && f.D != d {
			return fmt.Errorf("image size changed from %d to %d values (add a resize to the transform)", f.D, d)
		}
		f.D = d
		f.X = append(f.X, v.Data...)
		f.Labels = append(f.Labels, b.Labels...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("eval: pixel features: %w", err)
	}
	f.N = len(f.Labels)
	return f, nil
}
