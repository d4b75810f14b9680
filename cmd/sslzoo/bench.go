package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/internal/bench"
	"github.com/sslzoo/sslzoo/tensor"
)

func benchCommand() *cli.Command {
	stepFlags := func(defSteps, defWarmup int) []cli.Flag {
		return []cli.Flag{
			&cli.IntFlag{Name: "steps", Value: defSteps, Usage: "timed steps"},
			&cli.IntFlag{Name: "warmup", Value: defWarmup, Usage: "untimed steps first (buffer pools fill, libraries start threads)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a summary line"},
		}
	}
	return &cli.Command{
		Name:  "bench",
		Usage: "measure training/inference throughput and peak memory (see make bench for the PyTorch comparison)",
		Subcommands: []*cli.Command{
			{
				Name:   "train",
				Usage:  "full training step: forward, cross-entropy against random labels, backward, SGD step",
				Flags:  append(modelFlags(), stepFlags(10, 2)...),
				Action: benchModel("train"),
			},
			{
				Name:   "forward",
				Usage:  "eval-mode forward pass, nothing recorded",
				Flags:  append(modelFlags(), stepFlags(10, 2)...),
				Action: benchModel("forward"),
			},
			{
				Name:   "gemm",
				Usage:  "time a square float32 GEMM through tensor.Sgemm, and raw C sgemm when OpenBLAS is in use",
				Flags:  append([]cli.Flag{&cli.IntFlag{Name: "size", Value: 512, Usage: "m = n = k"}}, stepFlags(10, 1)...),
				Action: benchGemm,
			},
			benchServeCommand(),
			benchAllreduceCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("bench: unknown workload %q (want train, forward, gemm, serve or allreduce)", c.Args().First())
			}
			return usagef("bench: name a workload: train, forward, gemm, serve or allreduce (run 'sslzoo bench --help')")
		},
	}
}

func modelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "arch", Value: "resnet18-cifar", Usage: "architecture from the zoo registry (image models: resnet*, vit-*)"},
		&cli.IntFlag{Name: "batch", Value: 64, Usage: "images per step"},
		&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed for weights, inputs and labels"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write a pprof CPU profile of the run to this file (go tool pprof)"},
	}
}

func benchModel(mode string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
		cfg := bench.ModelConfig{Arch: c.String("arch"), Mode: mode, Batch: c.Int("batch"),
			Steps: c.Int("steps"), Warmup: c.Int("warmup"), Seed: c.Uint64("seed")}
		if cfg.Batch < 1 || cfg.Steps < 1 || cfg.Warmup < 0 {
			return usagef("bench %s: --batch and --steps must be positive and --warmup non-negative (got %d, %d, %d)", mode, cfg.Batch, cfg.Steps, cfg.Warmup)
		}
		if path := c.String("cpuprofile"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				return fmt.Errorf("bench %s: --cpuprofile: %w", mode, err)
			}
			defer f.Close()
			if old := tensor.BLASThreads(); old > 1 {
				defer tensor.SetBLASThreads(old)
				// The profiler's SIGPROF on OpenMP's worker threads corrupted
				// the C heap when oneDNN's sgemm ran on more than one thread
				// (ViT: "free(): invalid next size"); convolutions were not hit.
				tensor.SetBLASThreads(1)
				fmt.Fprintln(c.App.ErrWriter, "note: --cpuprofile runs each GEMM on one thread (OpenMP's workers and the profiler's signals do not mix); times differ from a run without it")
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return fmt.Errorf("bench %s: --cpuprofile: %w", mode, err)
			}
			defer pprof.StopCPUProfile()
		}
		r, err := bench.Model(cfg)
		if err != nil {
			return err
		}
		return report(c.App.Writer, r, c.Bool("json"))
	}
}

func benchGemm(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	size, steps, warmup := c.Int("size"), c.Int("steps"), c.Int("warmup")
	if size < 1 || steps < 1 || warmup < 0 {
		return usagef("bench gemm: --size and --steps must be positive and --warmup non-negative (got %d, %d, %d)", size, steps, warmup)
	}
	r, err := bench.Gemm(size, steps, warmup)
	if err != nil {
		return err
	}
	return report(c.App.Writer, r, c.Bool("json"))
}

func report(w io.Writer, r *bench.Result, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("bench: encode result: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(w, r.Summary())
	return err
}
