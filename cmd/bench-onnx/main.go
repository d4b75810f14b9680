//go:build cgo

// Command bench-onnx times one ONNX model's forward on three paths, for
// scripts/bench-onnx.sh (make bench-onnx):
//
//   - "sslzoo-ort": ONNX Runtime through sslzoo's onnxrt.Session (input
//     checks, tensor conversion, output pre-allocation);
//   - "direct-ort": the same model through github.com/yalue/onnxruntime_go
//     called directly, as a bare user of that package would (wrap the
//     input, auto-allocate the output, read it, free both);
//   - "go": sslzoo's pure-Go engine through the ONNX importer.
//
// The paths run interleaved, a block of batches each in turn, so that
// machine load hits all of them alike. Each block starts with one untimed
// batch: ONNX Runtime's pool threads and OpenMP's keep spinning for a
// while after a run, and without it that tail lands on the next path's
// first batch (at batch 1 it doubled the time of whichever path ran after
// ONNX Runtime). That is not enough at batch 1 (ORT's threads still slowed
// the next path), so scripts/bench-onnx.sh runs one path per process. For
// each path it prints one JSON line with the
// median and mean time per batch and images per second (from the median).
// --profile adds, on stderr, the Go engine's time per op type over the
// timed forwards.
//
//	bench-onnx --model F.onnx --batch 64 --steps 20 --warmup 3 --block 5 --threads 2 [--paths sslzoo-ort,direct-ort,go] [--profile]
//	bench-onnx --model det.onnx --shape 1,3,320,320 --paths direct-ort,go
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/sslzoo/sslzoo/onnxrt"
)

type result struct {
	Engine       string  `json:"engine"`
	Model        string  `json:"model"`
	Batch        int     `json:"batch"`
	Steps        int     `json:"steps"`
	Threads      int     `json:"threads"`
	MedianMS     float64 `json:"median_ms"`
	MeanMS       float64 `json:"mean_ms"`
	ImagesPerSec float64 `json:"images_per_sec"`
}

// path is one way of running the model: run does one forward.
type path struct {
	name   string
	run    func() error
	close  func()
	times  []time.Duration
	goSess *onnxrt.GoSession // the Go engine's session, for --profile
}

func main() {
	model := flag.String("model", "", "ONNX model file")
	batch := flag.Int("batch", 64, "batch size")
	steps := flag.Int("steps", 20, "timed forwards per path")
	warmup := flag.Int("warmup", 3, "untimed forwards per path first")
	block := flag.Int("block", 5, "timed forwards per path in each turn, after one untimed one")
	threads := flag.Int("threads", 2, "ONNX Runtime intra-op threads (the Go engine uses GOMAXPROCS)")
	paths := flag.String("paths", "sslzoo-ort,direct-ort,go", "comma-separated paths to time")
	profile := flag.Bool("profile", false, "print the Go engine's time per op type (stderr)")
	shapeFlag := flag.String("shape", "", "the input's whole shape, batch first (e.g. 1,3,48,320), for models with dynamic axes besides the batch; overrides --batch")
	flag.Parse()
	shape, err := parseShape(*shapeFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-onnx: --shape:", err)
		os.Exit(2)
	}
	if err := run(*model, *batch, shape, *steps, *warmup, *block, *threads, strings.Split(*paths, ","), *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench-onnx:", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

// parseShape reads --shape: comma-separated positive sizes, or nothing.
func parseShape(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var shape []int
	for _, f := range strings.Split(s, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || d < 1 {
			return nil, fmt.Errorf("%q: want comma-separated positive sizes, batch first, e.g. 1,3,48,320", s)
		}
		shape = append(shape, d)
	}
	return shape, nil
}

func run(model string, batch int, fixed []int, steps, warmup, block, threads int, names []string, profile bool) error {
	if fixed != nil {
		batch = fixed[0]
	}
	if model == "" || batch < 1 || steps < 1 || warmup < 0 || block < 1 || threads < 0 {
		return errors.New("need --model, and positive --batch, --steps, --block, --threads")
	}
	info, err := onnxrt.ReadModelInfoFile(model)
	if err != nil {
		return err
	}
	if len(info.Inputs) != 1 || info.Inputs[0].DType != onnxrt.Float32 || len(info.Outputs) == 0 {
		return fmt.Errorf("%s: want one float32 input (an image backbone), have %v", model, info.Inputs)
	}
	shape := slices.Clone(info.Inputs[0].Shape)
	shape[0] = batch
	if fixed != nil {
		if len(fixed) != len(shape) {
			return fmt.Errorf("%s: --shape %v for input %v of rank %d", model, fixed, info.Inputs[0], len(shape))
		}
		shape = fixed
	}
	for _, d := range shape {
		if d < 1 {
			return fmt.Errorf("%s: input %v has a dynamic axis besides the batch (give the whole shape with --shape)", model, info.Inputs[0])
		}
	}
	x := make([]float32, numel(shape))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	in := onnxrt.NewTensor(shape, x)
	opts := onnxrt.Options{IntraOpThreads: threads}
	var ps []*path
	defer func() {
		for _, p := range ps {
			p.close()
		}
	}()
	for _, n := range names {
		p, err := open(n, model, info, in, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		for range warmup {
			if err := p.run(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	if profile {
		for _, p := range ps {
			if p.goSess != nil {
				p.goSess.EnableProfile()
			}
		}
	}
	for done := 0; done < steps; done += block {
		for _, p := range ps {
			for i := range 1 + min(block, steps-done) {
				t0 := time.Now()
				if err := p.run(); err != nil {
					return fmt.Errorf("%s: %w", p.name, err)
				}
				if i > 0 {
					p.times = append(p.times, time.Since(t0))
				}
			}
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for _, p := range ps {
		slices.Sort(p.times)
		var sum time.Duration
		for _, t := range p.times {
			sum += t
		}
		med := p.times[len(p.times)/2]
		if len(p.times)%2 == 0 {
			med = (p.times[len(p.times)/2-1] + med) / 2
		}
		r := result{Engine: p.name, Model: model, Batch: batch, Steps: steps, Threads: threads,
			MedianMS: med.Seconds() * 1e3, MeanMS: sum.Seconds() * 1e3 / float64(len(p.times)),
			ImagesPerSec: float64(batch) / med.Seconds()}
		if err := enc.Encode(r); err != nil {
			return err
		}
		if profile && p.goSess != nil {
			printProfile(p.goSess.Profile(), steps+(steps+block-1)/block)
		}
	}
	return nil
}

// printProfile writes the per-op table, per forward (forwards counts the
// untimed first batch of each block too: profiling sees every run).
func printProfile(ops []onnxrt.OpTime, forwards int) {
	var total time.Duration
	for _, o := range ops {
		total += o.Total
	}
	fmt.Fprintf(os.Stderr, "%-22s %8s %10s %6s\n", "op", "calls", "ms/fwd", "share")
	for _, o := range ops {
		fmt.Fprintf(os.Stderr, "%-22s %8d %10.3f %5.1f%%\n", o.Op, o.Calls/forwards,
			o.Total.Seconds()*1e3/float64(forwards), 100*o.Total.Seconds()/total.Seconds())
	}
	fmt.Fprintf(os.Stderr, "%-22s %8s %10.3f\n", "total in ops", "", total.Seconds()*1e3/float64(forwards))
}

func numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func open(name, model string, info *onnxrt.ModelInfo, in *onnxrt.Tensor, opts onnxrt.Options) (*path, error) {
	switch name {
	case "sslzoo-ort":
		s, err := onnxrt.Open(model, opts)
		if err != nil {
			return nil, err
		}
		return &path{name: name, close: func() { s.Close() }, run: func() error {
			_, err := s.Run(in)
			return err
		}}, nil
	case "go":
		s, err := onnxrt.OpenGo(model)
		if err != nil {
			return nil, err
		}
		return &path{name: name, goSess: s, close: func() { s.Close() }, run: func() error {
			_, err := s.Run(in)
			return err
		}}, nil
	case "direct-ort":
		return openDirect(model, info, in, opts)
	}
	return nil, fmt.Errorf("unknown path (want sslzoo-ort, direct-ort or go)")
}

// openDirect drives onnxruntime_go itself. onnxrt.Init only loads the
// shared library and sets up ONNX Runtime's one global environment, which
// the session below shares.
func openDirect(model string, info *onnxrt.ModelInfo, in *onnxrt.Tensor, opts onnxrt.Options) (*path, error) {
	if err := onnxrt.Init(); err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, err
		}
	}
	var outNames []string
	for _, o := range info.Outputs {
		outNames = append(outNames, o.Name)
	}
	s, err := ort.NewDynamicAdvancedSession(model, []string{info.Inputs[0].Name}, outNames, so)
	if err != nil {
		return nil, err
	}
	data := in.Data.([]float32)
	shape := make(ort.Shape, len(in.Shape))
	for i, d := range in.Shape {
		shape[i] = int64(d)
	}
	return &path{name: "direct-ort", close: func() { s.Destroy() }, run: func() error {
		x, err := ort.NewTensor(shape, data)
		if err != nil {
			return err
		}
		defer x.Destroy()
		out := make([]ort.Value, len(outNames))
		if err := s.Run([]ort.Value{x}, out); err != nil {
			return err
		}
		for _, o := range out {
			if t, ok := o.(*ort.Tensor[float32]); ok {
				_ = t.GetData()
			}
			o.Destroy()
		}
		return nil
	}}, nil
}
