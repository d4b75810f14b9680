package ssl

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// testdata/mae_golden.safetensors comes from scripts/gen_mae_golden.py
// (PyTorch, after the MAE reference implementation).

func tinyMAE(t *testing.T, normPix bool) *MAE {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	vit, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 8, PatchSize: 2, InChannels: 3, Dim: 16, Depth: 2, Heads: 2}, rng)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultMAEConfig(vit, 2, 10, 10)
	cfg.DecoderDim, cfg.DecoderDepth, cfg.DecoderHeads, cfg.NormPixLoss = 8, 1, 2, normPix
	m, err := NewMAE(cfg, vit, rng)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// maeRefName maps a state name of MAE to the reference's name.
func maeRefName(name string) string { return strings.TrimPrefix(name, "backbone.") }

func loadMAEGolden(t *testing.T) *weights.File {
	t.Helper()
	f, err := weights.Read(filepath.Join("testdata", "mae_golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func goldenF32(t *testing.T, f *weights.File, name string) *tensor.Tensor {
	t.Helper()
	v, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func goldenInts(t *testing.T, f *weights.File, name string) []int {
	t.Helper()
	w, ok := f.Tensors[name]
	if !ok {
		t.Fatalf("golden has no %s", name)
	}
	v, err := w.Int64()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func maeClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, 0
	for i := range got {
		d := math.Abs(float64(got[i]-want[i])) / (1 + math.Abs(float64(want[i])))
		if !(d <= worst) {
			worst, at = d, i
		}
	}
	if !(worst <= tol) {
		t.Errorf("%s: element %d = %g, want %g (relative error %.3g > %.3g)", what, at, got[at], want[at], worst, tol)
	}
}

func TestMAEGoldenPatchifyAndMasking(t *testing.T) {
	f := loadMAEGolden(t)
	imgs := goldenF32(t, f, "in.imgs")
	p, err := Patchify(imgs, 2)
	if err != nil {
		t.Fatal(err)
	}
	maeClose(t, "patchify", p.Data, goldenF32(t, f, "out.patchify").Data, 0)
	patches := goldenF32(t, f, "in.patches")
	u, err := Unpatchify(patches, 2, 3, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	maeClose(t, "unpatchify", u.Data, goldenF32(t, f, "out.unpatchify").Data, 0)
	back, err := Patchify(u, 2)
	if err != nil {
		t.Fatal(err)
	}
	maeClose(t, "patchify(unpatchify)", back.Data, patches.Data, 0)

	mk, err := RandomMasking(goldenF32(t, f, "in.noise").Data, 2, 16, 0.75)
	if err != nil {
		t.Fatal(err)
	}
	if mk.Keep != 4 {
		t.Fatalf("keep %d, want 4", mk.Keep)
	}
	for name, got := range map[string][]int{"ids_keep": mk.IDsKeep, "ids_restore": mk.IDsRestore} {
		want := goldenInts(t, f, "out."+name)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s = %v, want %v", name, got, want)
			}
		}
	}
	maeClose(t, "mask", mk.Mask, goldenF32(t, f, "out.mask").Data, 0)
	maeClose(t, "sincos", SinCosPosEmbed(16, 4, true), goldenF32(t, f, "out.sincos").Data, 1e-6)
}

func TestMAEGoldenLossAndGradients(t *testing.T) {
	f := loadMAEGolden(t)
	imgs := goldenF32(t, f, "in.imgs")
	noise := goldenF32(t, f, "in.noise").Data
	for _, normPix := range []bool{false, true} {
		m := tinyMAE(t, normPix)
		s := nn.StateOf(m)
		ts := map[string]*weights.Tensor{}
		for _, p := range s.Params {
			w, ok := f.Tensors["param."+maeRefName(p.Name)]
			if !ok {
				t.Fatalf("golden has no parameter %s", maeRefName(p.Name))
			}
			ts[p.Name] = w
		}
		if err := nn.LoadState(m, ts, false); err != nil {
			t.Fatal(err)
		}
		tp := autograd.NewTape()
		for _, p := range s.Params {
			p.Var.ZeroGrad()
		}
		out, err := m.Forward(tp, imgs, noise)
		if err != nil {
			t.Fatal(err)
		}
		if !normPix {
			maeClose(t, "loss", out.Loss.Value.Data, goldenF32(t, f, "out.loss").Data, 1e-5)
			maeClose(t, "pred", out.Pred.Value.Data, goldenF32(t, f, "out.pred").Data, 1e-5)
			tp.Reset()
			continue
		}
		maeClose(t, "loss (norm_pix)", out.Loss.Value.Data, goldenF32(t, f, "out.loss_normpix").Data, 1e-5)
		if err := tp.Backward(out.Loss); err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, p := range s.Params {
			want, ok := f.Tensors["grad."+maeRefName(p.Name)]
			if !ok {
				if p.Var.RequiresGrad() {
					t.Errorf("%s is trainable here but not in the reference", p.Name)
				}
				continue
			}
			if p.Var.Grad == nil {
				t.Errorf("%s: no gradient", p.Name)
				continue
			}
			w, _ := want.Float32()
			maeClose(t, "grad "+p.Name, p.Var.Grad.Data, w.Data, 1e-4)
			checked++
		}
		if checked < 30 {
			t.Errorf("checked %d gradients", checked)
		}
		tp.Reset()
	}
}

func TestMAEStateNames(t *testing.T) {
	m := tinyMAE(t, true)
	names := map[string]bool{}
	for _, p := range nn.StateOf(m).Params {
		names[p.Name] = true
	}
	for _, want := range []string{"backbone.cls_token", "backbone.pos_embed", "backbone.patch_embed.proj.weight",
		"backbone.blocks.1.attn.qkv.weight", "backbone.norm.weight", "mask_token", "decoder_embed.weight",
		"decoder_pos_embed", "decoder_blocks.0.mlp.fc2.bias", "decoder_norm.bias", "decoder_pred.weight"} {
		if !names[want] {
			t.Errorf("state lacks %s", want)
		}
	}
	if m.Encoder.PosEmbed.RequiresGrad() || m.Decoder.PosEmbed.RequiresGrad() {
		t.Error("position tables are trainable; the reference keeps them fixed")
	}
	maeClose(t, "decoder pos embed", m.Decoder.PosEmbed.Value.Data, SinCosPosEmbed(8, 4, true), 0)
}

func TestMAEStepLearnsAndResumes(t *testing.T) {
	m := tinyMAE(t, true)
	m.Config.Optim.LR, m.Config.Optim.WarmupSteps, m.Config.Optim.TotalSteps = 3e-3, 0, 0
	rng := rand.New(rand.NewPCG(3, 4))
	batch := tensor.New(4, 3, 8, 8)
	for i := range batch.Data {
		// Smooth images, so that hidden patches are predictable from
		// visible ones.
		b, y, x := i/(3*64), (i/8)%8, i%8
		batch.Data[i] = float32(math.Sin(float64(x+b)/3) + math.Cos(float64(y)/4) + 0.01*rng.NormFloat64())
	}
	tp := autograd.NewTape()
	var first, last float32
	for step := range 40 {
		l, err := m.Step(tp, []*tensor.Tensor{batch})
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = l
		}
		last = l
	}
	if !(last < 0.7*first) {
		t.Errorf("loss %g -> %g after 40 steps: not learning", first, last)
	}
	if m.Steps() != 40 {
		t.Errorf("steps %d", m.Steps())
	}
	// Weight decay groups: biases and norms have none.
	g := m.opt.(*AdamWGroups)
	if g.Decays("decoder_norm.weight") || g.Decays("backbone.blocks.0.attn.qkv.bias") || !g.Decays("mask_token") || !g.Decays("decoder_pred.weight") {
		t.Errorf("decay group %v", g.names[0])
	}
	// Checkpoint round trip of the two optimizer groups.
	path := filepath.Join(t.TempDir(), "mae.safetensors")
	if err := nn.SaveCheckpoint(path, m, m.opt, m.Steps(), nil, nil); err != nil {
		t.Fatal(err)
	}
	m2 := tinyMAE(t, true)
	if _, _, err := nn.LoadCheckpoint(path, m2, m2.opt, nil); err != nil {
		t.Fatal(err)
	}
	for _, mm := range []*MAE{m, m2} {
		mm.Config.Optim = m.Config.Optim
	}
	// The masks depend on the step, so the resumed model draws the ones
	// the original draws next.
	l1, err := m.Step(tp, []*tensor.Tensor{batch})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := m2.Step(tp, []*tensor.Tensor{batch})
	if err != nil {
		t.Fatal(err)
	}
	if l1 != l2 || m2.Steps() != m.Steps() {
		t.Errorf("resumed step: loss %g vs %g, steps %d vs %d", l2, l1, m2.Steps(), m.Steps())
	}
	a, b := nn.StateOf(m).Params, nn.StateOf(m2).Params
	for i := range a {
		maeClose(t, "resumed "+a[i].Name, b[i].Var.Value.Data, a[i].Var.Value.Data, 0)
	}
}

func TestMAEBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	if _, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 28, PatchSize: 5, InChannels: 1, Dim: 16, Depth: 1, Heads: 2}, rng); err == nil ||
		!strings.Contains(err.Error(), "multiple of patch size") {
		t.Errorf("28x28 images with 5x5 patches: %v", err)
	}
	if _, err := Patchify(tensor.New(1, 3, 9, 8), 2); err == nil || !strings.Contains(err.Error(), "multiples of the patch size") {
		t.Errorf("patchify 9x8 with patch 2: %v", err)
	}
	m := tinyMAE(t, false)
	tp := autograd.NewTape()
	if _, err := m.Forward(tp, tensor.New(2, 3, 10, 10), nil); err == nil || !strings.Contains(err.Error(), "image batch shape") {
		t.Errorf("10x10 images into an 8x8 MAE: %v", err)
	}
	if _, err := m.Step(tp, []*tensor.Tensor{tensor.New(2, 1, 8, 8)}); err == nil {
		t.Error("1-channel images into a 3-channel MAE: no error")
	}
	nanBatch := tensor.New(2, 3, 8, 8)
	nanBatch.Data[5] = float32(math.NaN())
	if _, err := m.Step(tp, []*tensor.Tensor{nanBatch}); err == nil {
		t.Error("NaN pixel: no error")
	}
	if _, err := RandomMasking(make([]float32, 4), 1, 4, 1); err == nil {
		t.Error("mask ratio 1: no error")
	}
	mean := zoo.ViTConfig{ImageSize: 8, PatchSize: 2, InChannels: 3, Dim: 16, Depth: 1, Heads: 2, Pool: "mean"}
	vit, err := zoo.NewViT(mean, rng)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMAE(DefaultMAEConfig(vit, 2, 1, 1), vit, rng); err == nil {
		t.Error("mean-pool ViT: no error")
	}
}

func TestMAEReconstruct(t *testing.T) {
	m := tinyMAE(t, true)
	imgs := tensor.New(2, 3, 8, 8)
	for i := range imgs.Data {
		imgs.Data[i] = float32(i%7) / 7
	}
	rec, mk, err := m.Reconstruct(imgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(rec.Shape, imgs.Shape) || len(mk.Mask) != 32 {
		t.Fatalf("reconstruction %v, mask %d", rec.Shape, len(mk.Mask))
	}
	hidden := 0
	for _, v := range mk.Mask {
		hidden += int(v)
	}
	if hidden != 2*12 {
		t.Errorf("%d hidden patches, want 24", hidden)
	}
}
