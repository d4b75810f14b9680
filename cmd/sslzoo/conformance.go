package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo/conformance"
)

func conformanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "conformance",
		Usage:     "export backbones and check ONNX Runtime, the Go engine and onnxruntime-node against the Go forward",
		UsageText: "sslzoo conformance [--json] [--reduced] [--ops] [MODEL...]",
		Description: "Each MODEL (default: every architecture) is exported with fixed random weights, checked with\n" +
			"onnx.checker, and run at each batch size in ONNX Runtime (from Go), in sslzoo's Go engine (through\n" +
			"the ONNX importer) and in onnxruntime-node, against the model's own Go forward. Besides the zoo's\n" +
			"architectures, mae-vit-tiny (an MAE encoder, mean-pooled) and hf-bert-tiny (a BERT read from a Hugging Face\n" +
			"folder, mean-pooled) check the masked-modelling exports. A row passes when\n" +
			"max |diff| <= 1e-4 * max(1, max |Go|) and every row's cosine similarity >= 0.99999. Engines that are\n" +
			"not installed are skipped with the reason. Exits non-zero on any mismatch.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
			&cli.BoolFlag{Name: "reduced", Usage: "shrink the big architectures (narrower, smaller inputs; depth kept), as the unit tests do"},
			&cli.BoolFlag{Name: "ops", Usage: "also run the per-op suite"},
			&cli.StringFlag{Name: "batches", Value: "1,7", Usage: "comma-separated batch sizes"},
			&cli.IntFlag{Name: "threads", Usage: "ONNX Runtime intra-op threads (0: its default)"},
			&cli.Float64Flag{Name: "tolerance", Value: conformance.Tolerance, Usage: "largest max |diff| allowed, relative to max(1, max |Go|)"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the weights and inputs"},
			&cli.StringFlag{Name: "keep", Usage: "keep the exported files in `DIR`"},
			&cli.BoolFlag{Name: "no-node", Usage: "skip onnxruntime-node"},
			&cli.BoolFlag{Name: "no-checker", Usage: "skip onnx.checker"},
		},
		Action: func(c *cli.Context) error {
			if !(c.Float64("tolerance") > 0) {
				return usagef("sslzoo conformance: --tolerance must be positive")
			}
			var batches []int
			for _, f := range strings.Split(c.String("batches"), ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || n < 1 {
					return usagef("sslzoo conformance: --batches %q: want positive integers such as 1,7", c.String("batches"))
				}
				batches = append(batches, n)
			}
			archs := c.Args().Slice()
			known := conformance.ModelNames()
			for _, a := range archs {
				if !slices.Contains(known, a) {
					return usagef("sslzoo conformance: unknown model %q (known: %s)", a, strings.Join(known, ", "))
				}
			}
			if len(archs) == 0 {
				archs = known
			}
			return runConformance(c.App.Writer, archs, c.Bool("ops"), c.Bool("json"), conformance.Options{
				Batches: batches, Reduced: c.Bool("reduced"), Seed: c.Uint64("seed"), Dir: c.String("keep"),
				Threads: c.Int("threads"), Tolerance: c.Float64("tolerance"), NoNode: c.Bool("no-node"), NoChecker: c.Bool("no-checker"),
			})
		},
	}
}

func runConformance(w io.Writer, archs []string, ops, asJSON bool, o conformance.Options) error {
	var report struct {
		Models []*conformance.ModelResult `json:"models"`
		Ops    *conformance.OpSuite       `json:"ops,omitempty"`
		OK     bool                       `json:"ok"`
	}
	report.OK = true
	var failed []string
	// Fixed widths rather than a tabwriter, so each row prints as soon as
	// its model is done.
	const row = "%-15s %-26s %-7s %-10s %-12s %-13s %-10s %-11s %-8s %7s  %s\n"
	table := !asJSON
	if table {
		fmt.Fprintf(w, row, "model", "config", "batches", "ort-vs-go", "engine-vs-go", "ort-vs-engine", "node-vs-go", "min-cosine", "checker", "seconds", "result")
	}
	skips := map[string]bool{}
	for _, a := range archs {
		r := conformance.RunModel(a, o)
		report.Models = append(report.Models, r)
		if !r.OK {
			report.OK = false
			failed = append(failed, a)
		}
		if !table {
			continue
		}
		result := "ok"
		switch {
		case r.Error != "":
			result = "error: " + r.Error
		case !r.OK:
			result = "MISMATCH: " + problem(r)
		}
		minCos := math.Inf(1)
		for _, c := range []*conformance.Compare{r.ORT, r.GoEngine, r.ORTvsGoEngine, r.Node} {
			if c != nil {
				minCos = min(minCos, c.MinCosine)
			}
		}
		cos := "-"
		if !math.IsInf(minCos, 1) {
			cos = fmt.Sprintf("%.8f", minCos)
		}
		checker := r.Checker
		if checker == "" {
			checker = "skipped"
		} else if checker != "ok" {
			checker = "REJECTED"
		}
		fmt.Fprintf(w, row, a, r.Config, joinInts(r.Batches), diff(r.ORT), diff(r.GoEngine), diff(r.ORTvsGoEngine),
			diff(r.Node), cos, checker, fmt.Sprintf("%.1f", r.Seconds), result)
		for _, s := range r.Skipped {
			skips[s] = true
		}
	}
	if ops {
		s, err := conformance.RunOps(o.NoORT, o.NoChecker)
		if err != nil {
			return fmt.Errorf("sslzoo conformance: %w", err)
		}
		report.Ops = s
		if !s.OK {
			report.OK = false
			failed = append(failed, "ops")
		}
		if table {
			bad := 0
			for _, c := range s.Cases {
				if !c.OK {
					bad++
					fmt.Fprintf(w, "op %s: MISMATCH: error %q, go engine %q, onnxruntime %q\n", c.Name, c.Error, c.Go, c.ORT)
				}
			}
			fmt.Fprintf(w, "ops: %d cases, %d failed, uncovered ops %v, checker %q\n", len(s.Cases), bad, s.Uncovered, s.Checker)
			for _, sk := range s.Skipped {
				skips[sk] = true
			}
		}
	}
	if table {
		var list []string
		for s := range skips {
			list = append(list, s)
		}
		slices.Sort(list)
		for _, s := range list {
			fmt.Fprintln(w, "skipped", s)
		}
	} else {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	}
	if !report.OK {
		return fmt.Errorf("sslzoo conformance: %d of %d failed: %s", len(failed), len(archs)+btoi(ops), strings.Join(failed, ", "))
	}
	return nil
}

func problem(r *conformance.ModelResult) string {
	for _, c := range []struct {
		name string
		c    *conformance.Compare
	}{{"onnxruntime", r.ORT}, {"go engine", r.GoEngine}, {"ort vs go engine", r.ORTvsGoEngine}, {"onnxruntime-node", r.Node}} {
		if c.c != nil && !c.c.OK {
			return c.name + ": " + c.c.Problem
		}
	}
	if r.Checker != "" && r.Checker != "ok" {
		return "onnx.checker " + r.Checker
	}
	return "failed"
}

func diff(c *conformance.Compare) string {
	if c == nil {
		return "skipped"
	}
	return fmt.Sprintf("%.3g", c.MaxAbsDiff)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
