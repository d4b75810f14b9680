package ssl

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// smallDINOConfig is the recipe for the given run with a head small enough
// for the tests and the named optimizer at a constant rate.
func smallDINOConfig(batch, stepsPerEpoch, epochs int, optim string) DINOConfig {
	cfg := DefaultDINOConfig(nil, batch, stepsPerEpoch, epochs)
	cfg.HeadHidden, cfg.Bottleneck, cfg.Prototypes = 32, 16, 64
	lr := 0.05
	if optim == "adamw" {
		lr = 1e-3
	}
	cfg.Optim = OptimConfig{Name: optim, LR: lr, Momentum: 0.9, WeightDecay: 0.04, TotalSteps: epochs * stepsPerEpoch}
	cfg.FinalWeightDecay = 0.4
	return cfg
}

func dinoGroups(m *DINO) (online, target group) {
	return group{{"backbone", m.Encoder, true}, {"head", m.Head, true}},
		group{{"target_backbone", m.TeacherEncoder, false}, {"target_head", m.TeacherHead, false}}
}

// DINO trains on multi-crop views with a ResNet and a ViT: the teacher
// follows the student by the cosine momentum after every optimizer step,
// the centre moves, and the last layer stays put while frozen (its g
// always). Its loss is bounded below by the entropy of targets that the
// warming temperature and the centre keep widening, so the loss's fall is
// checked against a fixed teacher (momentum 1, centre held, constant
// temperature): the student distils it, down towards the entropy of the
// teacher's targets, which bounds the fall.
func TestDINOTrainsAndMovesTeacher(t *testing.T) {
	for _, arch := range []string{"resnet", "vit"} {
		t.Run(arch, func(t *testing.T) {
			var enc Encoder = tinyResNet(t, 31)
			optim := "sgd"
			if arch == "vit" {
				enc, optim = newTinyViT(t, 31), "adamw"
			}
			const steps = 12
			cfg := smallDINOConfig(testBatch, steps, 1, optim)
			cfg.FreezeLastLayerSteps, cfg.TeacherTempWarmupSteps = 2, 6
			m, err := NewDINO(cfg, enc, rand.New(rand.NewPCG(31, 3)))
			if err != nil {
				t.Fatal(err)
			}
			views := swavViews(31)
			tp := autograd.NewTape()
			for step := range steps {
				online, target := dinoGroups(m)
				targetBefore := snapshot(target)
				centerBefore := append([]float32(nil), m.Center.Data...)
				lastBefore := append([]float32(nil), m.Head.WeightV.Value.Data...)
				if _, err := m.Step(tp, views); err != nil {
					t.Fatal(err)
				}
				checkEMA(t, targetBefore, snapshot(online), target, stripTarget, nn.CosineMomentum(step, steps, 0.996))
				moved := false
				for i, v := range m.Center.Data {
					moved = moved || v != centerBefore[i]
				}
				if !moved {
					t.Errorf("step %d: centre did not move", step)
				}
				same := true
				for i, v := range m.Head.WeightV.Value.Data {
					same = same && v == lastBefore[i]
				}
				if same != m.LastLayerFrozen(int64(step)) {
					t.Errorf("step %d: last layer unchanged %v, frozen %v", step, same, m.LastLayerFrozen(int64(step)))
				}
			}
			for _, v := range m.Head.WeightG.Value.Data {
				if v != 1 {
					t.Fatalf("last layer's g moved to %g", v)
				}
			}
			if arch == "vit" {
				enc = newTinyViT(t, 31)
			} else {
				enc = tinyResNet(t, 31)
			}
			cfg.BaseMomentum, cfg.CenterMomentum, cfg.TeacherTempWarmupSteps, cfg.FreezeLastLayerSteps = 1, 1, 0, 0
			cfg.Optim = OptimConfig{Name: "sgd", LR: 0.05, Momentum: 0.9, WarmupSteps: 3}
			if optim == "adamw" {
				cfg.Optim = OptimConfig{Name: "adamw", LR: 2e-4}
			}
			fixed, err := NewDINO(cfg, enc, rand.New(rand.NewPCG(31, 3)))
			if err != nil {
				t.Fatal(err)
			}
			// The recipe's std 0.02 suits 2048-wide layers; through this
			// head's 32-wide ones the bottleneck comes out ~1e-3 long, and
			// its normalisation turns the first step into a jump. Weights of
			// std 1/sqrt(fan-in) keep it near unit length.
			for _, p := range nn.StateOf(fixed.Head.MLP).Params {
				if s := p.Var.Value.Shape; len(s) == 2 {
					k := float32(1 / (0.02 * math.Sqrt(float64(s[1]))))
					for i := range p.Var.Value.Data {
						p.Var.Value.Data[i] *= k
					}
				}
			}
			if err := nn.CopyState(fixed.TeacherHead, fixed.Head); err != nil {
				t.Fatal(err)
			}
			requireDecrease(t, trainFixed(t, fixed, views, steps), 0.05)
		})
	}
}

// The recipes, the schedules and the state layout.
func TestDINOConfigAndState(t *testing.T) {
	res := DefaultDINOConfig(tinyResNet(t, 32), 512, 100, 100)
	if res.Optim.Name != "sgd" || res.Optim.LR != 0.06 || res.FinalWeightDecay != 1e-4 || res.Prototypes != 4096 ||
		res.TeacherTempWarmupSteps != 1000 || res.FreezeLastLayerSteps != 100 || res.Optim.WarmupSteps != 1000 || res.ClipGrad != 3 {
		t.Errorf("resnet recipe %+v", res)
	}
	vit := DefaultDINOConfig(newTinyViT(t, 32), 512, 100, 300)
	if vit.Optim.Name != "adamw" || vit.Optim.LR != 1e-3 || vit.Optim.FinalLR != 1e-6 || vit.Optim.WeightDecay != 0.04 ||
		vit.FinalWeightDecay != 0.4 || vit.TeacherTempWarmupSteps != 3000 {
		t.Errorf("vit recipe %+v", vit)
	}
	cfg := smallDINOConfig(testBatch, 10, 10, "adamw")
	cfg.TeacherTempWarmupSteps = 30
	m, err := NewDINO(cfg, tinyResNet(t, 32), rand.New(rand.NewPCG(32, 3)))
	if err != nil {
		t.Fatal(err)
	}
	// Teacher temperature linear over the 30 warmup steps, weight decay
	// on a cosine from 0.04 to 0.4 over the 100-step run.
	for _, c := range []struct {
		step     int64
		temp, wd float64
	}{{0, 0.04, 0.04}, {15, 0.055, 0.04 + 0.36*(1-math.Cos(math.Pi*0.15))/2}, {30, 0.07, 0.04 + 0.36*(1-math.Cos(math.Pi*0.3))/2},
		{50, 0.07, 0.22}, {100, 0.07, 0.4}, {500, 0.07, 0.4}} {
		if got := m.TeacherTemp(c.step); math.Abs(float64(got)-c.temp) > 1e-7 {
			t.Errorf("teacher temperature at %d: %g, want %g", c.step, got, c.temp)
		}
		if got := m.WeightDecayAt(c.step); math.Abs(got-c.wd) > 1e-12 {
			t.Errorf("weight decay at %d: %g, want %g", c.step, got, c.wd)
		}
	}
	got := nn.StateTensors(m)
	for _, k := range []string{"backbone.conv1.weight", "head.mlp.0.weight", "head.mlp.4.bias", "head.last_layer.weight_g",
		"head.last_layer.weight_v", "target_backbone.conv1.weight", "target_head.last_layer.weight_v", "center"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %s in the state", k)
		}
	}
	if s := got["head.last_layer.weight_g"].Shape; len(s) != 2 || s[0] != 64 || s[1] != 1 {
		t.Errorf("weight_g shape %v, want [64 1]", s)
	}
	// g is not trained; weight decay spares biases and 1-D parameters.
	for _, p := range m.params {
		if p.Name == "head.last_layer.weight_g" {
			t.Error("the optimizer trains g")
		}
	}
	for _, p := range m.decayed {
		if strings.HasSuffix(p.Name, "bias") || len(p.Var.Value.Shape) < 2 {
			t.Errorf("%s is decayed", p.Name)
		}
	}
	if len(m.decayed) == 0 || len(m.decayed) == len(m.params) {
		t.Errorf("%d of %d parameters decayed", len(m.decayed), len(m.params))
	}
	for name, mut := range map[string]func(c *DINOConfig){
		"prototypes":  func(c *DINOConfig) { c.Prototypes = 0 },
		"temperature": func(c *DINOConfig) { c.TeacherTemp = 0 },
		"momentum":    func(c *DINOConfig) { c.CenterMomentum = 1.5 },
		"clip":        func(c *DINOConfig) { c.ClipGrad = -1 },
		"decay":       func(c *DINOConfig) { c.FinalWeightDecay = math.NaN() },
		"optimizer":   func(c *DINOConfig) { c.Optim.Name = "rmsprop" },
		"negative wd": func(c *DINOConfig) { c.Optim.WeightDecay = -1 },
	} {
		c := smallDINOConfig(testBatch, 10, 10, "sgd")
		mut(&c)
		if _, err := NewDINO(c, tinyResNet(t, 32), rand.New(rand.NewPCG(32, 3))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The scheduled weight decay acts as each optimizer's own would: AdamW's
// shrinks the weights by lr*wd, SGD's and LARS's adds wd*w to the
// gradient; biases and parameters without a gradient are left alone.
func TestDINOWeightDecay(t *testing.T) {
	for _, optim := range []string{"adamw", "sgd", "lars"} {
		t.Run(optim, func(t *testing.T) {
			m, err := NewDINO(smallDINOConfig(testBatch, 10, 10, optim), tinyResNet(t, 33), rand.New(rand.NewPCG(33, 3)))
			if err != nil {
				t.Fatal(err)
			}
			m.opt.SetLR(0.5)
			before := snapshot(m)
			for _, p := range m.params {
				if p.Name != "head.mlp.2.weight" {
					p.Var.Grad = tensor.New(p.Var.Value.Shape...)
				}
			}
			const step = 20
			wd := m.WeightDecayAt(step)
			m.applyWeightDecay(step)
			for _, p := range m.params {
				decayed := false
				for _, q := range m.decayed {
					decayed = decayed || q.Name == p.Name
				}
				decayed = decayed && p.Var.Grad != nil
				w0 := before[p.Name]
				for i, w := range p.Var.Value.Data {
					wantW, wantG := float64(w0[i]), 0.0
					if decayed && optim == "adamw" {
						wantW *= 1 - 0.5*wd
					} else if decayed {
						wantG = wd * wantW
					}
					if math.Abs(float64(w)-wantW) > 1e-7 {
						t.Fatalf("%s[%d] = %g, want %g", p.Name, i, w, wantW)
					}
					if p.Var.Grad != nil && math.Abs(float64(p.Var.Grad.Data[i])-wantG) > 1e-7 {
						t.Fatalf("%s grad[%d] = %g, want %g", p.Name, i, p.Var.Grad.Data[i], wantG)
					}
				}
			}
		})
	}
}

// A non-finite loss stops the step naming it, and leaves the student,
// teacher and centre as they were; bad views are refused.
func TestDINORejectsNaNAndBadViews(t *testing.T) {
	m, err := NewDINO(smallDINOConfig(testBatch, 10, 10, "sgd"), tinyResNet(t, 34), rand.New(rand.NewPCG(34, 3)))
	if err != nil {
		t.Fatal(err)
	}
	tp := autograd.NewTape()
	views := swavViews(34)
	if _, err := m.Step(tp, views); err != nil {
		t.Fatal(err)
	}
	m.Head.MLP.Layers[0].(*nn.Linear).Weight.Value.Data[0] = float32(math.NaN())
	before, center := snapshot(m), append([]float32(nil), m.Center.Data...)
	if _, err := m.Step(tp, views); err == nil || !strings.Contains(err.Error(), "dino step 1: loss is NaN") {
		t.Fatalf("NaN weights: error %v", err)
	}
	for name, v := range snapshot(m) {
		for i := range v {
			if v[i] != before[name][i] && !math.IsNaN(float64(v[i])) {
				t.Fatalf("%s changed on a NaN loss", name)
			}
		}
	}
	for i, v := range m.Center.Data {
		if v != center[i] {
			t.Fatal("centre changed on a NaN loss")
		}
	}
	if m.Steps() != 1 {
		t.Errorf("failed step counted: %d steps", m.Steps())
	}
	for name, v := range map[string][]*tensor.Tensor{
		"one view":      views[:1],
		"global shapes": {views[0], views[2]},
	} {
		if _, err := m.Step(tp, v); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
