package ssl

import (
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

func randomViews(seed uint64, count, n, size int) []*tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 2))
	views := make([]*tensor.Tensor, count)
	for i := range views {
		v := tensor.New(n, 3, size, size)
		for j := range v.Data {
			v.Data[j] = float32(rng.NormFloat64())
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
