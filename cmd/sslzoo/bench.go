package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/internal/bench"
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
				Name:   "gemm",
				Usage:  "time a square float32 GEMM through tensor.Sgemm, and raw C sgemm when OpenBLAS is in use",
				Flags:  append([]cli.Flag{&cli.IntFlag{Name: "size", Value: 512, Usage: "m = n = k"}}, stepFlags(10, 1)...),
				Action: benchGemm,
			},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("bench: unknown workload %q (want train, forward or gemm)", c.Args().First())
			}
			return usagef("bench: name a workload: train, forward or gemm (run 'sslzoo bench --help')")
		},
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
