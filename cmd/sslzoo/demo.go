package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/eval"
	"github.com/sslzoo/sslzoo/onnxrt"
)

// demoModel is the bundled encoder `make demo` shows.
const demoModel = "simclr-resnet18-fmnist"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "pull a bundled encoder, embed Fashion-MNIST, score it by kNN, export it and check ONNX Runtime against the Go engine",
		UsageText: "sslzoo demo [--model NAME] [--limit-train N] [--limit-test N]\n\nexample:\n" +
			"  SSLZOO_OFFLINE=1 sslzoo demo",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: demoModel, Usage: "zoo image model trained on Fashion-MNIST"},
			&cli.StringFlag{Name: "data", Usage: "Fashion-MNIST folder (default $" + data.EnvFashionMNISTDir + ", else " + data.FashionMNISTDir + ")"},
			&cli.IntFlag{Name: "limit-train", Usage: "kNN bank: the first N training images (0: all 60,000)"},
			&cli.IntFlag{Name: "limit-test", Usage: "the first N test images classified (0: all 10,000)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return demo(c.Context, c.App.Writer, c.App.ErrWriter, demoConfig{Model: c.String("model"), Data: c.String("data"),
				LimitTrain: c.Int("limit-train"), LimitTest: c.Int("limit-test")})
		},
	}
}

type demoConfig struct {
	Model, Data           string
	LimitTrain, LimitTest int
}

// demo walks the user path: pull (offline: the bundled copy), embed the
// test images, classify them by weighted kNN against the embedded training
// set (the README's protocol: k 200, T 0.1, cosine), then the exported
// ONNX file on both engines.
func demo(ctx context.Context, w, errw io.Writer, cfg demoConfig) error {
	fail := func(err error) error { return fmt.Errorf("sslzoo demo: %w", err) }
	start := time.Now()
	weights, err := sslzoo.Pull(ctx, cfg.Model, &sslzoo.Options{Progress: errw})
	if err != nil {
		return pullFailure(err)
	}
	fmt.Fprintf(w, "1. pulled %s: %s\n", cfg.Model, weights)
	enc, err := sslzoo.Load(ctx, cfg.Model, &sslzoo.Options{Progress: errw})
	if err != nil {
		return fail(err)
	}
	defer enc.Close()
	train, err := data.LoadFashionMNIST(cfg.Data, true)
	if err != nil {
		return fail(err)
	}
	test, err := data.LoadFashionMNIST(cfg.Data, false)
	if err != nil {
		return fail(err)
	}
	train, test = train.Subset(cfg.LimitTrain), test.Subset(cfg.LimitTest)
	t0 := time.Now()
	bank, err := enc.DatasetFeatures(ctx, train, nil)
	if err != nil {
		return fail(err)
	}
	query, err := enc.DatasetFeatures(ctx, test, nil)
	if err != nil {
		return fail(err)
	}
	secs := time.Since(t0).Seconds()
	fmt.Fprintf(w, "2. embedded %d test and %d training images (%d-d) in %.1fs, %.0f images/s\n",
		query.N, bank.N, bank.D, secs, float64(bank.N+query.N)/secs)
	r, err := eval.KNN(bank, query, eval.DefaultKNN())
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(w, "3. kNN top-1: %.2f%% (weighted kNN, k 200, T 0.1, cosine; %d-image training bank)\n", 100*r.Top1, bank.N)
	diff, err := engineParity(enc.Path(), test)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(w, "4. exported %s\n   ONNX Runtime vs Go engine, 64 test images: max |diff| %.3g\n", enc.Path(), diff)
	fmt.Fprintf(w, "done in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// engineParity runs 64 test images through the ONNX file on ONNX Runtime
// and on the Go engine and returns the largest difference.
func engineParity(path string, test *data.Images) (float64, error) {
	var outs [2][]float32
	for k, kind := range []string{onnxrt.EngineORT, onnxrt.EngineGo} {
		enc, err := sslzoo.Open(path, &sslzoo.Options{Engine: kind})
		if err != nil {
			return 0, fmt.Errorf("%s: %w", kind, err)
		}
		f, err := enc.DatasetFeatures(context.Background(), test.Subset(64), nil)
		enc.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", kind, err)
		}
		outs[k] = f.X
	}
	var d float64
	for i := range outs[0] {
		d = max(d, math.Abs(float64(outs[0][i]-outs[1][i])))
	}
	return d, nil
}
