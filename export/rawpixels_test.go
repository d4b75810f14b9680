package export

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/data/preprocess"
	"github.com/sslzoo/sslzoo/onnxrt"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// A raw-pixels graph fed uint8 NHWC pixels gives what the plain graph gives
// on the same pixels transposed, scaled and normalised in Go.
func TestRawPixels(t *testing.T) {
	const c, size = 3, 16
	m, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.125}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	randomizeState(m, 3)
	p := preprocess.Spec{Layout: "NCHW", Channels: preprocess.RGB, Size: [2]int{size, size}, Resize: "bilinear", Crop: "none",
		Scale: 1.0 / 255, Mean: []float64{0.49, 0.48, 0.45}, Std: []float64{0.25, 0.24, 0.26}}
	plain, err := ImageSpec("r18", m, c, size, size, Metadata{Preprocess: &p})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := RawPixels(plain, p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "raw.onnx")
	if err := Export(raw, path, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	checkONNX(t, path)

	const batch = 3
	rng := rand.New(rand.NewPCG(9, 9))
	pix := make([]uint8, batch*size*size*c)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	// The reference: normalise in Go, then the plain forward.
	x := tensor.New(batch, c, size, size)
	for n := range batch {
		for y := range size {
			for xx := range size {
				for ch := range c {
					v := float64(pix[((n*size+y)*size+xx)*c+ch])
					x.Data[((n*c+ch)*size+y)*size+xx] = float32((v*p.Scale - p.Mean[ch]) / p.Std[ch])
				}
			}
		}
	}
	want := goForward(t, plain.Forward, []*tensor.Tensor{x})[0]
	for _, e := range engines(t) {
		s, err := onnxrt.OpenEngine(path, e, onnxrt.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if in := s.Inputs()[0]; in.Name != RawPixelsInput || in.DType != onnxrt.Uint8 {
			t.Fatalf("%s: input %v, want uint8 %s", e, in, RawPixelsInput)
		}
		out, err := s.Run(onnxrt.NewTensor([]int{batch, size, size, c}, pix))
		s.Close()
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		got, _ := out[0].Float32s()
		var diff, scale float64
		for i := range got {
			diff = max(diff, math.Abs(float64(got[i]-want.Data[i])))
			scale = max(scale, math.Abs(float64(want.Data[i])))
		}
		if diff > 1e-4*max(1, scale) {
			t.Fatalf("%s: raw-pixels graph differs from normalise-then-forward by %.3g (scale %.3g)", e, diff, scale)
		}
		t.Logf("%s: max |diff| %.3g", e, diff)
	}

	// A preprocessing that does not fit the model is refused.
	bad := p
	bad.Size = [2]int{32, 32}
	if _, err := RawPixels(plain, bad); err == nil || !strings.Contains(err.Error(), "32x32") {
		t.Fatalf("mismatched size: %v", err)
	}
}
