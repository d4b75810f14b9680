package nn

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// toyModule owns a weight, a running-stat buffer and a counter, without
// needing any op: enough to exercise state handling on its own.
type toyModule struct {
	W       *autograd.Var
	Running *tensor.Tensor
	Count   int64
	train   bool
}

func newToy(vals ...float32) *toyModule {
	return &toyModule{
		W:       autograd.NewParam("", tensor.FromSlice(vals, 2, len(vals)/2)),
		Running: tensor.FromSlice([]float32{0.5, -0.5}, 2),
	}
}

func (m *toyModule) CollectState(prefix string, s *State) {
	s.Params = append(s.Params, Param{Join(prefix, "weight"), m.W})
	s.Buffers = append(s.Buffers, Buffer{Name: Join(prefix, "running_mean"), T: m.Running},
		Buffer{Name: Join(prefix, "num_batches_tracked"), Count: &m.Count})
}

func (m *toyModule) SetTraining(on bool) { m.train = on }

// toyNet nests two toy modules, as a model nests layers.
type toyNet struct{ A, B *toyModule }

func (n *toyNet) CollectState(prefix string, s *State) {
	n.A.CollectState(Join(prefix, "a"), s)
	n.B.CollectState(Join(prefix, "b.0"), s)
}

func (n *toyNet) SetTraining(on bool) { n.A.SetTraining(on); n.B.SetTraining(on) }

func TestStateTensorsAndLoadState(t *testing.T) {
	src := &toyNet{newToy(1, 2, 3, 4), newToy(5, 6)}
	src.A.Count = 7
	ts := StateTensors(src)
	want := []string{"a.num_batches_tracked", "a.running_mean", "a.weight", "b.0.num_batches_tracked", "b.0.running_mean", "b.0.weight"}
	if got := keys(ts); len(got) != len(want) {
		t.Fatalf("state names %v", got)
	}
	for _, n := range want {
		if ts[n] == nil {
			t.Fatalf("missing %s", n)
		}
	}
	if ts["a.num_batches_tracked"].DType != weights.I64 || len(ts["a.num_batches_tracked"].Shape) != 0 {
		t.Errorf("counter stored as %s %v, PyTorch uses an I64 scalar", ts["a.num_batches_tracked"].DType, ts["a.num_batches_tracked"].Shape)
	}

	// Through a file and back into a model with other values.
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveState(path, src, map[string]string{"arch": "toy"}); err != nil {
		t.Fatal(err)
	}
	dst := &toyNet{newToy(0, 0, 0, 0), newToy(0, 0)}
	wVar := dst.A.W
	if err := LoadStateFile(path, dst, true); err != nil {
		t.Fatal(err)
	}
	if dst.A.W != wVar {
		t.Error("LoadState replaced the parameter Var instead of filling it")
	}
	if sameBitsF32(dst.A.W.Value.Data, src.A.W.Value.Data) >= 0 || sameBitsF32(dst.B.W.Value.Data, src.B.W.Value.Data) >= 0 || dst.A.Count != 7 {
		t.Errorf("loaded %v %v count %d", dst.A.W.Value, dst.B.W.Value, dst.A.Count)
	}
	if dst.A.W.Name != "a.weight" {
		t.Errorf("StateOf did not stamp the name: %q", dst.A.W.Name)
	}
}

func TestLoadStateErrors(t *testing.T) {
	src := &toyNet{newToy(1, 2, 3, 4), newToy(5, 6)}
	ts := StateTensors(src)
	delete(ts, "b.0.weight")
	ts["c.weight"] = weights.FromFloat32(tensor.New(1))
	ts["a.weight"] = weights.FromFloat32(tensor.New(3, 2))

	dst := &toyNet{newToy(9, 9, 9, 9), newToy(9, 9)}
	err := LoadState(dst, ts, true)
	var se *StateError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *StateError", err)
	}
	for _, w := range []string{"1 missing keys: b.0.weight", "1 unexpected keys: c.weight", "a.weight: checkpoint shape [3 2], model shape [2 2]"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	// Nothing is copied when anything is wrong.
	if dst.A.Running.Data[0] != 0.5 || dst.B.W.Value.Data[0] != 9 {
		t.Error("failed LoadState changed the model")
	}

	// Non-strict: missing and unexpected keys are skipped, shape mismatches
	// still fail.
	if err := LoadState(dst, ts, false); err == nil || strings.Contains(err.Error(), "missing") {
		t.Errorf("non-strict with a shape mismatch: %v", err)
	}
	ts["a.weight"] = weights.FromFloat32(tensor.FromSlice([]float32{1, 1, 1, 1}, 2, 2))
	if err := LoadState(dst, ts, false); err != nil {
		t.Fatal(err)
	}
	if dst.A.W.Value.Data[0] != 1 || dst.B.W.Value.Data[0] != 9 {
		t.Error("non-strict load did not copy what was there")
	}
	missing, unexpected := DiffState(dst, ts)
	if len(missing) != 1 || missing[0] != "b.0.weight" || len(unexpected) != 1 || unexpected[0] != "c.weight" {
		t.Errorf("DiffState = %v, %v", missing, unexpected)
	}

	// Half-precision weights load by conversion; a float counter must be
	// integral.
	h, _ := weights.FromFloat32As(tensor.FromSlice([]float32{0.5, 0.25, 2, 4}, 2, 2), weights.F16)
	ts2 := StateTensors(src)
	ts2["a.weight"] = h
	ts2["a.num_batches_tracked"] = weights.FromFloat32(&tensor.Tensor{Shape: []int{}, Data: []float32{2.5}})
	if err := LoadState(dst, ts2, true); err == nil || !strings.Contains(err.Error(), "a.num_batches_tracked") {
		t.Errorf("fractional counter: %v", err)
	}
	ts2["a.num_batches_tracked"] = weights.FromFloat32(&tensor.Tensor{Shape: []int{}, Data: []float32{3}})
	if err := LoadState(dst, ts2, true); err != nil {
		t.Fatal(err)
	}
	if dst.A.W.Value.Data[1] != 0.25 || dst.A.Count != 3 {
		t.Errorf("F16 weight / float counter loaded as %v, %d", dst.A.W.Value.Data, dst.A.Count)
	}
}

func TestCopyStateAndEMA(t *testing.T) {
	online := &toyNet{newToy(1, 2, 3, 4), newToy(5, 6)}
	target := &toyNet{newToy(0, 0, 0, 0), newToy(0, 0)}
	if err := CopyState(target, online); err != nil {
		t.Fatal(err)
	}
	if target.A.W.Value.Data[3] != 4 {
		t.Fatal("CopyState")
	}
	ema, err := NewEMA(online, target, 0.9, 10)
	if err != nil {
		t.Fatal(err)
	}
	online.A.W.Value.Data[0] = 11 // target still 1
	online.A.Running.Data[1] = 42
	online.B.Count = 5
	m := ema.Update(0) // step 0 of the cosine schedule: the base momentum
	if m != 0.9 {
		t.Errorf("momentum at step 0 = %g", m)
	}
	// 0.9*1 + 0.1*11 = 2
	if got := target.A.W.Value.Data[0]; got < 2-1e-6 || got > 2+1e-6 {
		t.Errorf("EMA param = %g, want 2", got)
	}
	if target.A.W.Value.Data[1] != 2 {
		t.Errorf("unchanged param moved: %g", target.A.W.Value.Data[1])
	}
	if target.A.Running.Data[1] != 42 || target.B.Count != 5 {
		t.Error("buffers were not copied")
	}
	if ema.Momentum(10) != 1 || ema.Momentum(5) != 1-(0.1)*0.5 {
		t.Errorf("momentum schedule: %g %g", ema.Momentum(10), ema.Momentum(5))
	}

	other := &toyNet{newToy(1, 2), newToy(5, 6)}
	if _, err := NewEMA(online, other, 0.9, 10); err == nil || !strings.Contains(err.Error(), "a.weight") {
		t.Errorf("mismatched EMA pair: %v", err)
	}
}
