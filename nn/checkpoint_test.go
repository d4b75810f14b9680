package nn

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// tinyRun is a small training run whose every step depends on the model,
// the optimizer state, the LR schedule and the RNG (the batch and the
// dropout masks are both drawn from it), so a resume that loses any of them
// diverges.
type tinyRun struct {
	src   *rand.PCG
	rng   *rand.Rand
	model *Sequential
	opt   Optimizer
	base  float64 // peak learning rate of the schedule
}

const tinySteps = 4

func newTinyRun(seed uint64, optimizer string) *tinyRun {
	src := rand.NewPCG(seed, 99)
	rng := rand.New(src)
	r := &tinyRun{src: src, rng: rng}
	r.model = NewSequential(
		NewLinear(5, 16, true, rng), NewBatchNorm(16), GELU{}, NewDropout(0.25, rng),
		NewLayerNorm(16, 1e-5), NewLinear(16, 3, true, rng),
	)
	ps := StateOf(r.model).Params
	// Warmup of 1 step makes step 0 a no-op (lr 0), so schedules start
	// at step 1 here and the first step still trains.
	switch optimizer {
	case "adamw":
		r.opt = NewAdamW(ps, AdamWConfig{LR: 0.01, WeightDecay: 0.05})
	case "sgd":
		r.opt = NewSGD(ps, SGDConfig{LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4})
	case "lars":
		r.opt = NewLARS(ps, LARSConfig{LR: 0.5, Momentum: 0.9, WeightDecay: 1e-4})
	}
	r.base = float64(r.opt.LR())
	return r
}

// step trains on one random batch and returns the loss.
func (r *tinyRun) step(k int) float32 {
	x := tensor.New(8, 5)
	Normal(x, 0, 1, r.rng)
	y := make([]int, 8)
	for i := range y {
		y[i] = r.rng.IntN(3)
	}
	r.opt.SetLR(float32(WarmupCosine(k+1, 1, tinySteps+1, r.base, r.base/10)))
	tp := autograd.NewTape()
	loss := tp.CrossEntropy(r.model.Forward(tp, autograd.Const(x)), y)
	r.opt.ZeroGrad()
	if err := tp.Backward(loss); err != nil {
		panic(err)
	}
	ClipGradNorm(StateOf(r.model).Params, 5)
	r.opt.Step()
	return loss.Value.Data[0]
}

func TestCheckpointResumeIsBitIdentical(t *testing.T) {
	for _, optName := range []string{"adamw", "sgd", "lars"} {
		t.Run(optName, func(t *testing.T) {
			full := newTinyRun(1, optName)
			var fullLoss []float32
			for k := range tinySteps {
				fullLoss = append(fullLoss, full.step(k))
			}

			first := newTinyRun(1, optName)
			for k := range 2 {
				if l := first.step(k); l != fullLoss[k] {
					t.Fatalf("runs with one seed differ before the checkpoint: %g vs %g", l, fullLoss[k])
				}
			}
			path := filepath.Join(t.TempDir(), "ckpt.safetensors")
			meta := map[string]string{"config": `{"arch":"tiny"}`}
			if err := SaveCheckpoint(path, first.model, first.opt, 2, first.src, meta); err != nil {
				t.Fatal(err)
			}

			// A different seed: nothing but the checkpoint can make it agree.
			resumed := newTinyRun(777, optName)
			step, gotMeta, err := LoadCheckpoint(path, resumed.model, resumed.opt, resumed.src)
			if err != nil {
				t.Fatal(err)
			}
			if step != 2 || gotMeta["config"] != meta["config"] || len(gotMeta) != 1 {
				t.Fatalf("step %d, meta %v", step, gotMeta)
			}
			for k := int(step); k < tinySteps; k++ {
				if l := resumed.step(k); math.Float32bits(l) != math.Float32bits(fullLoss[k]) {
					t.Errorf("step %d: resumed loss %g, uninterrupted %g", k, l, fullLoss[k])
				}
			}
			a, b := StateOf(full.model).Params, StateOf(resumed.model).Params
			for i := range a {
				if j := sameBitsF32(a[i].Var.Value.Data, b[i].Var.Value.Data); j >= 0 {
					t.Errorf("%s[%d]: %g after resume, %g uninterrupted", a[i].Name, j, b[i].Var.Value.Data[j], a[i].Var.Value.Data[j])
				}
			}
			bf, br := full.model.Layers[1].(*BatchNorm), resumed.model.Layers[1].(*BatchNorm)
			if sameBitsF32(bf.RunningMean.Data, br.RunningMean.Data) >= 0 || sameBitsF32(bf.RunningVar.Data, br.RunningVar.Data) >= 0 ||
				bf.NumBatchesTracked != br.NumBatchesTracked || br.NumBatchesTracked != tinySteps {
				t.Errorf("BatchNorm buffers differ after resume (count %d vs %d)", br.NumBatchesTracked, bf.NumBatchesTracked)
			}
			if full.rng.Uint64() != resumed.rng.Uint64() {
				t.Error("RNG streams differ after the run")
			}
		})
	}
}

func TestCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.safetensors")
	r := newTinyRun(1, "adamw")
	r.step(0)
	if err := SaveCheckpoint(path, r.model, r.opt, 1, r.src, map[string]string{"sslzoo.step": "9"}); err == nil {
		t.Error("reserved metadata key accepted")
	}
	if err := SaveCheckpoint(path, r.model, r.opt, 1, r.src, nil); err != nil {
		t.Fatal(err)
	}

	// Wrong optimizer type.
	other := newTinyRun(2, "sgd")
	if _, _, err := LoadCheckpoint(path, other.model, other.opt, nil); err == nil || !strings.Contains(err.Error(), "*nn.AdamW") {
		t.Errorf("optimizer type mismatch: %v", err)
	}
	// A different architecture fails before anything changes.
	rng := testRNG()
	wrong := NewSequential(NewLinear(5, 8, true, rng), NewBatchNorm(8), GELU{}, NewDropout(0.25, rng), NewLayerNorm(8, 1e-5), NewLinear(8, 3, true, rng))
	before := wrong.Layers[0].(*Linear).Weight.Value.Clone()
	_, _, err := LoadCheckpoint(path, wrong, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "0.weight") || !strings.Contains(err.Error(), path) {
		t.Errorf("architecture mismatch: %v", err)
	}
	if sameBitsF32(before.Data, wrong.Layers[0].(*Linear).Weight.Value.Data) >= 0 {
		t.Error("failed load changed the model")
	}
	// Plain weights are not a checkpoint.
	wpath := filepath.Join(dir, "w.safetensors")
	if err := SaveState(wpath, r.model, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadCheckpoint(wpath, r.model, nil, nil); err == nil || !strings.Contains(err.Error(), "not an sslzoo checkpoint") {
		t.Errorf("plain weights: %v", err)
	}
	// But a checkpoint loads as weights, its extra keys listed.
	fresh := newTinyRun(3, "adamw")
	if err := LoadStateFile(path, fresh.model, false); err != nil {
		t.Fatal(err)
	}
	if err := LoadStateFile(path, fresh.model, true); err == nil || !strings.Contains(err.Error(), "optim.lr") {
		t.Errorf("strict load of a checkpoint: %v", err)
	}
	// Model-only checkpoint: asking for optimizer or RNG state fails.
	mpath := filepath.Join(dir, "m.safetensors")
	if err := SaveCheckpoint(mpath, r.model, nil, 5, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadCheckpoint(mpath, fresh.model, fresh.opt, nil); err == nil || !strings.Contains(err.Error(), "no optimizer state") {
		t.Errorf("missing optimizer state: %v", err)
	}
	if _, _, err := LoadCheckpoint(mpath, fresh.model, nil, rand.NewPCG(0, 0)); err == nil || !strings.Contains(err.Error(), "no RNG state") {
		t.Errorf("missing RNG state: %v", err)
	}
	if step, _, err := LoadCheckpoint(mpath, fresh.model, nil, nil); err != nil || step != 5 {
		t.Errorf("model-only load: %d %v", step, err)
	}
}
