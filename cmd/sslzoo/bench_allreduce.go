package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/dist"
)

func benchAllreduceCommand() *cli.Command {
	return &cli.Command{
		Name:  "allreduce",
		Usage: "time float32 allreduces between the ranks mpirun started (run it under mpirun; one process has nothing to time)",
		Description: `Prints one line per size: the time of one allreduce, the algorithm
bandwidth (bytes reduced per second) and the bus bandwidth (algorithm
bandwidth times 2(K-1)/K: what each rank's link carries), the figure
make bench-dist uses to estimate other machines.

Example:
   mpirun -np 2 bin/sslzoo bench allreduce --kib 64,1024,16384`,
		Flags: []cli.Flag{
			&cli.IntSliceFlag{Name: "kib", Value: cli.NewIntSlice(4, 64, 1024, 16384), Usage: "buffer sizes in KiB"},
			&cli.IntFlag{Name: "iters", Value: 20, Usage: "timed allreduces per size (after 2 untimed)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per size instead of a line"},
		},
		Action: benchAllreduce,
	}
}

func benchAllreduce(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	sizes, iters := c.IntSlice("kib"), c.Int("iters")
	if iters < 1 {
		return usagef("bench allreduce: --iters must be positive (got %d)", iters)
	}
	for _, kib := range sizes {
		if kib < 1 || kib > 1<<20 {
			return usagef("bench allreduce: --kib %d: sizes run from 1 KiB to 1 GiB", kib)
		}
	}
	world, err := dist.Init()
	if err != nil {
		return fmt.Errorf("bench allreduce: %w", err)
	}
	defer world.Finalize()
	if world.Size() < 2 {
		return fmt.Errorf("bench allreduce: one process (%s): start it under mpirun, e.g. mpirun -np 2 sslzoo bench allreduce", world.Backend())
	}
	out := c.App.Writer
	if world.Rank() > 0 {
		out = io.Discard
	}
	if !c.Bool("json") {
		fmt.Fprintf(out, "allreduce over %d ranks (%s)\n", world.Size(), world.Backend())
	}
	for _, kib := range sizes {
		r, err := dist.TimeAllreduce(world, kib*256, iters)
		if err != nil {
			return fmt.Errorf("bench allreduce: %d KiB: %w", kib, err)
		}
		if c.Bool("json") {
			b, _ := json.Marshal(map[string]any{"bytes": r.Bytes(), "ranks": r.Ranks, "iters": r.Iters, "seconds": r.Seconds,
				"algbw_bytes_per_s": r.AlgorithmBandwidth(), "busbw_bytes_per_s": r.BusBandwidth()})
			fmt.Fprintf(out, "%s\n", b)
			continue
		}
		fmt.Fprintf(out, "%8d KiB  %10.1f us  algbw %8.1f MB/s  busbw %8.1f MB/s\n", kib, r.Seconds*1e6,
			r.AlgorithmBandwidth()/1e6, r.BusBandwidth()/1e6)
	}
	return nil
}
