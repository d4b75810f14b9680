package conformance

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/export"
	"github.com/sslzoo/sslzoo/export/maegraph"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
	"github.com/sslzoo/sslzoo/zoo/ssl"
)

// TestMAEReconstruction: the exported reconstruction graph, fed the mask of
// some noise, gives MAE.Forward's predictions for that noise (the reference
// path with argsort and gathers) in the Go forward, the Go engine and ONNX
// Runtime.
func TestMAEReconstruction(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	vit, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 16, PatchSize: 4, InChannels: 2, Dim: 16, Depth: 2, Heads: 2}, rng)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ssl.DefaultMAEConfig(vit, 4, 1, 1)
	cfg.DecoderDim, cfg.DecoderDepth, cfg.DecoderHeads = 8, 1, 2
	m, err := ssl.NewMAE(cfg, vit, rng)
	if err != nil {
		t.Fatal(err)
	}
	perturbConstants(m, rng)
	spec, err := maegraph.Reconstruction("mae", m, export.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Metadata[maegraph.Key] == "" || spec.Metadata["sslzoo.method"] != "mae" {
		t.Errorf("metadata %v", spec.Metadata)
	}
	path := filepath.Join(t.TempDir(), "recon.onnx")
	if err := export.Export(spec, path, export.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if msg, skip := CheckONNX(path); skip == "" && msg != "ok" {
		t.Errorf("onnx.checker: %s", msg)
	}
	const n, l = 3, 16
	imgs := tensor.New(n, 2, 16, 16)
	for i := range imgs.Data {
		imgs.Data[i] = float32(rng.NormFloat64())
	}
	noise := make([]float32, n*l)
	for i := range noise {
		noise[i] = rng.Float32()
	}
	tp := autograd.NewTape()
	var ref ssl.MAEOutput
	tp.NoGrad(func() { ref, err = m.Forward(tp, imgs, noise) })
	if err != nil {
		t.Fatal(err)
	}
	want := []*onnxrt.Tensor{onnxrt.NewTensor(ref.Pred.Value.Shape, slices.Clone(ref.Pred.Value.Data))}
	in := []*onnxrt.Tensor{onnxrt.NewTensor(imgs.Shape, imgs.Data), onnxrt.NewTensor([]int{n, l}, ref.Masking.Mask)}
	got, err := goForward(spec.Forward, in)
	if err != nil {
		t.Fatal(err)
	}
	if c := CompareOutputs(got, want); !c.OK {
		t.Fatalf("go forward of the graph vs MAE.Forward: %s", c.Problem)
	}
	engines := map[string]onnxrt.Engine{}
	if e, err := onnxrt.OpenGo(path); err != nil {
		t.Fatal(err)
	} else {
		engines["go"] = e
	}
	if onnxrt.Available() == nil {
		e, err := onnxrt.Open(path, onnxrt.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		engines["ort"] = e
	}
	for name, e := range engines {
		out, err := e.Run(in...)
		e.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c := CompareOutputs(out, want); !c.OK {
			t.Errorf("%s vs MAE.Forward: %s", name, c.Problem)
		}
	}
	// Another mask gives other predictions (the mask input is used).
	other := slices.Clone(ref.Masking.Mask)
	slices.Reverse(other[:l])
	out, err := goForward(spec.Forward, []*onnxrt.Tensor{in[0], onnxrt.NewTensor([]int{n, l}, other)})
	if err != nil {
		t.Fatal(err)
	}
	if c := CompareOutputs(out, want); c.OK && !slices.Equal(other[:l], ref.Masking.Mask[:l]) {
		t.Error("the mask input does not change the reconstruction")
	}
}
