package conformance

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/internal/npy"
	"github.com/sslzoo/sslzoo/internal/oneline"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/zoo"
)

// Python is the interpreter with Debian's python3-onnx (the checker).
const Python = "/usr/bin/python3"

// Tolerances of the per-model check: the largest |engine - Go forward| over
// all outputs must stay within Tolerance*max(1, max|Go forward|) (float32
// rounding drifts with depth, so deep models are judged against their
// output scale), and every row's cosine similarity must reach MinCosine.
const (
	Tolerance = 1e-4
	MinCosine = 0.99999
)

// Options configure RunModel.
type Options struct {
	// Batches are the batch sizes run; nil means 1 and 7.
	Batches []int
	// Reduced shrinks the architectures whose full size makes a unit test
	// slow (see Config); the small ones always run at full size.
	Reduced bool
	// Seed fixes the weights and inputs.
	Seed uint64
	// Dir keeps the exported files; "" uses a temporary folder removed
	// afterwards.
	Dir string
	// Threads is ONNX Runtime's intra-op thread count (0: its default).
	Threads int
	// Tolerance replaces the package's Tolerance when positive.
	Tolerance float64
	// NoORT, NoNode and NoChecker leave out ONNX Runtime (from Go),
	// onnxruntime-node and onnx.checker; each is also skipped, with the
	// reason in the result, when it is not installed.
	NoORT, NoNode, NoChecker bool
}

func (o Options) batches() []int {
	if len(o.Batches) == 0 {
		return []int{1, 7}
	}
	return o.Batches
}

// Compare is one engine's agreement with a reference.
type Compare struct {
	MaxAbsDiff float64 `json:"max_abs_diff"`
	// Limit is the largest MaxAbsDiff that passes.
	Limit float64 `json:"limit"`
	// MinCosine is the smallest cosine similarity between matching rows
	// (axis 0) of an output.
	MinCosine float64 `json:"min_cosine"`
	OK        bool    `json:"ok"`
	// Problem says what failed ("" when OK).
	Problem string `json:"problem,omitempty"`
}

// ModelResult is one row of the per-model suite.
type ModelResult struct {
	Arch string `json:"arch"`
	// Config is "full", or which dimensions were reduced.
	Config  string   `json:"config"`
	Params  int      `json:"params"`
	Batches []int    `json:"batches"`
	Outputs []string `json:"outputs,omitempty"`
	// Engines against the model's own Go forward, and ORT against the Go
	// engine. Nil when skipped (see Skipped).
	ORT           *Compare `json:"ort_vs_go_forward,omitempty"`
	GoEngine      *Compare `json:"go_engine_vs_go_forward,omitempty"`
	ORTvsGoEngine *Compare `json:"ort_vs_go_engine,omitempty"`
	Node          *Compare `json:"ort_node_vs_go_forward,omitempty"`
	// Checker is "ok", or onnx.checker's complaint; "" when skipped.
	Checker string `json:"onnx_checker,omitempty"`
	// Skipped lists what did not run, and why.
	Skipped []string `json:"skipped,omitempty"`
	// Error is set when the model could not be built, exported or run.
	Error   string  `json:"error,omitempty"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"`
}

// Config returns the architecture as the suite runs it: the registry's
// configuration, or with reduced set and the full model too slow for a
// unit test on two cores, a smaller one of the same structure (same depth,
// block types and heads; narrower, and on smaller images). The description
// says what changed.
func Config(arch string, reduced bool) (spec zoo.Spec, imageSize int, desc string, err error) {
	spec, err = zoo.Arch(arch)
	if err != nil {
		return spec, 0, "", err
	}
	desc = "full"
	if !reduced {
		return spec, 0, desc, nil
	}
	switch {
	case spec.Family == "resnet" && spec.ResNet.Stem != "cifar":
		spec.ResNet.Width, imageSize = 0.25, 64
		desc = "width 0.25, 64x64 input"
	case spec.Family == "vit" && spec.ViT.Dim > 192:
		// 16 channels per head, as many heads as the full model.
		spec.ViT.Dim = 16 * spec.ViT.Heads
		spec.ViT.ImageSize = 64
		desc = fmt.Sprintf("dim %d, 64x64 input", spec.ViT.Dim)
	case spec.Family == "bert" && spec.BERT.Hidden > 512:
		spec.BERT.Hidden = 16 * spec.BERT.Heads
		spec.BERT.Intermediate = 4 * spec.BERT.Hidden
		desc = fmt.Sprintf("hidden %d", spec.BERT.Hidden)
	}
	return spec, imageSize, desc, nil
}

// testSeq is the sequence length text backbones are checked at.
const testSeq = 16

// Prepare builds arch (a zoo architecture or one of ExtraModels) for the
// suite: initialised with seed, every parameter
// that starts constant (biases, norm weights) perturbed so that no term of
// the graph is trivially 0 or 1, and BatchNorm running statistics set from
// one training-mode batch, as after training (eval outputs then stay O(1)).
func Prepare(arch string, reduced bool, seed uint64) (*Backbone, string, error) {
	if b, desc, ok, err := prepareExtra(arch, reduced, seed); ok {
		return b, desc, err
	}
	spec, size, desc, err := Config(arch, reduced)
	if err != nil {
		return nil, "", err
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	m, err := spec.Build(rng)
	if err != nil {
		return nil, "", fmt.Errorf("build %s: %w", arch, err)
	}
	perturbConstants(m, rng)
	b, err := NewBackbone(arch, m, BackboneOptions{ImageSize: size, Seq: testSeq})
	if err != nil {
		return nil, "", err
	}
	if err := calibrate(b, rng); err != nil {
		return nil, "", fmt.Errorf("calibrate %s: %w", arch, err)
	}
	return b, desc, nil
}

func perturbConstants(m nn.Module, rng *rand.Rand) {
	for _, p := range nn.StateOf(m).Params {
		d := p.Var.Value.Data
		if len(d) > 1 && slices.Min(d) == slices.Max(d) {
			for i := range d {
				d[i] += float32(rng.NormFloat64() * 0.1)
			}
		}
	}
}

// calibrate sets every BatchNorm's running statistics to those of one
// training-mode batch (momentum 1), then returns to eval mode.
func calibrate(b *Backbone, rng *rand.Rand) error {
	bns := batchNorms(b.Model)
	if len(bns) == 0 {
		return nil
	}
	saved := make([]float32, len(bns))
	for i, bn := range bns {
		saved[i], bn.Momentum = bn.Momentum, 1
	}
	defer func() {
		for i, bn := range bns {
			bn.Momentum = saved[i]
		}
		b.Model.SetTraining(false)
	}()
	b.Model.SetTraining(true)
	_, err := b.GoForward(b.RandomInputs(rng, 8))
	return err
}

// batchNorms finds the BatchNorm layers inside a model by walking its
// struct fields, so any backbone works without a hook of its own.
func batchNorms(m any) []*nn.BatchNorm {
	var out []*nn.BatchNorm
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			if bn, ok := v.Interface().(*nn.BatchNorm); ok {
				out = append(out, bn)
				return
			}
			walk(v.Elem())
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if f := v.Field(i); v.Type().Field(i).IsExported() {
					walk(f)
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(m))
	return out
}

// RunModel exports arch and runs it on every available engine at each
// batch size, against the model's own Go forward.
func RunModel(arch string, o Options) *ModelResult {
	start := time.Now()
	r := &ModelResult{Arch: arch, Batches: o.batches()}
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	fail := func(err error) *ModelResult {
		r.Error = oneLine(err)
		r.OK = false
		return r
	}
	b, desc, err := Prepare(arch, o.Reduced, o.Seed)
	if err != nil {
		return fail(err)
	}
	r.Config = desc
	for _, p := range nn.StateOf(b.Model).Params {
		r.Params += len(p.Var.Value.Data)
	}
	r.Outputs = b.Spec.Outputs
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sslzoo-conformance-"); err != nil {
			return fail(err)
		}
		defer os.RemoveAll(dir)
	}
	path := filepath.Join(dir, arch+".onnx")
	if err := export.Export(b.Spec, path, export.SaveOptions{}); err != nil {
		return fail(err)
	}

	if !o.NoChecker {
		if msg, skip := CheckONNX(path); skip != "" {
			r.Skipped = append(r.Skipped, "onnx.checker: "+skip)
		} else {
			r.Checker = msg
		}
	}

	engines := map[string]onnxrt.Engine{}
	defer func() {
		for _, e := range engines {
			e.Close()
		}
	}()
	goEngine, err := onnxrt.OpenGo(path)
	if err != nil {
		return fail(fmt.Errorf("go engine: %w", err))
	}
	engines["go"] = goEngine
	if o.NoORT {
		r.Skipped = append(r.Skipped, "onnxruntime: not requested")
	} else if err := onnxrt.Available(); err != nil {
		r.Skipped = append(r.Skipped, "onnxruntime: "+oneLine(err))
	} else if e, err := onnxrt.Open(path, onnxrt.Options{IntraOpThreads: o.Threads}); err != nil {
		return fail(fmt.Errorf("onnxruntime: %w", err))
	} else {
		engines["ort"] = e
	}
	node := ""
	if o.NoNode {
		r.Skipped = append(r.Skipped, "onnxruntime-node: not requested")
	} else if reason := NodeUnavailable(); reason != "" {
		r.Skipped = append(r.Skipped, "onnxruntime-node: "+reason)
	} else {
		node = path
	}

	acc := map[string]*Compare{}
	add := func(key string, c *Compare) {
		if prev := acc[key]; prev != nil {
			c = merge(prev, c)
		}
		acc[key] = c
	}
	tol := Tolerance
	if o.Tolerance > 0 {
		tol = o.Tolerance
	}
	rng := rand.New(rand.NewPCG(o.Seed, 2))
	for _, batch := range r.Batches {
		in := b.RandomInputs(rng, batch)
		want, err := b.GoForward(in)
		if err != nil {
			return fail(fmt.Errorf("go forward at batch %d: %w", batch, err))
		}
		got := map[string][]*onnxrt.Tensor{}
		for name, e := range engines {
			out, err := e.Run(in...)
			if err != nil {
				return fail(fmt.Errorf("%s at batch %d: %w", name, batch, err))
			}
			got[name] = out
			add(name, compareOutputs(out, want, tol))
		}
		if got["ort"] != nil {
			add("ort-go", compareOutputs(got["ort"], got["go"], tol))
		}
		if node != "" {
			out, err := RunNode(node, in)
			if err != nil {
				return fail(fmt.Errorf("onnxruntime-node at batch %d: %w", batch, err))
			}
			add("node", compareOutputs(out, want, tol))
		}
	}
	r.GoEngine, r.ORT, r.ORTvsGoEngine, r.Node = acc["go"], acc["ort"], acc["ort-go"], acc["node"]
	r.OK = r.Checker == "" || r.Checker == "ok"
	for _, c := range []*Compare{r.GoEngine, r.ORT, r.ORTvsGoEngine, r.Node} {
		if c != nil && !c.OK {
			r.OK = false
		}
	}
	return r
}

// merge keeps the worse of two comparisons.
func merge(a, b *Compare) *Compare {
	out := *a
	if b.MaxAbsDiff > out.MaxAbsDiff || math.IsNaN(b.MaxAbsDiff) {
		out.MaxAbsDiff, out.Limit = b.MaxAbsDiff, b.Limit
	}
	out.MinCosine = min(out.MinCosine, b.MinCosine)
	if !b.OK && out.OK {
		out.OK, out.Problem = false, b.Problem
	}
	return &out
}

// CompareOutputs compares an engine's outputs with the reference's: shapes
// equal, max |diff| within Tolerance*max(1, max|want|) per output, and the
// cosine similarity of every row at least MinCosine. The result reports the
// worst output.
func CompareOutputs(got, want []*onnxrt.Tensor) *Compare {
	return compareOutputs(got, want, Tolerance)
}

func compareOutputs(got, want []*onnxrt.Tensor, tol float64) *Compare {
	c := &Compare{OK: true, MinCosine: 1}
	bad := func(format string, a ...any) *Compare {
		c.OK = false
		if c.Problem == "" {
			c.Problem = fmt.Sprintf(format, a...)
		}
		return c
	}
	if len(got) != len(want) {
		return bad("%d outputs, want %d", len(got), len(want))
	}
	for o := range want {
		g, err1 := got[o].Float32s()
		w, err2 := want[o].Float32s()
		if err := errors.Join(err1, err2); err != nil {
			return bad("output %d: %v", o, err)
		}
		if !slices.Equal(got[o].Shape, want[o].Shape) {
			return bad("output %d: shape %v, want %v", o, got[o].Shape, want[o].Shape)
		}
		var diff, scale float64
		for i := range g {
			d := math.Abs(float64(g[i]) - float64(w[i]))
			if d > diff || math.IsNaN(d) {
				diff = d
			}
			scale = max(scale, math.Abs(float64(w[i])))
		}
		limit := tol * max(1, scale)
		if diff > c.MaxAbsDiff || math.IsNaN(diff) {
			c.MaxAbsDiff, c.Limit = diff, limit
		}
		if c.Limit == 0 {
			c.Limit = limit
		}
		if !(diff <= limit) {
			bad("output %d: max |diff| %.3g > %.3g", o, diff, limit)
		}
		rows := 1
		if len(want[o].Shape) > 0 {
			rows = want[o].Shape[0]
		}
		if rows == 0 {
			continue
		}
		per := len(w) / rows
		for r := range rows {
			var dot, ng, nw float64
			for i := r * per; i < (r+1)*per; i++ {
				a, b := float64(g[i]), float64(w[i])
				dot, ng, nw = dot+a*b, ng+a*a, nw+b*b
			}
			cos := 1.0
			if ng > 0 || nw > 0 {
				cos = dot / math.Sqrt(ng*nw)
			}
			c.MinCosine = min(c.MinCosine, cos)
			if !(cos >= MinCosine) {
				bad("output %d row %d: cosine %.7f < %g", o, r, cos, MinCosine)
			}
		}
	}
	return c
}

// CheckONNX runs onnx.checker.check_model(full_check=True) on a file. It
// returns "ok" or the checker's first line; skip is the reason when
// python3-onnx is not installed.
func CheckONNX(path string) (msg, skip string) {
	if exec.Command(Python, "-c", "import onnx").Run() != nil {
		return "", "python3-onnx is not installed (" + Python + " cannot import onnx)"
	}
	script := "import sys, onnx\nonnx.checker.check_model(sys.argv[1], full_check=True)\n"
	out, err := exec.Command(Python, "-c", script, path).CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return "rejected: " + lines[len(lines)-1], ""
	}
	return "ok", ""
}

//go:embed ortnode.js
var nodeScript []byte

// NodeModules is where scripts/install-onnxruntime.sh --node puts
// onnxruntime-node.
func NodeModules() string {
	return filepath.Join(onnxrt.CacheDir(), "onnxruntime", onnxrt.ORTVersion, "node", "node_modules")
}

// NodeUnavailable says why onnxruntime-node cannot run ("" when it can).
func NodeUnavailable() string {
	if _, err := exec.LookPath("node"); err != nil {
		return "node is not installed"
	}
	if _, err := os.Stat(filepath.Join(NodeModules(), "onnxruntime-node", "package.json")); err != nil {
		return "onnxruntime-node is not installed in " + NodeModules() + "; run scripts/install-onnxruntime.sh --node"
	}
	return ""
}

// RunNode runs a model through onnxruntime-node (JavaScript) on float32
// or int64 inputs, exchanging .npy files with the embedded ortnode.js.
func RunNode(model string, inputs []*onnxrt.Tensor) ([]*onnxrt.Tensor, error) {
	dir, err := os.MkdirTemp("", "sslzoo-node-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "ortnode.js")
	if err := os.WriteFile(script, nodeScript, 0o644); err != nil {
		return nil, err
	}
	args := []string{script, model, dir}
	for i, t := range inputs {
		a := &npy.Array{Shape: t.Shape, Data: t.Data}
		switch t.DType {
		case onnxrt.Float32:
			a.DType = npy.Float32
		case onnxrt.Int64:
			a.DType = npy.Int64
		default:
			return nil, fmt.Errorf("input %d: %v is not supported", i, t.DType)
		}
		p := filepath.Join(dir, fmt.Sprintf("in%d.npy", i))
		if err := npy.WriteFile(p, a); err != nil {
			return nil, err
		}
		args = append(args, p)
	}
	cmd := exec.Command("node", args...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+NodeModules())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var res struct {
		Outputs []struct {
			Name string `json:"name"`
			Dims []int  `json:"dims"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		return nil, fmt.Errorf("node printed %q: %v", stdout, err)
	}
	var out []*onnxrt.Tensor
	for i, o := range res.Outputs {
		a, err := npy.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.npy", i)))
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", o.Name, err)
		}
		if !slices.Equal(a.Shape, o.Dims) {
			return nil, fmt.Errorf("output %s: file shape %v, node reported %v", o.Name, a.Shape, o.Dims)
		}
		switch d := a.Data.(type) {
		case []float32:
			out = append(out, onnxrt.NewTensor(a.Shape, d))
		case []int64:
			out = append(out, onnxrt.NewTensor(a.Shape, d))
		default:
			return nil, fmt.Errorf("output %s: %s", o.Name, a.DType)
		}
	}
	return out, nil
}

// oneLine flattens an error message.
func oneLine(err error) string { return oneline.Flatten(err.Error()) }

// checkMany runs onnx.checker (full_check) over many files in one Python
// process: "ok", or the rejected files with the checker's first line.
func checkMany(paths []string) (msg, skip string) {
	if exec.Command(Python, "-c", "import onnx").Run() != nil {
		return "", "python3-onnx is not installed (" + Python + " cannot import onnx)"
	}
	if len(paths) == 0 {
		return "ok", ""
	}
	script := `import os, sys, onnx
bad = []
for p in sys.argv[1:]:
    try:
        onnx.checker.check_model(p, full_check=True)
    except Exception as e:
        bad.append(os.path.basename(p) + ": " + str(e).splitlines()[0])
print("; ".join(bad))
`
	out, err := exec.Command(Python, append([]string{"-c", script}, paths...)...).CombinedOutput()
	if err != nil {
		return "checker failed: " + strings.TrimSpace(string(out)), ""
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return "rejected: " + s, ""
	}
	return "ok", ""
}
