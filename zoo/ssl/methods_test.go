package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/zoo"
)

// The method tests train on one fixed batch of random 16x16 images with a
// ResNet-18 (CIFAR stem) at 1/16 width: overfitting a batch is the smoke
// test that forward, loss, backward, optimizer and target updates fit
// together.

const testBatch = 8

func tinyResNet(t *testing.T, seed uint64) *zoo.ResNet {
	t.Helper()
	r, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Stem: "cifar", Width: 0.0625, InChannels: 3}, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// randomViews draws n random images and returns count views of them. An
// image is a random colour per channel plus pixel noise (pooled features of
// pure noise barely differ between images); a view adds its own noise at a
// third of the pixel noise's scale, so the views of one image share content
// as augmented crops do.
func randomViews(seed uint64, count, n, size int) []*tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 2))
	hw := size * size
	base := make([]float32, n*3*hw)
	for c := range n * 3 {
		colour := float32(rng.NormFloat64())
		for j := range hw {
			base[c*hw+j] = colour + float32(rng.NormFloat64())/2
		}
	}
	views := make([]*tensor.Tensor, count)
	for i := range views {
		v := tensor.New(n, 3, size, size)
		for j := range v.Data {
			v.Data[j] = base[j] + float32(rng.NormFloat64())/6
		}
		views[i] = v
	}
	return views
}

// testOptim is a constant-rate schedule for the smoke tests.
func testOptim(name string, lr float64) OptimConfig {
	return OptimConfig{Name: name, LR: lr, Momentum: 0.9}
}

// trainFixed runs steps iterations on the same views and returns the
// losses.
func trainFixed(t *testing.T, m Method, views []*tensor.Tensor, steps int) []float32 {
	t.Helper()
	tp := autograd.NewTape()
	losses := make([]float32, steps)
	for i := range steps {
		l, err := m.Step(tp, views)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		losses[i] = l
	}
	if got := m.Steps(); got != int64(steps) {
		t.Errorf("Steps() = %d after %d steps", got, steps)
	}
	return losses
}

// requireDecrease checks that the mean of the last three losses is below
// the first loss by at least frac of it.
func requireDecrease(t *testing.T, losses []float32, frac float64) {
	t.Helper()
	n := len(losses)
	t.Logf("losses %v", losses)
	last := float64(losses[n-1]+losses[n-2]+losses[n-3]) / 3
	first := float64(losses[0])
	if !(last < first*(1-frac)) {
		t.Errorf("loss did not decrease by %.0f%%: %v", frac*100, losses)
	}
}

func paramByName(t *testing.T, m nn.Module, name string) *autograd.Var {
	t.Helper()
	for _, p := range nn.StateOf(m).Params {
		if p.Name == name {
			return p.Var
		}
	}
	t.Fatalf("no parameter %q", name)
	return nil
}

func TestSimCLROverfitsBatch(t *testing.T) {
	cfg := DefaultSimCLRConfig(testBatch, 10, 100)
	cfg.HiddenDim, cfg.OutDim = 32, 16
	cfg.Optim = testOptim("lars", 2)
	m, err := NewSimCLR(cfg, tinyResNet(t, 1), rand.New(rand.NewPCG(1, 3)))
	if err != nil {
		t.Fatal(err)
	}
	losses := trainFixed(t, m, randomViews(1, 2, testBatch, 16), 12)
	requireDecrease(t, losses, 0.1)
}

func TestDefaultConfigs(t *testing.T) {
	c := DefaultSimCLRConfig(512, 100, 200)
	if c.Optim.LR != 0.6 || c.Optim.WarmupSteps != 1000 || c.Optim.TotalSteps != 20000 || c.Temperature != 0.5 {
		t.Errorf("simclr default %+v", c)
	}
	// A short run warms up for a tenth of its length.
	if c := DefaultSimCLRConfig(256, 10, 20); c.Optim.WarmupSteps != 20 {
		t.Errorf("short-run warmup %d steps, want 20", c.Optim.WarmupSteps)
	}
	if c := DefaultSwAVConfig(256, 10, 100); !c.Optim.AdaptAll || c.Optim.LR != 0.3 || c.Optim.FinalLR != 0.0003 {
		t.Errorf("swav default optimizer %+v", c.Optim)
	}
	// AdaptAll: a bias with no gradient still decays; by default it is
	// excluded and stays.
	for _, all := range []bool{false, true} {
		b := autograd.NewParam("head.bias", tensor.FromSlice([]float32{1, 2}, 2))
		b.Grad = tensor.New(2)
		opt, err := OptimConfig{Name: "lars", LR: 1, WeightDecay: 0.5, AdaptAll: all}.build([]nn.Param{{Name: "head.bias", Var: b}})
		if err != nil {
			t.Fatal(err)
		}
		opt.Step()
		if moved := b.Value.Data[0] != 1; moved != all {
			t.Errorf("AdaptAll %v: bias moved %v", all, moved)
		}
	}
	if _, err := (OptimConfig{Name: "rmsprop"}).build(nil); err == nil {
		t.Error("unknown optimizer: no error")
	}
	o := OptimConfig{LR: 1, FinalLR: 0, WarmupSteps: 10, TotalSteps: 110}
	for _, tc := range []struct {
		step int64
		want float64
	}{{0, 0}, {5, 0.5}, {10, 1}, {60, 0.5}, {110, 0}, {500, 0}} {
		if got := o.LRAt(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LRAt(%d) = %g, want %g", tc.step, got, tc.want)
		}
	}
}

func TestStepRejectsBadViews(t *testing.T) {
	cfg := DefaultSimCLRConfig(testBatch, 10, 100)
	cfg.HiddenDim, cfg.OutDim = 8, 8
	m, err := NewSimCLR(cfg, tinyResNet(t, 2), rand.New(rand.NewPCG(2, 3)))
	if err != nil {
		t.Fatal(err)
	}
	tp := autograd.NewTape()
	good := randomViews(2, 2, 4, 16)
	for name, views := range map[string][]*tensor.Tensor{
		"one view":       good[:1],
		"batch mismatch": {good[0], randomViews(3, 1, 3, 16)[0]},
		"not NCHW":       {good[0], tensor.New(4, 3, 16)},
		"channels":       {good[0], tensor.New(4, 1, 16, 16)},
	} {
		if _, err := m.Step(tp, views); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	nan := randomViews(4, 2, 4, 16)
	nan[0].Data[0] = float32(math.NaN())
	before := append([]float32(nil), m.Encoder.(*zoo.ResNet).Conv1.Weight.Value.Data...)
	if _, err := m.Step(tp, nan); err == nil {
		t.Error("NaN input: no error")
	} else if !strings.Contains(err.Error(), "view 0 element 0") {
		t.Errorf("NaN input error %q does not name the element", err)
	}
	for i, v := range m.Encoder.(*zoo.ResNet).Conv1.Weight.Value.Data {
		if v != before[i] {
			t.Fatal("weights changed on a NaN loss")
		}
	}
	if m.Steps() != 0 {
		t.Errorf("failed steps counted: %d", m.Steps())
	}
}

func snapshot(m nn.Module) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range nn.StateOf(m).Params {
		out[p.Name] = append([]float32(nil), p.Var.Value.Data...)
	}
	return out
}

// checkEMA verifies target = mom*before + (1-mom)*online for every
// parameter of the online module against its target counterpart.
func checkEMA(t *testing.T, targetBefore, online map[string][]float32, target nn.Module, rename func(string) string, mom float64) {
	t.Helper()
	checked := 0
	for _, p := range nn.StateOf(target).Params {
		src := rename(p.Name)
		o, ok := online[src]
		if !ok {
			t.Fatalf("target param %s has no online counterpart %s", p.Name, src)
		}
		tb := targetBefore[p.Name]
		for i, v := range p.Var.Value.Data {
			want := mom*float64(tb[i]) + (1-mom)*float64(o[i])
			if math.Abs(float64(v)-want) > 1e-6+1e-5*math.Abs(want) {
				t.Fatalf("%s[%d] = %g, want %g (momentum %g)", p.Name, i, v, want, mom)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no target parameters")
	}
}

func newTestMoCoV2(t *testing.T, queue int) *MoCoV2 {
	cfg := DefaultMoCoV2Config(testBatch, 10, 100)
	cfg.HiddenDim, cfg.OutDim, cfg.QueueSize = 32, 16, queue
	cfg.Optim = testOptim("sgd", 0.3)
	m, err := NewMoCoV2(cfg, tinyResNet(t, 3), rand.New(rand.NewPCG(3, 3)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// With a fixed batch the queue would fill with keys of the very images it
// is meant to contrast against, so MoCo v2 overfits a small set instead:
// four batches in turn, with a queue of three batches, so the negatives are
// always the other images. The loss of the last round must fall below the
// first round's.
func TestMoCoV2OverfitsSmallSet(t *testing.T) {
	m := newTestMoCoV2(t, 3*testBatch)
	// The recipe's 0.999 barely moves the key encoder in 20 steps.
	m.Config.Momentum = 0.99
	var batches [][]*tensor.Tensor
	for i := range 4 {
		batches = append(batches, randomViews(uint64(10+i), 2, testBatch, 16))
	}
	tp := autograd.NewTape()
	rounds := 5
	perRound := make([]float64, rounds)
	for r := range rounds {
		for _, b := range batches {
			l, err := m.Step(tp, b)
			if err != nil {
				t.Fatal(err)
			}
			perRound[r] += float64(l) / float64(len(batches))
		}
	}
	t.Logf("mean loss per round %v", perRound)
	// The first round's queue still holds random keys, which are easy
	// negatives; compare from the second round on.
	if !(perRound[rounds-1] < perRound[1]*0.9) {
		t.Errorf("loss did not fall by 10%%: %v", perRound)
	}
}

func TestMoCoV2QueueAndMomentum(t *testing.T) {
	// Queue of 12 keys with batches of 8: the second step wraps around.
	m := newTestMoCoV2(t, 12)
	if len(nn.StateOf(m).Params) == 0 {
		t.Fatal("no params")
	}
	views := randomViews(4, 2, testBatch, 16)
	tp := autograd.NewTape()
	for step := range 2 {
		before := append([]float32(nil), m.Queue.Data...)
		ptr := int(m.QueuePtr)
		targetBefore := snapshot(group{{"target_backbone", m.TargetEncoder, false}, {"target_projector", m.TargetProjector, false}})
		online := snapshot(group{{"backbone", m.Encoder, true}, {"projector", m.Projector, true}})
		if _, err := m.Step(tp, views); err != nil {
			t.Fatal(err)
		}
		// The key encoder moved once, at the start of the step, from the
		// online weights as they were then.
		checkEMA(t, targetBefore, online, group{{"target_backbone", m.TargetEncoder, false}, {"target_projector", m.TargetProjector, false}},
			func(s string) string { return s[len("target_"):] }, 0.999)
		// Recompute the keys with the key encoder as it stands (train-mode
		// BatchNorm uses batch statistics, so the forward is repeatable).
		tp2 := autograd.NewTape()
		var keys *tensor.Tensor
		tp2.NoGrad(func() {
			k := m.TargetProjector.Forward(tp2, m.TargetEncoder.Features(tp2, autograd.Const(views[1])))
			keys = tp2.L2Normalize(k, 1, normEps).Value
		})
		d, kq := m.Config.OutDim, m.Config.QueueSize
		written := map[int]int{}
		for i := range testBatch {
			written[(ptr+i)%kq] = i
		}
		for col := range kq {
			for r := range d {
				got := m.Queue.Data[r*kq+col]
				if i, ok := written[col]; ok {
					// Later keys of the batch overwrite earlier ones in the
					// same column when the batch exceeds the queue.
					last := i
					for j := i + kq; j < testBatch; j += kq {
						last = j
					}
					if want := keys.Data[last*d+r]; math.Abs(float64(got-want)) > 1e-5 {
						t.Fatalf("step %d: queue[%d, %d] = %g, want key %d's %g", step, r, col, got, last, want)
					}
				} else if got != before[r*kq+col] {
					t.Fatalf("step %d: queue column %d changed but was not due", step, col)
				}
			}
		}
		if want := int64((ptr + testBatch) % kq); m.QueuePtr != want {
			t.Fatalf("step %d: queue_ptr %d, want %d", step, m.QueuePtr, want)
		}
	}
	// queue and queue_ptr are part of the saved state.
	names := map[string]bool{}
	for _, b := range nn.StateOf(m).Buffers {
		names[b.Name] = true
	}
	for _, n := range []string{"queue", "queue_ptr", "steps", "target_backbone.bn1.running_mean"} {
		if !names[n] {
			t.Errorf("state has no buffer %q", n)
		}
	}
}

func onlineTarget(enc, tenc Encoder, proj, tproj Head) (group, group) {
	return group{{"backbone", enc, true}, {"projector", proj, true}},
		group{{"target_backbone", tenc, false}, {"target_projector", tproj, false}}
}

func stripTarget(s string) string { return s[len("target_"):] }

func TestBYOLOverfitsBatchAndMovesTarget(t *testing.T) {
	cfg := DefaultBYOLConfig(testBatch, 10, 100)
	cfg.ProjHidden, cfg.ProjDim, cfg.PredHidden = 32, 16, 32
	cfg.Optim = testOptim("lars", 1)
	cfg.MomentumSteps = 12
	m, err := NewBYOL(cfg, tinyResNet(t, 5), rand.New(rand.NewPCG(5, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.TargetMomentum(0); got != 0.996 {
		t.Errorf("momentum at step 0 is %g, want 0.996", got)
	}
	if got := m.TargetMomentum(6); math.Abs(got-0.998) > 1e-12 {
		t.Errorf("momentum half-way is %g, want 0.998", got)
	}
	if got := m.TargetMomentum(12); got != 1 {
		t.Errorf("momentum at the end is %g, want 1", got)
	}
	views := randomViews(5, 2, testBatch, 16)
	tp := autograd.NewTape()
	var losses []float32
	for step := range 12 {
		online, target := onlineTarget(m.Encoder, m.TargetEncoder, m.Projector, m.TargetProjector)
		targetBefore := snapshot(target)
		l, err := m.Step(tp, views)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, l)
		// The target moved after the optimizer step, towards the updated
		// online weights, with the schedule's momentum for this step.
		checkEMA(t, targetBefore, snapshot(online), target, stripTarget, nn.CosineMomentum(step, 12, 0.996))
	}
	requireDecrease(t, losses, 0.2)
}

func newTinyViT(t *testing.T, seed uint64) *zoo.ViT {
	t.Helper()
	v, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 16, PatchSize: 4, Dim: 16, Depth: 1, Heads: 2}, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMoCoV3(t *testing.T) {
	for _, arch := range []string{"resnet", "vit"} {
		t.Run(arch, func(t *testing.T) {
			var enc Encoder
			if arch == "vit" {
				enc = newTinyViT(t, 6)
			} else {
				enc = tinyResNet(t, 6)
			}
			cfg := DefaultMoCoV3Config(enc, testBatch, 10, 100)
			if arch == "vit" {
				if cfg.ProjLayers != 3 || cfg.Temperature != 0.2 || cfg.Optim.Name != "adamw" || !cfg.FreezePatchEmbed {
					t.Fatalf("vit recipe %+v", cfg)
				}
				cfg.Optim.LR, cfg.Optim.WarmupSteps, cfg.Optim.TotalSteps = 3e-3, 0, 0
			} else {
				if cfg.ProjLayers != 2 || cfg.Temperature != 1 || cfg.Optim.Name != "lars" {
					t.Fatalf("resnet recipe %+v", cfg)
				}
				cfg.Optim = testOptim("lars", 1)
			}
			cfg.HiddenDim, cfg.OutDim = 32, 16
			cfg.MomentumSteps = 15
			m, err := NewMoCoV3(cfg, enc, rand.New(rand.NewPCG(6, 3)))
			if err != nil {
				t.Fatal(err)
			}
			// The projector ends in a BatchNorm without affine parameters.
			st := nn.StateOf(m.Projector)
			last := st.Params[len(st.Params)-1].Name
			if last != fmt.Sprintf("%d.weight", 3*(cfg.ProjLayers-1)) {
				t.Errorf("projector's last parameter is %s: the final BatchNorm should have none", last)
			}
			var frozen []float32
			if vit, ok := enc.(*zoo.ViT); ok {
				frozen = append(frozen, vit.PatchEmbed.Weight.Value.Data...)
			}
			views := randomViews(6, 2, testBatch, 16)
			tp := autograd.NewTape()
			var losses []float32
			for step := range 15 {
				online, target := onlineTarget(m.Encoder, m.TargetEncoder, m.Projector, m.TargetProjector)
				targetBefore, onlineBefore := snapshot(target), snapshot(online)
				l, err := m.Step(tp, views)
				if err != nil {
					t.Fatal(err)
				}
				losses = append(losses, l)
				// The momentum encoder moved before the keys were computed,
				// from the online weights as they were then.
				checkEMA(t, targetBefore, onlineBefore, target, stripTarget, nn.CosineMomentum(step, 15, 0.99))
			}
			requireDecrease(t, losses, 0.1)
			if vit, ok := enc.(*zoo.ViT); ok {
				for i, v := range vit.PatchEmbed.Weight.Value.Data {
					if v != frozen[i] {
						t.Fatal("frozen patch embedding changed")
					}
				}
			}
		})
	}
}

func newTestSwAV(t *testing.T, freeze, queue int) *SwAV {
	t.Helper()
	return newTestSwAVAt(t, freeze, queue, 1)
}

// newTestSwAVAt is newTestSwAV with LARS at learning rate lr.
func newTestSwAVAt(t *testing.T, freeze, queue int, lr float64) *SwAV {
	t.Helper()
	cfg := DefaultSwAVConfig(testBatch, 10, 100)
	if cfg.Prototypes != 3000 || cfg.Epsilon != 0.05 || cfg.SinkhornIters != 3 || cfg.Temperature != 0.1 || cfg.FreezePrototypesSteps != 10 {
		t.Fatalf("swav recipe %+v", cfg)
	}
	cfg.ProjHidden, cfg.ProjDim, cfg.Prototypes = 32, 16, 12
	cfg.FreezePrototypesSteps, cfg.QueueLength = freeze, queue
	cfg.Optim = testOptim("lars", lr)
	m, err := NewSwAV(cfg, tinyResNet(t, 7), rand.New(rand.NewPCG(7, 3)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// swavViews is two 16x16 global crops and two 8x8 local crops of the same
// images (the local crops are the global ones' top-left corners plus noise).
func swavViews(seed uint64) []*tensor.Tensor {
	views := randomViews(seed, 4, testBatch, 16)
	for i := 2; i < 4; i++ {
		small := tensor.New(testBatch, 3, 8, 8)
		for n := range testBatch {
			for c := range 3 {
				for y := range 8 {
					copy(small.Data[((n*3+c)*8+y)*8:][:8], views[i].Data[((n*3+c)*16+y)*16:][:8])
				}
			}
		}
		views[i] = small
	}
	return views
}

func checkUnitRows(t *testing.T, w *tensor.Tensor) {
	t.Helper()
	d := w.Shape[1]
	for r := range w.Shape[0] {
		var s float64
		for _, v := range w.Data[r*d : (r+1)*d] {
			s += float64(v) * float64(v)
		}
		if math.Abs(math.Sqrt(s)-1) > 1e-5 {
			t.Fatalf("prototype %d has norm %g", r, math.Sqrt(s))
		}
	}
}

func TestSwAVOverfitsBatchWithFrozenPrototypes(t *testing.T) {
	const freeze = 4
	m := newTestSwAV(t, freeze, 0)
	views := swavViews(7)
	tp := autograd.NewTape()
	w := m.Prototypes.Weight
	checkUnitRows(t, w.Value)
	var losses []float32
	for step := range 15 {
		before := append([]float32(nil), w.Value.Data...)
		l, err := m.Step(tp, views)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, l)
		checkUnitRows(t, w.Value)
		moved := 0.0
		for i, v := range w.Value.Data {
			moved = math.Max(moved, math.Abs(float64(v-before[i])))
		}
		if step < freeze {
			if moved > 1e-6 || w.Grad != nil {
				t.Fatalf("step %d: frozen prototypes moved by %g (grad %v)", step, moved, w.Grad != nil)
			}
			if !m.PrototypesFrozen(int64(step)) {
				t.Fatalf("step %d: not reported frozen", step)
			}
		} else if moved < 1e-4 {
			t.Fatalf("step %d: prototypes did not move after the freeze (max change %g)", step, moved)
		}
	}
	requireDecrease(t, losses, 0.1)
}

func TestSwAVQueue(t *testing.T) {
	// A queue of two batches: filled after two steps, used from the third.
	m := newTestSwAV(t, 0, 2*testBatch)
	// plain is the same model without a queue: its losses match until the
	// queue is full and enters Sinkhorn.
	plain := newTestSwAV(t, 0, 0)
	views := swavViews(8)
	tp := autograd.NewTape()
	l, d := 2*testBatch, 16
	for step := range 4 {
		before := append([]float32(nil), m.Queue.Data...)
		loss, err := m.Step(tp, views)
		if err != nil {
			t.Fatal(err)
		}
		lossPlain, err := plain.Step(tp, views)
		if err != nil {
			t.Fatal(err)
		}
		if used := step >= 2; used == (loss == lossPlain) {
			t.Errorf("step %d: loss %g with queue, %g without; the queue should be used from step 2 only", step, loss, lossPlain)
		}
		if want := int64(min((step+1)*testBatch, l)); m.QueueFilled != want {
			t.Fatalf("step %d: %d queue rows filled, want %d", step, m.QueueFilled, want)
		}
		for i := range 2 {
			q, qb := m.Queue.Data[i*l*d:(i+1)*l*d], before[i*l*d:(i+1)*l*d]
			// the old top batch moved down by one batch ...
			for j := range (l - testBatch) * d {
				if q[testBatch*d+j] != qb[j] {
					t.Fatalf("step %d crop %d: queue did not shift", step, i)
				}
			}
			// ... and the new top holds unit embeddings.
			checkUnitRows(t, &tensor.Tensor{Shape: []int{testBatch, d}, Data: q[:testBatch*d]})
		}
	}
	if _, err := m.Step(tp, randomViews(9, 2, testBatch-2, 16)); err == nil {
		t.Error("batch that does not divide the queue length: no error")
	}
}

func TestNewByName(t *testing.T) {
	run := Run{Batch: 256, StepsPerEpoch: 10, Epochs: 100}
	for _, name := range MethodNames() {
		var enc Encoder = tinyResNet(t, 8)
		first := "backbone.conv1.weight"
		if name == "mae" {
			vit, err := zoo.NewViT(zoo.ViTConfig{ImageSize: 16, PatchSize: 4, InChannels: 3, Dim: 16, Depth: 1, Heads: 2}, rand.New(rand.NewPCG(8, 2)))
			if err != nil {
				t.Fatal(err)
			}
			enc, first = vit, "backbone.patch_embed.proj.weight"
		}
		m, err := New(name, enc, run, rand.New(rand.NewPCG(8, 3)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Name() != name {
			t.Errorf("New(%q) built %q", name, m.Name())
		}
		// The online encoder is saved under "backbone." with torchvision's
		// (timm's) names, so evaluation can load it by that prefix.
		found := false
		for _, p := range nn.StateOf(m).Params {
			found = found || p.Name == first
		}
		if !found {
			t.Errorf("%s: no %s in its state", name, first)
		}
	}
	if _, err := New("ibot", tinyResNet(t, 8), run, nil); err == nil || !strings.Contains(err.Error(), "simclr") {
		t.Errorf("unknown method error %v does not list the known ones", err)
	}
	if _, err := New("byol", tinyResNet(t, 8), Run{Batch: 1, StepsPerEpoch: 1, Epochs: 1}, nil); err == nil {
		t.Error("batch 1: no error")
	}
}

// A checkpoint taken mid-run restores everything the next step depends on:
// weights, target network, queue and its pointer, step counter (and with it
// the schedules) and optimizer state.
func TestCheckpointResume(t *testing.T) {
	for _, name := range []string{"mocov2", "swav", "byol", "simsiam", "dino"} {
		t.Run(name, func(t *testing.T) {
			build := func(seed uint64) Method {
				var m Method
				var err error
				switch name {
				case "mocov2":
					m = newTestMoCoV2(t, 12)
				case "swav":
					m = newTestSwAV(t, 1, 2*testBatch)
				case "byol":
					cfg := DefaultBYOLConfig(testBatch, 2, 3)
					cfg.ProjHidden, cfg.ProjDim, cfg.PredHidden = 16, 8, 16
					m, err = NewBYOL(cfg, tinyResNet(t, seed), rand.New(rand.NewPCG(seed, 3)))
				case "simsiam":
					cfg := DefaultSimSiamConfig(testBatch, 2, 3)
					cfg.ProjDim, cfg.PredHidden = 8, 4
					m, err = NewSimSiam(cfg, tinyResNet(t, seed), rand.New(rand.NewPCG(seed, 3)))
				case "dino":
					// AdamW's moments and the centre must come back too.
					m, err = NewDINO(smallDINOConfig(testBatch, 2, 3, "adamw"), tinyResNet(t, seed), rand.New(rand.NewPCG(seed, 3)))
				}
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			views := randomViews(11, 2, testBatch, 16)
			if name == "swav" || name == "dino" {
				views = swavViews(11)
			}
			a := build(1)
			tp := autograd.NewTape()
			for range 3 {
				if _, err := a.Step(tp, views); err != nil {
					t.Fatal(err)
				}
			}
			path := t.TempDir() + "/ckpt.safetensors"
			if err := nn.SaveCheckpoint(path, a, a.Optimizer(), a.Steps(), nil, nil); err != nil {
				t.Fatal(err)
			}
			b := build(2)
			if _, _, err := nn.LoadCheckpoint(path, b, b.Optimizer(), nil); err != nil {
				t.Fatal(err)
			}
			if b.Steps() != 3 {
				t.Fatalf("restored step counter %d, want 3", b.Steps())
			}
			la, err := a.Step(tp, views)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := b.Step(tp, views)
			if err != nil {
				t.Fatal(err)
			}
			if la != lb {
				t.Errorf("loss after resume %g, uninterrupted %g", lb, la)
			}
			sa, sb := nn.StateOf(a), nn.StateOf(b)
			for i, p := range sa.Params {
				for j, v := range p.Var.Value.Data {
					if sb.Params[i].Var.Value.Data[j] != v {
						t.Fatalf("%s differs after the resumed step", p.Name)
					}
				}
			}
		})
	}
}

// Barlow Twins, VICReg and SimSiam overfit one batch; SimSiam's loss is a
// negative cosine, so its decrease is measured from the floor of -1.
func TestTwinMethodsOverfitBatch(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(enc Encoder, rng *rand.Rand) (Method, error)
	}{
		{"barlow", func(enc Encoder, rng *rand.Rand) (Method, error) {
			cfg := DefaultBarlowConfig(testBatch, 10, 100)
			cfg.ProjHidden, cfg.ProjDim, cfg.Optim = 32, 16, testOptim("lars", 1)
			return NewBarlow(cfg, enc, rng)
		}},
		{"vicreg", func(enc Encoder, rng *rand.Rand) (Method, error) {
			cfg := DefaultVICRegConfig(testBatch, 10, 100)
			cfg.ProjHidden, cfg.ProjDim, cfg.Optim = 32, 16, testOptim("lars", 1)
			return NewVICReg(cfg, enc, rng)
		}},
		{"simsiam", func(enc Encoder, rng *rand.Rand) (Method, error) {
			cfg := DefaultSimSiamConfig(testBatch, 10, 100)
			cfg.ProjDim, cfg.PredHidden, cfg.Optim = 16, 8, testOptim("sgd", 0.1)
			return NewSimSiam(cfg, enc, rng)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := c.build(tinyResNet(t, 21), rand.New(rand.NewPCG(21, 3)))
			if err != nil {
				t.Fatal(err)
			}
			if m.Name() != c.name {
				t.Errorf("Name() = %q", m.Name())
			}
			losses := trainFixed(t, m, randomViews(21, 2, testBatch, 16), 12)
			if c.name == "simsiam" {
				for i := range losses {
					losses[i]++
				}
			}
			requireDecrease(t, losses, 0.1)
		})
	}
}

// The twin methods keep one network (SimSiam adds its predictor) and no
// target copies, under PyTorch's names, and their projector Linears
// before BatchNorm have no bias.
func TestTwinMethodsState(t *testing.T) {
	run := Run{Batch: testBatch, StepsPerEpoch: 2, Epochs: 1}
	for name, want := range map[string][]string{
		"barlow":  {"projector.0.weight", "projector.6.weight"},
		"vicreg":  {"projector.0.weight", "projector.6.weight"},
		"simsiam": {"projector.7.running_mean", "predictor.0.weight", "predictor.3.bias"},
	} {
		m, err := New(name, tinyResNet(t, 22), run, rand.New(rand.NewPCG(22, 3)))
		if err != nil {
			t.Fatal(err)
		}
		got := nn.StateTensors(m)
		for _, k := range want {
			if _, ok := got[k]; !ok {
				t.Errorf("%s: no %s in its state", name, k)
			}
		}
		for k := range got {
			if strings.HasPrefix(k, "target_") || strings.HasSuffix(k, "projector.0.bias") {
				t.Errorf("%s: unexpected %s", name, k)
			}
		}
	}
	// The papers' projector widths scale with the backbone: 4x the
	// feature width for Barlow Twins and VICReg, the feature width for
	// SimSiam's hidden layers.
	m, err := New("barlow", tinyResNet(t, 22), run, rand.New(rand.NewPCG(22, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Configuration().(BarlowConfig); c.ProjHidden != 128 || c.ProjDim != 128 || c.Lambda != 5e-3 {
		t.Errorf("barlow config %+v", c)
	}
	m, err = New("simsiam", tinyResNet(t, 22), run, rand.New(rand.NewPCG(22, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Configuration().(SimSiamConfig); c.ProjHidden != 32 || c.ProjDim != 2048 || c.PredHidden != 512 || c.Optim.Name != "sgd" {
		t.Errorf("simsiam config %+v", c)
	}
}
