package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/serve/servebench"
)

func benchServeCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "load `sslzoo serve` on loopback (batching on and off, v2 json/binary and OpenAI) beside the model in-process",
		UsageText: "sslzoo bench serve [--model NAME|F.onnx] [--cell 5s] [--rounds 2] [--soak 60s] [--concurrency 1,8,32]\n" +
			"  example: sslzoo bench serve --model simclr-resnet18-fmnist --cell 3s --rounds 1 --soak 0s",
		Description: "Starts two servers (--max-batch 1 and --max-batch N) as their own processes and drives them with\n" +
			"closed-loop clients sending one image per request, interleaved with the same model run in-process at\n" +
			"batch 1 and batch N. Prints rows/s, p50, p99 and errors per measurement, then the serving targets:\n" +
			"batching gain captured, HTTP overhead against in-process, errors, exit codes, and RSS over the soak.\n" +
			"Exits 1 when a target is missed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: "simclr-resnet18-fmnist", Usage: "image model: zoo `NAME` or .onnx file"},
			&cli.DurationFlag{Name: "cell", Value: 5 * time.Second, Usage: "length of each measurement, per round"},
			&cli.IntFlag{Name: "rounds", Value: 2, Usage: "interleaved rounds; the measurements add up over them"},
			&cli.DurationFlag{Name: "soak", Value: 60 * time.Second, Usage: "the run over which the server's RSS growth is measured (0: none)"},
			&cli.IntSliceFlag{Name: "concurrency", Value: cli.NewIntSlice(1, 8, 32), Usage: "client counts (the last one sets the targets)"},
			&cli.IntFlag{Name: "max-batch", Value: 32, Usage: "the batching server's --max-batch, and the in-process batch"},
			&cli.DurationFlag{Name: "max-delay", Usage: "the batching server's --max-delay"},
			&cli.StringFlag{Name: "engine", Value: "auto", Usage: "ort, go or auto, for the servers and the in-process runs"},
			&cli.IntFlag{Name: "threads", Usage: "threads per engine run (0: the engine's default)"},
			&cli.IntFlag{Name: "instances", Value: 1, Usage: "concurrent engine runs, in the servers and in-process"},
		},
		Action: func(c *cli.Context) error {
			const name = "sslzoo bench serve"
			if c.NArg() > 0 {
				return usagef("%s: unexpected argument %q", name, c.Args().First())
			}
			conc := c.IntSlice("concurrency")
			for _, n := range conc {
				if n < 1 {
					return usagef("%s: --concurrency %d: want >= 1", name, n)
				}
			}
			if len(conc) == 0 || c.Int("rounds") < 1 || c.Duration("cell") <= 0 || c.Int("max-batch") < 2 || c.Duration("soak") < 0 {
				return usagef("%s: want --concurrency values, --rounds >= 1, a positive --cell, --max-batch >= 2 and --soak >= 0", name)
			}
			path, err := resolveModel(c.Context, c.String("model"), c.App.ErrWriter)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rep, err := servebench.Run(c.Context, servebench.Config{
				Model: path, Server: self, Engine: c.String("engine"), Threads: c.Int("threads"), Instances: c.Int("instances"),
				MaxBatch: c.Int("max-batch"), MaxDelay: c.Duration("max-delay"), Concurrency: conc,
				Cell: c.Duration("cell"), Rounds: c.Int("rounds"), Soak: c.Duration("soak"), Progress: c.App.ErrWriter,
			})
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := rep.Write(c.App.Writer); err != nil {
				return err
			}
			var missed []string
			for _, t := range rep.Targets() {
				if !t.OK {
					missed = append(missed, t.Name)
				}
			}
			if len(missed) > 0 {
				return fmt.Errorf("%s: targets missed: %s", name, strings.Join(missed, "; "))
			}
			return nil
		},
	}
}
