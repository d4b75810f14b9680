package conformance

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/onnxpb"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/zoo"
)

// TestOpConformance exports every engine op alone, checks each file with
// onnx.checker, and runs it in ONNX Runtime and on the Go engine (through
// the ONNX importer) on random inputs at batch 1 and 5 against the Go
// kernel: |engine - Go| <= 1e-4 + 1e-5*|Go| element-wise. Every op export
// maps must have a case.
func TestOpConformance(t *testing.T) {
	s, err := RunOps(false, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Cases {
		if !r.OK {
			t.Errorf("%s: error %q, go engine %q, onnxruntime %q", r.Name, r.Error, r.Go, r.ORT)
		}
	}
	if len(s.Uncovered) > 0 {
		t.Errorf("exportable ops without a conformance case: %v", s.Uncovered)
	}
	if s.Checker != "" && s.Checker != "ok" {
		t.Errorf("onnx.checker: %s", s.Checker)
	}
	for _, sk := range s.Skipped {
		t.Log("skipped ", sk)
	}
	if !s.OK {
		t.Error("suite not OK")
	}
	t.Logf("%d cases over %d exportable ops", len(s.Cases), len(export.ExportableOps()))
}

// TestModels runs the per-model suite over every registered backbone. The
// architectures too slow at full size for a unit test on two cores
// (ImageNet-stem ResNets, ViTs wider than vit-tiny, BERTs wider than
// bert-small) run reduced, with their depth, blocks and heads intact; `sslzoo
// conformance` runs them at full size.
func TestModels(t *testing.T) {
	for _, arch := range zoo.ArchNames() {
		t.Run(arch, func(t *testing.T) {
			r := RunModel(arch, Options{Reduced: true, Threads: 1, Seed: 3})
			if r.Error != "" {
				t.Fatal(r.Error)
			}
			if r.GoEngine == nil {
				t.Fatal("the Go engine did not run")
			}
			for name, c := range map[string]*Compare{"go engine": r.GoEngine, "onnxruntime": r.ORT, "ort vs go engine": r.ORTvsGoEngine, "onnxruntime-node": r.Node} {
				if c == nil {
					continue
				}
				if !c.OK {
					t.Errorf("%s: %s", name, c.Problem)
				}
				t.Logf("%-18s max |diff| %.3g (limit %.3g), min cosine %.9f", name, c.MaxAbsDiff, c.Limit, c.MinCosine)
			}
			if r.Checker != "" && r.Checker != "ok" {
				t.Errorf("onnx.checker: %s", r.Checker)
			}
			for _, s := range r.Skipped {
				t.Log("skipped ", s)
			}
			if !r.OK {
				t.Error("row not OK")
			}
			t.Logf("config %s, %d parameters, %.1fs", r.Config, r.Params, r.Seconds)
		})
	}
}

// TestCompareOutputs: the comparison catches each kind of mismatch.
func TestCompareOutputs(t *testing.T) {
	want := []*onnxrt.Tensor{onnxrt.NewTensor([]int{2, 3}, []float32{1, 2, 3, -4, 5, 6})}
	f := func(shape []int, v ...float32) []*onnxrt.Tensor {
		return []*onnxrt.Tensor{onnxrt.NewTensor(shape, v)}
	}
	nan := float32(math.NaN())
	cases := []struct {
		name string
		got  []*onnxrt.Tensor
		ok   bool
		want string
	}{
		{"equal", f([]int{2, 3}, 1, 2, 3, -4, 5, 6), true, ""},
		{"within", f([]int{2, 3}, 1, 2, 3, -4, 5, 6.0004), true, ""},
		{"too far", f([]int{2, 3}, 1, 2, 3, -4, 5, 6.001), false, "max |diff|"},
		{"nan", f([]int{2, 3}, 1, 2, 3, -4, nan, 6), false, "max |diff| NaN"},
		{"shape", f([]int{3, 2}, 1, 2, 3, -4, 5, 6), false, "shape"},
		{"count", nil, false, "0 outputs"},
		{"dtype", []*onnxrt.Tensor{onnxrt.NewTensor([]int{2, 3}, []int64{1, 2, 3, -4, 5, 6})}, false, "not float32"},
	}
	for _, c := range cases {
		r := CompareOutputs(c.got, want)
		if r.OK != c.ok || !strings.Contains(r.Problem, c.want) {
			t.Errorf("%s: ok %v problem %q, want ok %v and %q", c.name, r.OK, r.Problem, c.ok, c.want)
		}
	}
	// A large-scale output is judged relative to its scale, and a row
	// pointing elsewhere fails the cosine check even when its values are
	// within the absolute limit.
	big := []*onnxrt.Tensor{onnxrt.NewTensor([]int{1, 2}, []float32{1000, 0})}
	if r := CompareOutputs(f([]int{1, 2}, 1000.05, 0), big); !r.OK || r.Limit != 0.1 {
		t.Errorf("scaled limit: %+v", r)
	}
	small := []*onnxrt.Tensor{onnxrt.NewTensor([]int{1, 2}, []float32{1e-5, 0})}
	if r := CompareOutputs(f([]int{1, 2}, 0, 1e-5), small); r.OK || !strings.Contains(r.Problem, "cosine") {
		t.Errorf("orthogonal rows: %+v", r)
	}
}

// TestBatchNorms finds every BatchNorm of a ResNet-18 (stem, two per
// block, three downsamples) and calibration moves their statistics.
func TestBatchNorms(t *testing.T) {
	spec, _ := zoo.Arch("resnet18-cifar")
	spec.ResNet.Width = 0.125
	m, err := spec.Build(rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	bns := batchNorms(m)
	if len(bns) != 1+8*2+3 {
		t.Fatalf("found %d BatchNorms, want 20", len(bns))
	}
	b, err := NewBackbone("r", m, BackboneOptions{ImageSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := calibrate(b, rand.New(rand.NewPCG(2, 2))); err != nil {
		t.Fatal(err)
	}
	for i, bn := range bns {
		if bn.RunningVar.Data[0] == 1 || bn.RunningMean.Data[0] == 0 || bn.Momentum != 0.1 {
			t.Errorf("BatchNorm %d: mean %v var %v momentum %v after calibration", i, bn.RunningMean.Data[0], bn.RunningVar.Data[0], bn.Momentum)
		}
	}
}

// TestConfig: every architecture resolves; reduction applies only to the
// slow ones and keeps depth and heads.
func TestConfig(t *testing.T) {
	for _, arch := range zoo.ArchNames() {
		full, _, d1, err := Config(arch, false)
		red, _, d2, err2 := Config(arch, true)
		if err != nil || err2 != nil || d1 != "full" {
			t.Fatalf("%s: %v %v %q", arch, err, err2, d1)
		}
		slow := map[string]bool{"resnet18": true, "resnet34": true, "resnet50": true, "vit-small": true, "vit-base": true, "bert-base": true}
		if (d2 != "full") != slow[arch] {
			t.Errorf("%s: reduced config %q", arch, d2)
		}
		if full.ResNet.Depth != red.ResNet.Depth || full.ViT.Depth != red.ViT.Depth || full.ViT.Heads != red.ViT.Heads ||
			full.BERT.Layers != red.BERT.Layers || full.BERT.Heads != red.BERT.Heads {
			t.Errorf("%s: reduction changed the structure: %+v -> %+v", arch, full, red)
		}
	}
	if _, _, _, err := Config("resnet7", false); err == nil || !strings.Contains(err.Error(), "known") {
		t.Errorf("unknown arch: %v", err)
	}
}

// TestCheckONNXRejects: the checker's complaint reaches the result.
func TestCheckONNXRejects(t *testing.T) {
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("g"),
			Node: []*onnxpb.NodeProto{{OpType: proto.String("NoSuchOp"), Input: []string{"x"}, Output: []string{"y"}}},
		},
	}
	path := filepath.Join(t.TempDir(), "bad.onnx")
	if err := export.Save(m, path, export.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	msg, skip := CheckONNX(path)
	if skip != "" {
		t.Skip(skip)
	}
	if !strings.HasPrefix(msg, "rejected: ") || strings.Contains(msg, "\n") {
		t.Errorf("checker result %q", msg)
	}
}

// TestRunNodeErrors: onnxruntime-node's failures come back as one-line
// errors.
func TestRunNodeErrors(t *testing.T) {
	if reason := NodeUnavailable(); reason != "" {
		t.Skip(reason)
	}
	path := filepath.Join(t.TempDir(), "garbage.onnx")
	if err := os.WriteFile(path, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := RunNode(path, []*onnxrt.Tensor{onnxrt.NewTensor([]int{1}, []float32{1})})
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v", err)
	}
}
