package export

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// nodeModules is where scripts/install-onnxruntime.sh --node puts the npm
// package.
func nodeModules() string {
	return filepath.Join(onnxrt.CacheDir(), "onnxruntime", onnxrt.ORTVersion, "node", "node_modules")
}

// runNode runs a model's first input through onnxruntime-node.
func runNode(t *testing.T, model string, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.f32"), filepath.Join(dir, "out.f32")
	raw := make([]byte, 4*len(x.Data))
	for i, v := range x.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	dims := make([]string, len(x.Shape))
	for i, d := range x.Shape {
		dims[i] = fmt.Sprint(d)
	}
	script, _ := filepath.Abs("../scripts/ort-node-run.js")
	cmd := exec.Command("node", script, model, in, strings.Join(dims, ","), out)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules())
	stdout, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("onnxruntime-node: %v: %s", err, msg)
	}
	var res struct {
		Name string `json:"name"`
		Dims []int  `json:"dims"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("onnxruntime-node printed %q: %v", stdout, err)
	}
	raw, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	y := tensor.New(res.Dims...)
	if len(raw) != 4*len(y.Data) {
		t.Fatalf("onnxruntime-node wrote %d bytes for dims %v", len(raw), res.Dims)
	}
	for i := range y.Data {
		y.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return y
}

// TestOnnxruntimeNode loads exports in onnxruntime-node (JavaScript) and
// compares its output with the Go forward: the export works for another
// stack, not only through our own ORT binding.
func TestOnnxruntimeNode(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join(nodeModules(), "onnxruntime-node", "package.json")); err != nil {
		t.Skipf("onnxruntime-node is not installed in %s; run scripts/install-onnxruntime.sh --node", nodeModules())
	}
	rn, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.25}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	randomizeState(rn, 3)
	calibrate(rn, rn.Forward, []int{8, 3, 16, 16})
	vit, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 16, PatchSize: 4, Dim: 32, Depth: 2, Heads: 4, MLPRatio: 2}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	randomizeState(vit, 4)
	type model interface {
		nn.Module
		Forward(*autograd.Tape, *autograd.Var) *autograd.Var
	}
	for _, c := range []struct {
		name string
		m    model
	}{{"resnet18-cifar", rn}, {"vit", vit}} {
		fwd := func(tp *autograd.Tape, in []*autograd.Var) []*autograd.Var {
			return []*autograd.Var{c.m.Forward(tp, in[0])}
		}
		spec := Spec{Name: c.name, Forward: fwd, Module: c.m, Outputs: []string{"embedding"},
			Inputs: []Input{{Name: "pixel_values", Shape: []int{1, 3, 16, 16}}}}
		path := filepath.Join(t.TempDir(), c.name+".onnx")
		if err := Export(spec, path, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		x := randTensor(rand.New(rand.NewPCG(7, 7)), 7, 3, 16, 16)
		got := runNode(t, path, x)
		want := goForward(t, fwd, []*tensor.Tensor{x})[0]
		if !slices.Equal(got.Shape, want.Shape) {
			t.Fatalf("%s: onnxruntime-node shape %v, Go %v", c.name, got.Shape, want.Shape)
		}
		var diff, scale float64
		for i := range got.Data {
			diff = max(diff, math.Abs(float64(got.Data[i]-want.Data[i])))
			scale = max(scale, math.Abs(float64(want.Data[i])))
		}
		if diff > 1e-4*max(1, scale) {
			t.Errorf("%s: onnxruntime-node differs from Go by %.3g (scale %.3g)", c.name, diff, scale)
		}
		t.Logf("%s at batch 7: max |onnxruntime-node - Go| %.3g", c.name, diff)
	}
}
