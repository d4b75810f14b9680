package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/eval"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// evalProtocols are the evaluations `sslzoo eval` runs.
var evalProtocols = []string{"knn", "linear", "finetune"}

func evalCommand() *cli.Command {
	action := func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
		o := evalOptions{
			Protocol: c.Command.Name, Checkpoint: c.String("checkpoint"), Data: c.String("data"), JSON: c.Bool("json"),
			RandomInit: c.Bool("random-init"), Pixels: c.Bool("pixels"), K: c.Int("k"), Temperature: c.Float64("temperature"),
			Fraction: c.Float64("fraction"), Epochs: c.Int("epochs"), Batch: c.Int("batch"), LR: c.Float64("lr"),
			LimitTrain: c.Int("limit-train"), LimitTest: c.Int("limit-test"), Seed: c.Uint64("seed"),
			Workers: c.Int("workers"), OnDecodeError: c.String("on-decode-error"), Pool: c.String("pool"),
			Model: c.String("model"), Engine: c.String("engine"),
		}
		if _, err := zoo.Lookup(o.Checkpoint); err == nil && isZooName(o.Checkpoint) {
			// A zoo entry: evaluate its pulled weights file.
			path, err := sslzoo.Pull(c.Context, o.Checkpoint, &sslzoo.Options{Progress: c.App.ErrWriter})
			if err != nil {
				return pullFailure(err)
			}
			o.Checkpoint = path
		}
		return runEval(c.Context, c.App.Writer, c.App.ErrWriter, o)
	}
	usage := map[string]string{
		"knn":      "weighted kNN (k 200, T 0.1, cosine): training split as the bank, test split classified",
		"linear":   "linear probe (softmax regression) on frozen, standardised features",
		"finetune": "fine-tune the encoder plus a linear head on a --fraction of the labels",
	}
	flags := evalFlags()
	var subs []*cli.Command
	for _, p := range evalProtocols {
		subs = append(subs, &cli.Command{Name: p, Usage: usage[p], Flags: flags, Action: action})
	}
	subs = append(subs, evalGenresCommand())
	subs = append(subs, evalMLMCommand())
	return &cli.Command{
		Name:        "eval",
		Usage:       "evaluate a pretrained encoder: kNN, linear probe, fine-tuning with few labels; text models: genres, mlm",
		ArgsUsage:   "knn|linear|finetune|genres|mlm [flags]",
		Subcommands: subs,
		Action: func(c *cli.Context) error {
			known := strings.Join(append(evalProtocols[:len(evalProtocols):len(evalProtocols)], "genres", "mlm"), ", ")
			if c.NArg() > 0 {
				return usagef("sslzoo eval: unknown protocol %q (known: %s)", c.Args().First(), known)
			}
			return usagef("sslzoo eval: name a protocol (%s)", known)
		},
		Description: "Features come from --checkpoint (a final.safetensors or checkpoint.safetensors from sslzoo train),\n" +
			"from an untrained backbone of the same config (--random-init), from raw pixels (--pixels), or, for knn\n" +
			"and linear, from an ONNX file run as it is served (--model F.onnx: its recorded preprocessing, e.g. an\n" +
			"int8 export: sslzoo eval knn --model byol-int8.onnx).\n" +
			"kNN: weighted, k 200, temperature 0.1, cosine similarity, train split as the bank, test split classified.\n" +
			"linear: softmax regression on frozen standardised features. finetune: the whole encoder plus a linear\n" +
			"head on a class-balanced --fraction of the training labels.",
	}
}

func evalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "checkpoint", Usage: "a zoo model name, or weights written by sslzoo train (OUT/final.safetensors)"},
		&cli.StringFlag{Name: "model", Usage: "knn/linear: an ONNX file (sslzoo export, also --quantize int8) scored as it is served: its recorded preprocessing, on --engine"},
		&cli.StringFlag{Name: "engine", Value: "auto", Usage: "with --model: ort, go or auto"},
		&cli.StringFlag{Name: "data", Value: "fashion-mnist", Usage: "dataset: " + data.DatasetSpecs},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		&cli.BoolFlag{Name: "random-init", Usage: "evaluate an untrained backbone of the checkpoint's config"},
		&cli.StringFlag{Name: "pool", Usage: "a ViT's embedding: cls or mean (average of the normalised patch tokens) (default: the checkpoint's)"},
		&cli.BoolFlag{Name: "pixels", Usage: "evaluate raw pixels (no network; --checkpoint optional, sets the image size)"},
		&cli.IntFlag{Name: "k", Value: 200, Usage: "kNN neighbours"},
		&cli.Float64Flag{Name: "temperature", Value: 0.1, Usage: "kNN temperature"},
		&cli.Float64Flag{Name: "fraction", Value: 0.1, Usage: "finetune: fraction of training labels used (0.01 or 0.1 in the literature)"},
		&cli.IntFlag{Name: "epochs", Usage: "linear/finetune epochs (0: 30)"},
		&cli.IntFlag{Name: "batch", Usage: "linear/finetune batch (0: 256 / 64)"},
		&cli.Float64Flag{Name: "lr", Usage: "linear/finetune learning rate (0: 0.1 / 0.05)"},
		&cli.IntFlag{Name: "limit-train", Usage: "use the first N training images only (0: all)"},
		&cli.IntFlag{Name: "limit-test", Usage: "use the first N test images only (0: all)"},
		&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for --random-init weights, label fractions and shuffling"},
		&cli.IntFlag{Name: "workers", Usage: "data loading goroutines (0: one per CPU)"},
		&cli.StringFlag{Name: "on-decode-error", Value: "fail", Usage: "image folder files that fail to decode: fail or skip"},
	}
}

type evalOptions struct {
	Protocol, Checkpoint, Data string
	JSON, RandomInit, Pixels   bool
	K                          int
	Temperature, Fraction      float64
	Epochs, Batch              int
	LR                         float64
	LimitTrain, LimitTest      int
	Seed                       uint64
	Workers                    int
	OnDecodeError              string
	Pool                       string
	Model, Engine              string
}

func (o evalOptions) validate() error {
	known := false
	for _, p := range evalProtocols {
		known = known || p == o.Protocol
	}
	switch {
	case !known:
		return usagef("sslzoo eval: unknown protocol %q (known: %s)", o.Protocol, strings.Join(evalProtocols, ", "))
	case o.RandomInit && o.Pixels:
		return usagef("sslzoo eval: --random-init and --pixels exclude each other")
	case o.Pool != "" && o.Pool != ssl.PoolCLS && o.Pool != ssl.PoolMean:
		return usagef("sslzoo eval: --pool %q: want %s or %s", o.Pool, ssl.PoolCLS, ssl.PoolMean)
	case o.Pool != "" && o.Pixels:
		return usagef("sslzoo eval: --pool picks a ViT's embedding; --pixels has no network")
	case o.Model != "" && (o.Checkpoint != "" || o.RandomInit || o.Pixels || o.Pool != ""):
		return usagef("sslzoo eval: --model scores an ONNX file by itself; leave out --checkpoint, --random-init, --pixels and --pool")
	case o.Model != "" && o.Protocol == "finetune":
		return usagef("sslzoo eval: finetune trains a network; --model applies to knn and linear")
	case o.Checkpoint == "" && !o.Pixels && o.Model == "":
		return usagef("sslzoo eval: --checkpoint is required (or --model F.onnx; not with --pixels)")
	case o.Pixels && o.Protocol == "finetune":
		return usagef("sslzoo eval: finetune trains a network; --pixels applies to knn and linear")
	case o.K < 1 || !(o.Temperature > 0):
		return usagef("sslzoo eval: --k %d and --temperature %g must be positive", o.K, o.Temperature)
	case !(o.Fraction > 0 && o.Fraction <= 1):
		return usagef("sslzoo eval: --fraction %g must lie in (0, 1]", o.Fraction)
	case o.Epochs < 0 || o.Batch < 0 || o.LR < 0 || o.LimitTrain < 0 || o.LimitTest < 0 || o.Workers < 0:
		return usagef("sslzoo eval: --epochs, --batch, --lr, --limit-train, --limit-test and --workers must not be negative")
	}
	if _, err := data.ParseDecodePolicy(o.OnDecodeError); err != nil {
		return usagef("sslzoo eval: --on-decode-error: %v", err)
	}
	return nil
}

// evalReport is what `sslzoo eval --json` prints.
type evalReport struct {
	Protocol   string  `json:"protocol"`
	Features   string  `json:"features"` // "trained", "random-init" or "pixels"
	Checkpoint string  `json:"checkpoint,omitempty"`
	Model      string  `json:"model,omitempty"`
	Method     string  `json:"method,omitempty"`
	Data       string  `json:"data"`
	Top1       float64 `json:"top1"`
	Top5       float64 `json:"top5"`
	Test       int     `json:"test_images"`
	Train      int     `json:"train_images"`
	Seconds    float64 `json:"seconds"`
}

func runEval(ctx context.Context, stdout, stderr io.Writer, o evalOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	t0 := time.Now()
	warn := func(err error) { fmt.Fprintf(stderr, "warning: %v\n", err) }
	policy, _ := data.ParseDecodePolicy(o.OnDecodeError)
	open := func(train bool, limit int) (data.Dataset, error) {
		ds, err := data.Open(ctx, o.Data, data.OpenOptions{Train: train, OnDecodeError: policy, Warn: warn})
		if err != nil {
			return nil, fmt.Errorf("sslzoo eval: --data %s: %w", o.Data, err)
		}
		if limit > 0 && limit < ds.Len() {
			idx := make([]int, limit)
			for i := range idx {
				idx[i] = i
			}
			ds = &data.Subset{Base: ds, Indices: idx}
		}
		if ds.Len() == 0 {
			split := "test"
			if train {
				split = "training"
			}
			return nil, fmt.Errorf("sslzoo eval: --data %s has no %s images", o.Data, split)
		}
		return ds, nil
	}
	train, err := open(true, o.LimitTrain)
	if err != nil {
		return err
	}
	test, err := open(false, o.LimitTest)
	if err != nil {
		return err
	}
	channels, toRGB := ssl.ImageChannels(train)

	rep := evalReport{Protocol: o.Protocol, Features: "trained", Checkpoint: o.Checkpoint, Model: o.Model, Data: o.Data, Test: test.Len(), Train: train.Len()}
	var enc ssl.Encoder
	var spec ssl.TrainSpec
	if o.Checkpoint != "" {
		if enc, spec, err = ssl.LoadEncoderPooled(o.Checkpoint, o.Pool, rand.New(rand.NewPCG(o.Seed, 0x72616e64)), o.RandomInit); err != nil {
			return fmt.Errorf("sslzoo eval: --checkpoint: %w", err)
		}
		rep.Method = spec.Method
		if spec.InChannels != channels {
			return fmt.Errorf("sslzoo eval: %s takes %d-channel images, --data %s gives %d", o.Checkpoint, spec.InChannels, o.Data, channels)
		}
	}
	if o.RandomInit {
		rep.Features = "random-init"
	}
	var tf augment.Transform
	if o.Pixels {
		// Raw pixels in [0, 1], at the checkpoint's size when one is given
		// (else the images' own size), without normalisation: kNN's cosine
		// and the probe's standardisation make it irrelevant.
		rep.Features = "pixels"
		var c augment.Compose
		if toRGB {
			c = append(c, augment.ToRGB{})
		}
		if o.Checkpoint != "" {
			c = append(c, augment.CenterResize{Size: spec.Size})
		}
		tf = c
	} else {
		tf = spec.EvalTransform(toRGB)
	}

	var res eval.Result
	xc := eval.ExtractConfig{Transform: tf, Workers: o.Workers, Warn: warn}
	var onnxEnc *sslzoo.Encoder
	if o.Model != "" {
		if onnxEnc, err = sslzoo.Open(o.Model, &sslzoo.Options{Engine: o.Engine}); err != nil {
			return fmt.Errorf("sslzoo eval: --model: %w", err)
		}
		defer onnxEnc.Close()
		rep.Features = "onnx (ort)"
		if _, isGo := onnxEnc.Engine().(*onnxrt.GoSession); isGo {
			rep.Features = "onnx (go)"
		}
	}
	features := func(ds data.Dataset) (*eval.Features, error) {
		switch {
		case o.Pixels:
			return eval.Pixels(ctx, ds, xc)
		case onnxEnc != nil:
			return onnxEnc.DatasetFeatures(ctx, ds, nil)
		}
		return eval.Extract(ctx, enc, ds, xc)
	}
	switch o.Protocol {
	case "knn", "linear":
		bank, err := features(train)
		if err != nil {
			return fmt.Errorf("sslzoo eval: training features: %w", err)
		}
		query, err := features(test)
		if err != nil {
			return fmt.Errorf("sslzoo eval: test features: %w", err)
		}
		classes := len(data.Classes(train))
		if o.Protocol == "knn" {
			res, err = eval.KNN(bank, query, eval.KNNConfig{K: o.K, Temperature: o.Temperature, Classes: classes})
		} else {
			lc := eval.DefaultLinear()
			lc.Classes, lc.Seed = classes, o.Seed
			if o.Epochs > 0 {
				lc.Epochs = o.Epochs
			}
			if o.Batch > 0 {
				lc.Batch = o.Batch
			}
			if o.LR > 0 {
				lc.LR = o.LR
			}
			res, err = eval.Linear(bank, query, lc)
		}
		if err != nil {
			return fmt.Errorf("sslzoo eval: %w", err)
		}
	case "finetune":
		lab, ok := train.(data.Labeled)
		if !ok {
			return fmt.Errorf("sslzoo eval: --data %s has no labels to fine-tune on", o.Data)
		}
		idx, err := data.LabelFraction(lab, o.Fraction, o.Seed)
		if err != nil {
			return fmt.Errorf("sslzoo eval: %w", err)
		}
		sub := &data.Subset{Base: train, Indices: idx}
		rep.Train = sub.Len()
		fc := eval.DefaultFinetune()
		fc.Classes, fc.Seed, fc.Workers, fc.Warn = len(data.Classes(train)), o.Seed, o.Workers, warn
		if o.Epochs > 0 {
			fc.Epochs = o.Epochs
		}
		if o.Batch > 0 {
			fc.Batch = o.Batch
		}
		if o.LR > 0 {
			fc.LR = o.LR
		}
		norm := &augment.Normalization{Mean: spec.Mean, Std: spec.Std}
		trainTF := augment.Compose{
			augment.RandomResizedCrop{H: spec.Size, W: spec.Size, Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}},
			augment.RandomHorizontalFlip{P: 0.5}, *norm,
		}
		if toRGB {
			trainTF = append(augment.Compose{augment.ToRGB{}}, trainTF...)
		}
		fc.Train, fc.Eval = trainTF, tf
		if res, err = eval.Finetune(ctx, enc, sub, test, fc); err != nil {
			return fmt.Errorf("sslzoo eval: %w", err)
		}
	}
	rep.Top1, rep.Top5, rep.Test = res.Top1, res.Top5, res.N
	rep.Seconds = time.Since(t0).Seconds()
	if o.JSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	src := rep.Features
	if o.Checkpoint != "" {
		src += " " + o.Checkpoint
	}
	fmt.Fprintf(stdout, "%s top-1 %.2f%% top-5 %.2f%% (%d test images, %d training images; %s; %s)\n",
		o.Protocol, 100*rep.Top1, 100*rep.Top5, rep.Test, rep.Train, o.Data, src)
	return nil
}
