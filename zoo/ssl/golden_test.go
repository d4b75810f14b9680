package ssl

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
)

// readGolden decodes testdata/NAME_golden.json, the fixture that
// scripts/gen_NAME_golden.py writes with PyTorch or NumPy.
func readGolden[T any](t *testing.T, name string) *T {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name + "_golden.json")
	if err != nil {
		t.Fatalf("read fixture (regenerate with /usr/bin/python3 scripts/gen_%s_golden.py): %v", name, err)
	}
	var g T
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("testdata/%s_golden.json: %v", name, err)
	}
	return &g
}

// headLossGolden runs a head's loss over the features x [N, D] (a fresh
// parameter from the fixture's), backpropagates it, and checks the loss,
// dL/dx and every parameter's gradient against the fixture's. It returns
// the loss and the largest gradient |diff|, for the log.
func headLossGolden(t *testing.T, features goldenTensor, params []nn.Param, lossFn func(tp *autograd.Tape, x *autograd.Var) *autograd.Var,
	wantLoss float64, wantGradX goldenTensor, wantGrads map[string]goldenTensor) (loss float32, worst float64) {
	t.Helper()
	tp := autograd.NewTape()
	x := autograd.NewParam("features", features.tensor())
	var l *autograd.Var
	if err := autograd.Catch(func() { l = lossFn(tp, x) }); err != nil {
		t.Fatal(err)
	}
	if err := tp.Backward(l); err != nil {
		t.Fatal(err)
	}
	if err := closeTo(l.Value.Data, []float64{wantLoss}); err != nil {
		t.Errorf("loss: %v", err)
	}
	if err := closeTo(x.Grad.Data, wantGradX.Data); err != nil {
		t.Errorf("grad features: %v", err)
	}
	worst = maxAbsDiff(x.Grad.Data, wantGradX.Data)
	for _, p := range params {
		want, ok := wantGrads[p.Name]
		if !ok {
			t.Errorf("no gradient for %s in the fixture", p.Name)
			continue
		}
		if err := closeTo(p.Var.Grad.Data, want.Data); err != nil {
			t.Errorf("grad %s: %v", p.Name, err)
		}
		worst = max(worst, maxAbsDiff(p.Var.Grad.Data, want.Data))
	}
	return l.Value.Data[0], worst
}
