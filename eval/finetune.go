package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/nn"
)

// FinetuneConfig configures fine-tuning an encoder with a linear head on a
// labelled (usually small) training set: SGD with momentum on every
// parameter, cosine learning-rate decay to 0, cross-entropy.
type FinetuneConfig struct {
	Epochs      int
	Batch       int
	LR          float64
	Momentum    float64
	WeightDecay float64
	Seed        uint64
	// Classes is the number of classes; 0 means one more than the largest
	// label of the training set.
	Classes int
	// Train augments the labelled images (e.g. a random crop and flip);
	// Eval prepares the test images. Both must produce the same size.
	Train, Eval augment.Transform
	Workers     int         // decoding goroutines; 0 means GOMAXPROCS
	Warn        func(error) // skipped samples; nil logs them
	Progress    func(epoch int, loss float64)
}

// DefaultFinetune is a short semi-supervised schedule for small labelled
// sets: 30 epochs of batch 64 at learning rate 0.05, momentum 0.9, weight
// decay 5e-4.
func DefaultFinetune() FinetuneConfig {
	return FinetuneConfig{Epochs: 30, Batch: 64, LR: 0.05, Momentum: 0.9, WeightDecay: 5e-4, Seed: 1}
}

// Finetune trains enc plus a new linear head on train and reports top-1 and
// top-5 on test. enc's weights change; load a fresh copy for another run.
func Finetune(ctx context.Context, enc Encoder, train, test data.Dataset, cfg FinetuneConfig) (Result, error) {
	if cfg.Epochs < 1 || cfg.Batch < 2 || !(cfg.LR > 0) || !(cfg.Momentum >= 0 && cfg.Momentum < 1) || !(cfg.WeightDecay >= 0) {
		return Result{}, fmt.Errorf("eval: fine-tune config: need epochs >= 1, batch >= 2, lr > 0, momentum in [0, 1), weight decay >= 0 (got %d, %d, %g, %g, %g)",
			cfg.Epochs, cfg.Batch, cfg.LR, cfg.Momentum, cfg.WeightDecay)
	}
	if train == nil || train.Len() < 2 {
		return Result{}, errors.New("eval: fine-tune needs at least 2 labelled training images")
	}
	classes := cfg.Classes
	if classes == 0 {
		if l, ok := train.(data.Labeled); ok {
			for i := range train.Len() {
				classes = max(classes, l.Label(i)+1)
			}
		}
	}
	if classes < 1 {
		return Result{}, errors.New("eval: fine-tune: number of classes unknown (set Classes)")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x46494e45))
	head := nn.NewLinear(enc.FeatureDim(), classes, true, rng)
	params := append(nn.StateOf(enc).Params, nn.StateOf(head).Params...)
	opt := nn.NewSGD(params, nn.SGDConfig{LR: float32(cfg.LR), Momentum: float32(cfg.Momentum), WeightDecay: float32(cfg.WeightDecay)})

	// A final batch of one image would break BatchNorm: drop partial
	// batches, shrinking the batch when the set is smaller than it.
	batch := min(cfg.Batch, train.Len())
	views := []augment.Transform{}
	if cfg.Train != nil {
		views = append(views, cfg.Train)
	}
	loader, err := data.NewLoader(train, data.LoaderConfig{BatchSize: batch, Shuffle: true, Seed: cfg.Seed, DropLast: true,
		Workers: cfg.Workers, Views: views, Warn: cfg.Warn})
	if err != nil {
		return Result{}, fmt.Errorf("eval: fine-tune: %w", err)
	}
	total := cfg.Epochs * loader.Len()
	tp := autograd.NewTape()
	step := 0
	for epoch := range cfg.Epochs {
		enc.SetTraining(true)
		it := loader.Epoch(ctx, epoch)
		var sum float64
		var n int
		for {
			b, err := it.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				it.Close()
				return Result{}, fmt.Errorf("eval: fine-tune: %w", err)
			}
			if b.Views[0].Shape[0] < 2 {
				b.Release()
				continue
			}
			opt.SetLR(float32(nn.WarmupCosine(step, 0, total, cfg.LR, 0)))
			loss, err := finetuneStep(tp, enc, head, opt, b)
			b.Release()
			if err != nil {
				it.Close()
				return Result{}, fmt.Errorf("eval: fine-tune epoch %d step %d: %w", epoch, step, err)
			}
			sum += float64(loss)
			n++
			step++
		}
		it.Close()
		if cfg.Progress != nil && n > 0 {
			cfg.Progress(epoch, sum/float64(n))
		}
	}

	enc.SetTraining(false)
	var scores []float32
	var labels []int
	err = batches(ctx, test, ExtractConfig{Transform: cfg.Eval, Batch: 256, Workers: cfg.Workers, Warn: cfg.Warn}, func(b *data.Batch) error {
		defer tp.Reset()
		var out *autograd.Var
		if err := autograd.Catch(func() {
			tp.NoGrad(func() { out = head.Forward(tp, enc.Features(tp, autograd.Const(b.Views[0]))) })
		}); err != nil {
			return err
		}
		scores = append(scores, out.Value.Data...)
		labels = append(labels, b.Labels...)
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("eval: fine-tune test: %w", err)
	}
	return TopK(scores, classes, labels)
}

func finetuneStep(tp *autograd.Tape, enc Encoder, head *nn.Linear, opt nn.Optimizer, b *data.Batch) (float32, error) {
	defer tp.Reset()
	opt.ZeroGrad()
	var loss *autograd.Var
	if err := autograd.Catch(func() {
		loss = tp.CrossEntropy(head.Forward(tp, enc.Features(tp, autograd.Const(b.Views[0]))), b.Labels)
	}); err != nil {
		return 0, err
	}
	v := loss.Value.Data[0]
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return v, fmt.Errorf("loss is %g", v)
	}
	if err := tp.Backward(loss); err != nil {
		return v, err
	}
	opt.Step()
	return v, nil
}
