package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// ModelConfig selects a model workload. The defaults of the CLI match
// scripts/bench_torch.py: 32x32 RGB inputs, 10 classes, SGD with lr 0.01,
// momentum 0.9 and weight decay 5e-4.
type ModelConfig struct {
	Arch   string // e.g. "resnet18-cifar"
	Mode   string // "train" or "forward"
	Batch  int
	Steps  int
	Warmup int
	Seed   uint64
}

// Model runs cfg.Warmup untimed then cfg.Steps timed steps of a training
// step (forward, cross-entropy against random labels, backward, SGD step)
// or an eval-mode forward without recording, on random inputs.
func Model(cfg ModelConfig) (*Result, error) {
	if cfg.Batch < 1 || cfg.Steps < 1 || cfg.Warmup < 0 {
		return nil, fmt.Errorf("bench %s: need batch > 0, steps > 0, warmup >= 0; got batch %d, steps %d, warmup %d", cfg.Mode, cfg.Batch, cfg.Steps, cfg.Warmup)
	}
	if cfg.Mode != "train" && cfg.Mode != "forward" {
		return nil, fmt.Errorf("bench: mode %q, want train or forward", cfg.Mode)
	}
	defer tensor.PinThread()() // a loop of oneDNN convolutions
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	m, err := newImageModel(cfg.Arch, rng)
	if err != nil {
		return nil, err
	}
	x := tensor.New(cfg.Batch, m.channels, m.size, m.size)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	labels := make([]int, cfg.Batch)
	for i := range labels {
		labels[i] = rng.IntN(m.classes)
	}
	in := autograd.Const(x)
	tp := autograd.NewTape()

	var step func() (float32, error)
	if cfg.Mode == "train" {
		m.module.SetTraining(true)
		opt := nn.NewSGD(nn.StateOf(m.module).Params, nn.SGDConfig{LR: 0.01, Momentum: 0.9, WeightDecay: 5e-4})
		step = func() (float32, error) {
			return TrainStep(tp, m.forward, opt, in, labels)
		}
	} else {
		m.module.SetTraining(false)
		step = func() (float32, error) {
			err := autograd.Catch(func() {
				tp.NoGrad(func() { m.forward(tp, in) })
			})
			tp.Reset()
			return 0, err
		}
	}

	r := &Result{Engine: "sslzoo", Mode: cfg.Mode, Arch: cfg.Arch, Batch: cfg.Batch, Steps: cfg.Steps,
		Warmup: cfg.Warmup, Threads: runtime.GOMAXPROCS(0), BLAS: tensor.BLASBackend(), Conv: tensor.ConvBackend()}
	var losses []float32
	run := func(n int) error {
		for range n {
			loss, err := step()
			if err != nil {
				return fmt.Errorf("bench %s %s: %w", cfg.Mode, cfg.Arch, err)
			}
			losses = append(losses, loss)
		}
		return nil
	}
	if err := run(cfg.Warmup); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := run(cfg.Steps); err != nil {
		return nil, err
	}
	r.Seconds = time.Since(start).Seconds()
	r.ImagesPerSec = float64(cfg.Batch*cfg.Steps) / r.Seconds
	if r.PeakRSSMiB, err = PeakRSSMiB(); err != nil {
		return nil, err
	}
	if cfg.Mode == "train" {
		r.FirstLoss, r.LastLoss = float64(losses[0]), float64(losses[len(losses)-1])
	}
	return r, nil
}

// TrainStep is one SGD step of classification training: forward,
// cross-entropy, backward, optimizer step. It returns the loss and resets
// the tape, so the next step reuses its buffers.
func TrainStep(tp *autograd.Tape, forward func(*autograd.Tape, *autograd.Var) *autograd.Var, opt nn.Optimizer, x *autograd.Var, labels []int) (float32, error) {
	defer tp.Reset()
	var loss *autograd.Var
	if err := autograd.Catch(func() {
		opt.ZeroGrad()
		loss = tp.CrossEntropy(forward(tp, x), labels)
	}); err != nil {
		return 0, err
	}
	var err error
	if cerr := autograd.Catch(func() { err = tp.Backward(loss) }); cerr != nil {
		return 0, cerr
	}
	if err != nil {
		return 0, err
	}
	v := loss.Value.Data[0]
	opt.Step()
	return v, nil
}

// imageModel is a classifier built from a zoo image backbone.
type imageModel struct {
	module   nn.Module
	forward  func(*autograd.Tape, *autograd.Var) *autograd.Var
	channels int
	size     int
	classes  int
}

// benchClasses matches scripts/bench_torch.py's 10-way head.
const benchClasses = 10

// newImageModel builds arch from the zoo registry with a 10-class head.
// ResNets take 32x32 inputs (the CIFAR size the issue benchmarks; ImageNet
// stems work at it too), ViTs their configured image size.
func newImageModel(arch string, rng *rand.Rand) (*imageModel, error) {
	spec, err := zoo.Arch(arch)
	if err != nil {
		return nil, err
	}
	m := &imageModel{classes: benchClasses}
	switch spec.Family {
	case "resnet":
		spec.ResNet.NumClasses = benchClasses
		m.channels, m.size = spec.ResNet.InChannels, 32
		if m.channels == 0 {
			m.channels = 3
		}
	case "vit":
		spec.ViT.NumClasses = benchClasses
		m.channels, m.size = spec.ViT.InChannels, spec.ViT.ImageSize
		if m.channels == 0 {
			m.channels = 3
		}
		if m.size == 0 {
			m.size = 224
		}
	default:
		return nil, fmt.Errorf("bench: %s is a %s model; train and forward benchmarks take image classifiers (resnet*, vit-*)", arch, spec.Family)
	}
	b, err := spec.Build(rng)
	if err != nil {
		return nil, fmt.Errorf("bench: build %s: %w", arch, err)
	}
	f, ok := b.(interface {
		Forward(*autograd.Tape, *autograd.Var) *autograd.Var
	})
	if !ok {
		return nil, fmt.Errorf("bench: %s has no image Forward", arch)
	}
	m.module, m.forward = b, f.Forward
	return m, nil
}
