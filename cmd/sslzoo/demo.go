package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/internal/bench"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// Fashion-MNIST training-set pixel statistics (on the 0-1 scale).
const fashionMean, fashionStd = 0.2860, 0.3530

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "train a few SGD steps of ResNet-18 (CIFAR stem) on a batch of Fashion-MNIST and print the loss",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz (default $" + data.EnvFashionMNISTDir + ", else " + data.FashionMNISTDir + ")"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "images in the batch"},
			&cli.IntFlag{Name: "steps", Value: 12, Usage: "SGD steps on that batch"},
			&cli.Float64Flag{Name: "lr", Value: 0.05, Usage: "learning rate (momentum 0.9)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "weight initialisation seed"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg := demoConfig{Data: c.String("data"), Batch: c.Int("batch"), Steps: c.Int("steps"),
				LR: c.Float64("lr"), Seed: c.Uint64("seed"), Width: 1}
			if cfg.Batch < 1 || cfg.Steps < 2 || !(cfg.LR > 0) {
				return usagef("sslzoo demo: need --batch >= 1, --steps >= 2 and --lr > 0 (got %d, %d, %g)", cfg.Batch, cfg.Steps, cfg.LR)
			}
			return demo(c.App.Writer, cfg)
		},
	}
}

type demoConfig struct {
	Data  string
	Batch int
	Steps int
	LR    float64
	Seed  uint64
	Width float64 // ResNet width multiplier; tests shrink it
}

// demo overfits one batch of real images: the loss must fall, which shows
// the whole path (data, conv, batch norm, backward, optimizer) working.
func demo(w io.Writer, cfg demoConfig) error {
	x, labels, err := loadFashionBatch(cfg.Data, cfg.Batch)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	model, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: cfg.Width, InChannels: 1, NumClasses: 10},
		rand.New(rand.NewPCG(cfg.Seed, 0xde70)))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	model.SetTraining(true)
	opt := nn.NewSGD(nn.StateOf(model).Params, nn.SGDConfig{LR: float32(cfg.LR), Momentum: 0.9})
	fmt.Fprintf(w, "ResNet-18 (CIFAR stem, 1 input channel) on %d Fashion-MNIST images padded to 32x32; SGD lr %g momentum 0.9\n", cfg.Batch, cfg.LR)
	fmt.Fprintf(w, "kernels: %s; conv %s\n", tensor.BLASBackend(), tensor.ConvBackend())

	tp := autograd.NewTape()
	in := autograd.Const(x)
	start := time.Now()
	var first, last float32
	for step := 1; step <= cfg.Steps; step++ {
		t0 := time.Now()
		loss, err := bench.TrainStep(tp, model.Forward, opt, in, labels)
		if err != nil {
			return fmt.Errorf("demo: step %d: %w", step, err)
		}
		if step == 1 {
			first = loss
		}
		last = loss
		fmt.Fprintf(w, "step %2d/%d  loss %.4f  (%.2fs)\n", step, cfg.Steps, loss, time.Since(t0).Seconds())
	}
	elapsed := time.Since(start).Seconds()
	fmt.Fprintf(w, "loss %.4f -> %.4f in %.1fs (%.1f images/s)\n", first, last, elapsed, float64(cfg.Batch*cfg.Steps)/elapsed)
	if !(last < first) {
		return fmt.Errorf("demo: the loss did not fall (%.4f -> %.4f)", first, last)
	}
	return nil
}

// loadFashionBatch reads the first n training images, normalised with the
// dataset's mean and std and padded from 28x28 to 32x32 with the background
// value, as [n,1,32,32], and their labels.
func loadFashionBatch(dir string, n int) (*tensor.Tensor, []int, error) {
	ds, err := data.LoadFashionMNIST(dir, true)
	if err != nil {
		return nil, nil, err
	}
	if ds.C != 1 || ds.H != 28 || ds.W != 28 || ds.Labels == nil {
		return nil, nil, fmt.Errorf("%s: want labelled 1x28x28 images, got %dx%dx%d", ds.Name, ds.C, ds.H, ds.W)
	}
	if ds.N < n {
		return nil, nil, fmt.Errorf("%s: asked for %d images, it holds %d", ds.Name, n, ds.N)
	}
	const size, pad = 32, 2
	x := tensor.New(n, 1, size, size)
	background := float32(-fashionMean / fashionStd)
	for i := range x.Data {
		x.Data[i] = background
	}
	for b := range n {
		for r := range 28 {
			dst := x.Data[b*size*size+(r+pad)*size+pad:]
			src := ds.Pix[b*28*28+r*28:]
			for c := range 28 {
				dst[c] = (float32(src[c])/255 - fashionMean) / fashionStd
			}
		}
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = ds.Labels[i]
		if labels[i] < 0 || labels[i] > 9 {
			return nil, nil, fmt.Errorf("%s: label %d of image %d is out of range 0-9", ds.Name, labels[i], i)
		}
	}
	return x, labels, nil
}
