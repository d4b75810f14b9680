package ssl

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// testdata/ssl_steps.json comes from scripts/gen_ssl_steps.py: three
// training iterations of every method run by PyTorch after the reference
// code (float64), from float32 initial weights. The Go methods load the
// same weights, run the same iterations in float32, and must reproduce each
// loss and every parameter and buffer afterwards.

// convEncoder is the script's encoder: Conv2d 3x3 -> BatchNorm2d -> ReLU
// -> global average pool, with the same state names as its nn.Sequential.
type convEncoder struct {
	seq  *nn.Sequential
	feat int
}

type globalPool struct{}

func (globalPool) Forward(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.GlobalAvgPool(x)
}
func (globalPool) CollectState(string, *nn.State) {}
func (globalPool) SetTraining(bool)               {}

func newConvEncoder(feat int, rng *rand.Rand) *convEncoder {
	return &convEncoder{feat: feat, seq: nn.NewSequential(
		nn.NewConv2d(3, feat, 3, autograd.ConvParams{PadH: 1, PadW: 1}, true, rng),
		nn.NewBatchNorm(feat), nn.ReLU{}, globalPool{})}
}

func (e *convEncoder) FeatureDim() int                         { return e.feat }
func (e *convEncoder) CollectState(prefix string, s *nn.State) { e.seq.CollectState(prefix, s) }
func (e *convEncoder) SetTraining(on bool)                     { e.seq.SetTraining(on) }
func (e *convEncoder) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return e.seq.Forward(tp, x)
}
func (e *convEncoder) CloneEncoder(rng *rand.Rand) (Encoder, error) {
	return newConvEncoder(e.feat, rng), nil
}

type stepsCase struct {
	Name   string                  `json:"name"`
	Attrs  map[string]float64      `json:"attrs"`
	Init   map[string]goldenTensor `json:"init"`
	Losses []float64               `json:"losses"`
	Final  map[string]goldenTensor `json:"final"`
}

type stepsFile struct {
	Optim struct {
		LR          float64 `json:"lr"`
		FinalLR     float64 `json:"final_lr"`
		Warmup      int     `json:"warmup"`
		Total       int     `json:"total"`
		Momentum    float64 `json:"momentum"`
		WeightDecay float64 `json:"weight_decay"`
	} `json:"optim"`
	Batch int              `json:"batch"`
	Feat  int              `json:"feat"`
	Steps int              `json:"steps"`
	Views [][]goldenTensor `json:"views"`
	Cases []stepsCase      `json:"cases"`
}

func TestStepsMatchPyTorch(t *testing.T) {
	raw, err := os.ReadFile("testdata/ssl_steps.json")
	if err != nil {
		t.Fatalf("read fixture (regenerate with /usr/bin/python3 scripts/gen_ssl_steps.py): %v", err)
	}
	var f stepsFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	oc := OptimConfig{Name: "sgd", LR: f.Optim.LR, FinalLR: f.Optim.FinalLR, WarmupSteps: f.Optim.Warmup,
		TotalSteps: f.Optim.Total, Momentum: f.Optim.Momentum, WeightDecay: f.Optim.WeightDecay}
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 1))
			enc := newConvEncoder(f.Feat, rng)
			a := func(k string) int { return int(c.Attrs[k]) }
			var m Method
			var err error
			nViews := 2
			switch c.Name {
			case "simclr":
				m, err = NewSimCLR(SimCLRConfig{HiddenDim: a("hidden"), OutDim: a("out"), Temperature: float32(c.Attrs["temperature"]), Optim: oc}, enc, rng)
			case "mocov2":
				m, err = NewMoCoV2(MoCoV2Config{HiddenDim: a("hidden"), OutDim: a("out"), QueueSize: a("queue"),
					Temperature: float32(c.Attrs["temperature"]), Momentum: c.Attrs["momentum"], Optim: oc}, enc, rng)
			case "mocov3":
				m, err = NewMoCoV3(MoCoV3Config{ProjLayers: 2, HiddenDim: a("hidden"), OutDim: a("out"),
					Temperature: float32(c.Attrs["temperature"]), BaseMomentum: c.Attrs["momentum"], Optim: oc}, enc, rng)
			case "byol":
				m, err = NewBYOL(BYOLConfig{ProjHidden: a("hidden"), ProjDim: a("out"), PredHidden: a("hidden"),
					BaseMomentum: c.Attrs["momentum"], Optim: oc}, enc, rng)
			case "swav":
				nViews = 4
				m, err = NewSwAV(SwAVConfig{ProjHidden: a("hidden"), ProjDim: a("out"), Prototypes: a("prototypes"),
					Temperature: float32(c.Attrs["temperature"]), Epsilon: float32(c.Attrs["epsilon"]), SinkhornIters: a("iterations"),
					GlobalCrops: 2, FreezePrototypesSteps: a("freeze"), QueueLength: a("queue"), Optim: oc}, enc, rng)
			case "barlow":
				m, err = NewBarlow(BarlowConfig{ProjHidden: a("hidden"), ProjDim: a("out"), Lambda: float32(c.Attrs["lambda"]), Scale: 1, Optim: oc}, enc, rng)
			case "vicreg":
				m, err = NewVICReg(VICRegConfig{ProjHidden: a("hidden"), ProjDim: a("out"), Loss: VICRegLossConfig{
					Invariance: float32(c.Attrs["invariance"]), Variance: float32(c.Attrs["variance"]), Covariance: float32(c.Attrs["covariance"]),
					Gamma: 1, Epsilon: 1e-4}, Optim: oc}, enc, rng)
			case "simsiam":
				m, err = NewSimSiam(SimSiamConfig{ProjLayers: 3, ProjHidden: a("hidden"), ProjDim: a("out"), PredHidden: a("pred_hidden"), Optim: oc}, enc, rng)
			case "dino":
				nViews = 4
				f := func(k string) float32 { return float32(c.Attrs[k]) }
				m, err = NewDINO(DINOConfig{HeadHidden: a("hidden"), Bottleneck: a("bottleneck"), Prototypes: a("prototypes"),
					StudentTemp: f("student_temperature"), WarmupTeacherTemp: f("warmup_teacher_temperature"), TeacherTemp: f("teacher_temperature"),
					TeacherTempWarmupSteps: a("teacher_warmup"), CenterMomentum: c.Attrs["center_momentum"], BaseMomentum: c.Attrs["momentum"],
					FreezeLastLayerSteps: a("freeze"), ClipGrad: c.Attrs["clip"], FinalWeightDecay: c.Attrs["final_weight_decay"], Optim: oc}, enc, rng)
			default:
				t.Fatalf("unknown method %q", c.Name)
			}
			if err != nil {
				t.Fatal(err)
			}
			init := map[string]*weights.Tensor{}
			for name, g := range c.Init {
				init[name] = weights.FromFloat32(g.tensor())
			}
			// Integer counters (num_batches_tracked, steps, queue_ptr) are
			// not in the fixture; every float tensor must be.
			missing, unexpected := nn.DiffState(m, init)
			for _, name := range missing {
				if !isCounter(name) && !(c.Name == "swav" && name == "queue") {
					t.Fatalf("fixture lacks %s", name)
				}
			}
			if len(unexpected) > 0 {
				t.Fatalf("fixture has unknown tensors %v", unexpected)
			}
			if err := nn.LoadState(m, init, false); err != nil {
				t.Fatal(err)
			}
			tp := autograd.NewTape()
			for s := range f.Steps {
				views := make([]*tensor.Tensor, nViews)
				for i := range views {
					views[i] = f.Views[s][i].tensor()
				}
				loss, err := m.Step(tp, views)
				if err != nil {
					t.Fatal(err)
				}
				if want := c.Losses[s]; math.Abs(float64(loss)-want) > 2e-5+2e-5*math.Abs(want) {
					t.Errorf("step %d: loss %.7g, PyTorch %.7g", s, loss, want)
				}
			}
			got := nn.StateTensors(m)
			for name, want := range c.Final {
				// A target network's BatchNorm statistics are its own in
				// PyTorch, copied from the online network by nn.EMA here;
				// they never enter a training-mode forward pass.
				if strings.HasPrefix(name, "target_") && strings.Contains(name, "running_") {
					continue
				}
				g, ok := got[name]
				if !ok {
					t.Errorf("no %s in the Go state", name)
					continue
				}
				gt, err := g.Float32()
				if err != nil {
					t.Fatal(err)
				}
				if err := closeToTol(gt.Data, want.Data, 1e-4); err != nil {
					t.Errorf("%s after %d steps: %v", name, f.Steps, err)
				}
			}
			if mc, ok := m.(*MoCoV2); ok && mc.QueuePtr != int64(a("queue_ptr")) {
				t.Errorf("queue_ptr %d, PyTorch %d", mc.QueuePtr, a("queue_ptr"))
			}
		})
	}
}

func isCounter(name string) bool {
	for _, s := range []string{"num_batches_tracked", "steps", "queue_ptr", "queue_filled"} {
		if name == s || strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}
