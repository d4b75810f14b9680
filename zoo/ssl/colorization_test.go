package ssl

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// testdata/colorization_golden.json comes from
// scripts/gen_colorization_golden.py (NumPy and PyTorch in float64 from
// float32 inputs): Lab conversions, the ab bin set (exact), soft
// encodings, rebalancing weights, annealed means and the loss with its
// gradients and one SGD step of the head, within goldenTol (1e-5 absolute
// + 1e-5 relative).

type colorGolden struct {
	Lab struct {
		RGB    goldenTensor `json:"rgb"`
		Lab    goldenTensor `json:"lab"`
		Gray   goldenTensor `json:"gray"`
		LabIn  goldenTensor `json:"lab_in"`
		RGBOut goldenTensor `json:"rgb_out"`
	} `json:"lab"`
	Bins struct {
		Cells  [][2]int `json:"cells"`
		Count  int      `json:"count"`
		Counts []struct {
			Faces, Solid, Bins int
		} `json:"counts"`
	} `json:"bins"`
	Soft struct {
		AB     goldenTensor `json:"ab"`
		Index  [][]int      `json:"index"`
		Weight goldenTensor `json:"weight"`
	} `json:"soft"`
	Rebalance struct {
		Counts, Smoothed, Weights goldenTensor
		WeightsLambda1            goldenTensor `json:"weights_lambda1"`
	} `json:"rebalance"`
	Anneal struct {
		Logits goldenTensor `json:"logits"`
		T      float64      `json:"t"`
		AB     goldenTensor `json:"ab"`
	} `json:"anneal"`
	Loss struct {
		Images, Features, Weights, Target goldenTensor
		Init                              map[string]goldenTensor `json:"init"`
		TargetShape                       [2]int                  `json:"target_shape"`
		Mask                              []float64               `json:"mask"`
		RowWeight                         goldenTensor            `json:"row_weight"`
		Input                             goldenTensor            `json:"input"`
		Mean, Std                         []float64
		Loss                              float64                 `json:"loss"`
		GradFeatures                      goldenTensor            `json:"grad_features"`
		Grads                             map[string]goldenTensor `json:"grads"`
		Optim                             struct {
			LR          float64 `json:"lr"`
			Momentum    float64 `json:"momentum"`
			WeightDecay float64 `json:"weight_decay"`
		} `json:"optim"`
		After map[string]goldenTensor `json:"after"`
	} `json:"loss"`
}

func loadColorGolden(t *testing.T) *colorGolden {
	t.Helper()
	return readGolden[colorGolden](t, "colorization")
}

// close64 is closeTo for float64 values; it returns the largest |diff|.
func close64(t *testing.T, what string, got, want []float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var worst float64
	for i, w := range want {
		d := math.Abs(got[i] - w)
		if math.IsNaN(got[i]) || d > goldenTol+goldenTol*math.Abs(w) {
			t.Errorf("%s element %d: got %.10g, want %.10g", what, i, got[i], w)
			return d
		}
		worst = max(worst, d)
	}
	return worst
}

// TestColorLabGolden: sRGB -> Lab, the grey of the same lightness, and
// Lab -> sRGB (unclipped) against NumPy, and the round trip.
func TestColorLabGolden(t *testing.T) {
	g := loadColorGolden(t).Lab
	var lab, gray, rgb []float64
	for i := range len(g.RGB.Data) / 3 {
		c := g.RGB.Data[3*i : 3*i+3]
		l, a, b := SRGBToLab(c[0], c[1], c[2])
		lab = append(lab, l, a, b)
		gray = append(gray, srgbGray(c[0], c[1], c[2]))
		r, gg, bb := LabToSRGB(l, a, b)
		for j, v := range []float64{r, gg, bb} {
			// 1e-7: the standard's two thresholds (0.04045 and 0.0031308)
			// do not meet exactly, which moves a colour right below
			// 0.04045 by 3e-8.
			if math.Abs(v-c[j]) > 1e-7 {
				t.Errorf("pixel %d %v: round trip gives %v", i, c, []float64{r, gg, bb})
				break
			}
		}
	}
	for i := range len(g.LabIn.Data) / 3 {
		c := g.LabIn.Data[3*i : 3*i+3]
		r, gg, bb := LabToSRGB(c[0], c[1], c[2])
		rgb = append(rgb, r, gg, bb)
	}
	dl := close64(t, "lab", lab, g.Lab.Data)
	dg := close64(t, "gray", gray, g.Gray.Data)
	dr := close64(t, "lab -> rgb", rgb, g.RGBOut.Data)
	t.Logf("max |diff|: Lab %.2g, grey %.2g, Lab -> sRGB %.2g", dl, dg, dr)
	// sRGB white is L 100 and greys have a = b = 0.
	if l, a, b := SRGBToLab(1, 1, 1); math.Abs(l-100) > 1e-4 || math.Abs(a) > 1e-4 || math.Abs(b) > 1e-4 {
		t.Errorf("white is Lab %g %g %g", l, a, b)
	}
}

// deriveABBins finds the ab cells that sRGB colours reach, as the script
// does: every face of the RGB cube on a faces-point grid a side and the
// solid cube on a solid-point grid.
func deriveABBins(faces, solid int) map[[2]int]bool {
	hit := map[[2]int]bool{}
	add := func(r, g, b float64) {
		_, a, bb := SRGBToLab(r, g, b)
		hit[[2]int{int(math.Floor(a/ABGrid+0.5)) * ABGrid, int(math.Floor(bb/ABGrid+0.5)) * ABGrid}] = true
	}
	at := func(i, n int) float64 { return float64(i) / float64(n-1) }
	for i := range faces {
		for j := range faces {
			u, v := at(i, faces), at(j, faces)
			for _, e := range []float64{0, 1} {
				add(e, u, v)
				add(u, e, v)
				add(u, v, e)
			}
		}
	}
	for i := range solid {
		for j := range solid {
			for k := range solid {
				add(at(i, solid), at(j, solid), at(k, solid))
			}
		}
	}
	return hit
}

// TestABBinsGolden: the bin table is the script's set exactly, in order,
// and the Go conversion derives the same set.
func TestABBinsGolden(t *testing.T) {
	g := loadColorGolden(t).Bins
	bins := ABBins()
	if NumABBins != g.Count || len(g.Cells) != g.Count {
		t.Fatalf("%d bins, the script %d (%d cells)", NumABBins, g.Count, len(g.Cells))
	}
	for i, c := range g.Cells {
		if bins[i] != [2]float64{float64(c[0]), float64(c[1])} {
			t.Fatalf("bin %d is %v, the script's %v", i, bins[i], c)
		}
	}
	for _, c := range g.Counts {
		t.Logf("script: faces %d a side + solid %d a side: %d bins", c.Faces, c.Solid, c.Bins)
	}
	hit := deriveABBins(257, 33)
	if len(hit) != NumABBins {
		t.Errorf("Go derivation at 257/33 finds %d cells, want %d", len(hit), NumABBins)
	}
	for _, c := range bins {
		if !hit[[2]int{int(c[0]), int(c[1])}] {
			t.Errorf("bin %v is not reached by the Go derivation", c)
		}
	}
}

// TestSoftEncodingGolden: the 5 nearest bins in order and their weights.
func TestSoftEncodingGolden(t *testing.T) {
	g := loadColorGolden(t).Soft
	var got []float64
	for i, want := range g.Index {
		idx, w := softEncode(g.AB.Data[2*i], g.AB.Data[2*i+1])
		for j, q := range idx {
			if int(q) != want[j] {
				t.Errorf("ab %v: bins %v, want %v", g.AB.Data[2*i:2*i+2], idx, want)
				break
			}
		}
		got = append(got, w[:]...)
	}
	t.Logf("weights max |diff| %.2g", close64(t, "weights", got, g.Weight.Data))
}

// TestRebalanceWeightsGolden: the weights of a toy distribution, λ = 1
// giving 1 everywhere, an empty distribution giving 1, and bad input.
func TestRebalanceWeightsGolden(t *testing.T) {
	g := loadColorGolden(t).Rebalance
	w, err := RebalanceWeights(g.Counts.Data, RebalanceLambda)
	if err != nil {
		t.Fatal(err)
	}
	d := close64(t, "weights", w, g.Weights.Data)
	w1, err := RebalanceWeights(g.Counts.Data, 1)
	if err != nil {
		t.Fatal(err)
	}
	d1 := close64(t, "weights λ=1", w1, g.WeightsLambda1.Data)
	t.Logf("max |diff|: λ 0.5 %.2g, λ 1 %.2g", d, d1)
	var mean float64
	for i, v := range w {
		mean += g.Smoothed.Data[i] * v
	}
	if math.Abs(mean-1) > 1e-9 {
		t.Errorf("E_p̃[w] = %g, want 1", mean)
	}
	if w0, _ := RebalanceWeights(make([]float64, NumABBins), 0.5); slices.ContainsFunc(w0, func(v float64) bool { return v != 1 }) {
		t.Errorf("nothing counted: weights %v, want 1", w0[:4])
	}
	neg := make([]float64, NumABBins)
	neg[3] = -1
	for _, c := range []struct {
		p      []float64
		lambda float64
	}{{make([]float64, 10), 0.5}, {neg, 0.5}, {g.Counts.Data, 0}, {g.Counts.Data, 1.5}} {
		if _, err := RebalanceWeights(c.p, c.lambda); err == nil {
			t.Errorf("%d bins, λ %g: no error", len(c.p), c.lambda)
		}
	}
}

// TestAnnealedMeanGolden: the annealed mean of fixed logits.
func TestAnnealedMeanGolden(t *testing.T) {
	g := loadColorGolden(t).Anneal
	ab, err := AnnealedMean(g.Logits.tensor(), g.T)
	if err != nil {
		t.Fatal(err)
	}
	if err := closeTo(ab.Data, g.AB.Data); err != nil {
		t.Error(err)
	}
	t.Logf("max |diff| %.2g", maxAbsDiff(ab.Data, g.AB.Data))
	if _, err := AnnealedMean(tensor.New(2, 5), 0.38); err == nil {
		t.Error("5 classes: no error")
	}
	if _, err := AnnealedMean(g.Logits.tensor(), 0); err == nil {
		t.Error("temperature 0: no error")
	}
}

// TestColorizationLossGolden: targets, grey input, loss, gradients and one
// SGD step of the head on fixed feature maps against PyTorch.
func TestColorizationLossGolden(t *testing.T) {
	g := loadColorGolden(t).Loss
	images := g.Images.tensor()
	n := images.Shape[0]
	tg := targetsOf(images, 4)
	if tg.th != g.TargetShape[0] || tg.tw != g.TargetShape[1] {
		t.Fatalf("target grid %dx%d, want %v", tg.th, tg.tw, g.TargetShape)
	}
	for i, c := range tg.colour {
		if c != (g.Mask[i] == 1) {
			t.Errorf("image %d colour %v, want mask %g", i, c, g.Mask[i])
		}
	}
	m := n * tg.th * tg.tw
	dense := tensor.New(m, NumABBins)
	for r := range m {
		for j := range SoftNeighbours {
			dense.Data[r*NumABBins+int(tg.idx[r*SoftNeighbours+j])] = tg.w[r*SoftNeighbours+j]
		}
	}
	if err := closeTo(dense.Data, g.Target.Data); err != nil {
		t.Errorf("soft targets: %v", err)
	}
	w32 := make([]float32, NumABBins)
	for i, v := range g.Weights.Data {
		w32[i] = float32(v)
	}
	targets := tensor.New(m, NumABBins)
	tg.softTargets(targets, w32)
	for r := range m {
		var s float64
		for _, v := range targets.Data[r*NumABBins : (r+1)*NumABBins] {
			s += float64(v)
		}
		if math.Abs(s-g.RowWeight.Data[r]) > goldenTol*(1+g.RowWeight.Data[r]) {
			t.Errorf("target pixel %d weight %g, want %g", r, s, g.RowWeight.Data[r])
		}
	}
	input := tensor.New(images.Shape...)
	grayInput(input, images, g.Mean, g.Std)
	if err := closeTo(input.Data, g.Input.Data); err != nil {
		t.Errorf("grey input: %v", err)
	}

	d := g.Features.Shape[1]
	head := nn.NewConv2d(d, NumABBins, 1, autograd.ConvParams{}, true, rand.New(rand.NewPCG(1, 1)))
	mod := group{{"head", head, true}}
	init := map[string]*weights.Tensor{}
	for name, v := range g.Init {
		init[name] = weights.FromFloat32(v.tensor())
	}
	if err := nn.LoadState(mod, init, true); err != nil {
		t.Fatal(err)
	}
	params := nn.StateOf(mod).Params
	loss, worst := headLossGolden(t, g.Features, params, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return ColorizationLoss(tp, x, head, autograd.Const(targets), tg.th, tg.tw)
	}, g.Loss, g.GradFeatures, g.Grads)
	o := g.Optim
	nn.NewSGD(params, nn.SGDConfig{LR: float32(o.LR), Momentum: float32(o.Momentum), WeightDecay: float32(o.WeightDecay)}).Step()
	var worstStep float64
	for _, p := range params {
		if err := closeTo(p.Var.Value.Data, g.After[p.Name].Data); err != nil {
			t.Errorf("%s after the step: %v", p.Name, err)
		}
		worstStep = max(worstStep, maxAbsDiff(p.Var.Value.Data, g.After[p.Name].Data))
	}
	t.Logf("loss %.6g |diff| %.2g (relative %.2g); gradients max |diff| %.2g; head after one SGD step max |diff| %.2g; targets %.2g, input %.2g",
		g.Loss, math.Abs(float64(loss)-g.Loss), math.Abs(float64(loss)-g.Loss)/g.Loss, worst, worstStep,
		maxAbsDiff(dense.Data, g.Target.Data), maxAbsDiff(input.Data, g.Input.Data))
}

// TestBilinearMatrix: rows sum to 1, the identity at equal sizes, and
// the corners of a 2 -> 4 upsampling as torch's.
func TestBilinearMatrix(t *testing.T) {
	for _, c := range [][2]int{{2, 3}, {2, 4}, {4, 8}, {7, 56}, {5, 5}, {8, 3}} {
		m := bilinearMatrix(c[0], c[1])
		for d := range c[1] {
			var s float64
			for _, v := range m[d*c[0] : (d+1)*c[0]] {
				s += v
			}
			if math.Abs(s-1) > 1e-12 {
				t.Errorf("%v row %d sums to %g", c, d, s)
			}
		}
	}
	if m := bilinearMatrix(3, 3); !slices.Equal(m, []float64{1, 0, 0, 0, 1, 0, 0, 0, 1}) {
		t.Errorf("3 -> 3: %v", m)
	}
	// torch: interpolate([0, 1], size=4) = [0, 0.25, 0.75, 1].
	m := bilinearMatrix(2, 4)
	for d, want := range []float64{0, 0.25, 0.75, 1} {
		if got := m[2*d+1]; got != want {
			t.Errorf("2 -> 4 output %d: %g, want %g", d, got, want)
		}
	}
}

// colourViews are n random sRGB images [n, 3, size, size] in [0, 1]:
// a colour square on a background of another colour, with noise.
func colourViews(seed uint64, n, size int) []*tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 4))
	v := tensor.New(n, 3, size, size)
	hw := size * size
	for i := range n {
		var fg, bg [3]float64
		for c := range 3 {
			fg[c], bg[c] = rng.Float64(), rng.Float64()
		}
		y0, x0 := rng.IntN(size/2), rng.IntN(size/2)
		for c := range 3 {
			for y := range size {
				for x := range size {
					p := bg[c]
					if y >= y0 && y < y0+size/2 && x >= x0 && x < x0+size/2 {
						p = fg[c]
					}
					v.Data[(i*3+c)*hw+y*size+x] = float32(min(1, max(0, p+rng.NormFloat64()*0.05)))
				}
			}
		}
	}
	return []*tensor.Tensor{v}
}

// smallColorization is Colorization on enc with a constant-rate AdamW.
func smallColorization(t *testing.T, enc Encoder, priorSteps int, seed uint64) *Colorization {
	t.Helper()
	return smallColorizationWith(t, enc, priorSteps, seed, OptimConfig{Name: "adamw", LR: 3e-3, Beta1: 0.9, Beta2: 0.99})
}

func smallColorizationWith(t *testing.T, enc Encoder, priorSteps int, seed uint64, oc OptimConfig) *Colorization {
	t.Helper()
	cfg := DefaultColorizationConfig(testBatch, 2, 3)
	cfg.PriorSteps = priorSteps
	cfg.Optim = oc
	m, err := NewColorization(cfg, enc, rand.New(rand.NewPCG(seed, 3)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestColorizationStepsAndResume: the method trains a ResNet and a ViT;
// the prior is counted for PriorSteps steps and then fixed; a checkpoint
// carries the prior, weights and bins, so a resumed step is the
// uninterrupted one; bad views and a foreign bin set are errors.
func TestColorizationStepsAndResume(t *testing.T) {
	views := colourViews(5, testBatch, 16)
	a := smallColorization(t, tinyResNet(t, 1), 2, 1)
	before := slices.Clone(paramByName(t, a, "backbone.conv1.weight").Value.Data)
	tp := autograd.NewTape()
	var priors [][]float32
	for s := range 3 {
		l, err := a.Step(tp, views)
		if err != nil {
			t.Fatal(err)
		}
		if !(l > 0) || math.IsInf(float64(l), 0) {
			t.Fatalf("step %d loss %g", s, l)
		}
		p, px := a.Prior()
		priors = append(priors, p)
		want := int64(min(s+1, 2) * testBatch * 16) // 4x4 targets a colour image
		if px != want {
			t.Errorf("step %d: prior counts %d pixels, want %d", s, px, want)
		}
	}
	// The same views twice: the distribution is unchanged by the second
	// step's counts (but for rounding) and frozen after.
	if err := closeToTol(priors[1], toFloat64(priors[0]), 1e-6); err != nil || !slices.Equal(priors[1], priors[2]) {
		t.Errorf("the prior of one batch seen twice moved (%v), or moved after the prior steps", err)
	}
	var sum float64
	for _, v := range priors[2] {
		sum += float64(v)
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Errorf("prior sums to %g", sum)
	}
	w := a.Weights()
	if !slices.ContainsFunc(w, func(v float32) bool { return v != 1 }) {
		t.Error("rebalancing weights are still 1 after the prior steps")
	}
	if slices.Equal(before, paramByName(t, a, "backbone.conv1.weight").Value.Data) {
		t.Error("the backbone did not move")
	}
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	if err := nn.SaveCheckpoint(path, a, a.Optimizer(), a.Steps(), nil, nil); err != nil {
		t.Fatal(err)
	}
	f, err := weights.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ab_bins", "ab_prior", "ab_prior_pixels", "ab_weights", "head.weight", "head.bias"} {
		if _, ok := f.Tensors[name]; !ok {
			t.Errorf("checkpoint lacks %s: %v", name, f.Names())
		}
	}
	b := smallColorization(t, tinyResNet(t, 2), 2, 2)
	if _, _, err := nn.LoadCheckpoint(path, b, b.Optimizer(), nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Weights(), w) || b.Steps() != 3 {
		t.Fatalf("restored weights equal %v, step %d", slices.Equal(b.Weights(), w), b.Steps())
	}
	next := colourViews(6, testBatch, 16)
	la, err := a.Step(tp, next)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Step(tp, next)
	if err != nil {
		t.Fatal(err)
	}
	if la != lb {
		t.Errorf("loss after resume %g, uninterrupted %g", lb, la)
	}
	if o, _, _ := stateDiff(t, a, b); o != 0 {
		t.Errorf("resumed state differs by %g", o)
	}

	// A ViT: patch tokens on their 4x4 grid are the targets' grid.
	v := smallColorization(t, newTinyViT(t, 1), 1, 1)
	for _, l := range trainFixed(t, v, colourViews(7, 4, 16), 2) {
		if !(l > 0) || math.IsInf(float64(l), 0) {
			t.Fatalf("ViT loss %g", l)
		}
	}

	nan := colourViews(5, testBatch, 16)
	nan[0].Data[3] = float32(math.NaN())
	for _, c := range []struct {
		name  string
		views []*tensor.Tensor
		want  string
	}{
		{"two views", append(colourViews(5, testBatch, 16), colourViews(6, testBatch, 16)...), "got 2 views, want 1"},
		{"normalised", randomViews(5, 1, testBatch, 16), "before normalisation"},
		{"grey channel", []*tensor.Tensor{tensor.New(testBatch, 1, 16, 16)}, "needs RGB images"},
		{"nan", nan, "is NaN"},
	} {
		if _, err := a.Step(tp, c.views); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	a.bins.Data[5]++
	if _, err := a.Step(tp, views); err == nil || !strings.Contains(err.Error(), "other classes") {
		t.Errorf("foreign bins: %v", err)
	}
	a.bins.Data[5]--
	if _, err := NewColorization(DefaultColorizationConfig(8, 1, 1), newConvEncoder(4, rand.New(rand.NewPCG(1, 1))), nil); err == nil ||
		!strings.Contains(err.Error(), "dense feature map") {
		t.Errorf("an encoder without a feature map: %v", err)
	}
}

func toFloat64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// TestColorizationPredictAB: the decoded colours' grid, range and the
// training mode left as it was.
func TestColorizationPredictAB(t *testing.T) {
	m := smallColorization(t, tinyResNet(t, 1), 1, 1)
	ab, err := m.PredictAB(colourViews(3, 3, 18)[0], AnnealTemperature)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ab.Shape, []int{3, 2, 5, 5}) {
		t.Fatalf("ab shape %v, want [3 2 5 5]", ab.Shape)
	}
	for _, v := range ab.Data {
		if !(math.Abs(float64(v)) <= 110) {
			t.Fatalf("ab value %g outside the bins' range", v)
		}
	}
	if _, err := m.PredictAB(tensor.New(2, 3, 8), 0.38); err == nil {
		t.Error("3-D images: no error")
	}
	if _, err := m.Step(autograd.NewTape(), colourViews(4, testBatch, 16)); err != nil {
		t.Fatalf("training after PredictAB: %v", err)
	}
}

// TestColorizationDataParallel: 2 goroutine ranks, each stepping on half
// of every batch, end where one rank on the whole batch ends, prior and
// weights included (the ranks sum their bin counts). SGD, since under
// Adam the zero-initialised BatchNorm biases turn rounding noise into
// whole steps (as for MAE in TestDataParallelMatchesOneRank).
func TestColorizationDataParallel(t *testing.T) {
	const k, steps = 2, 3
	oc := OptimConfig{Name: "sgd", LR: 0.05, Momentum: 0.9}
	one := smallColorizationWith(t, tinyResNet(t, 1), 2, 1, oc)
	ranks := make([]*Colorization, k)
	for r := range ranks {
		ranks[r] = smallColorizationWith(t, tinyResNet(t, 1), 2, 1, oc)
	}
	views := make([][]*tensor.Tensor, steps)
	for s := range views {
		views[s] = colourViews(uint64(30+s), testBatch, 16)
	}
	stepOneAndRanks(t, one, []Method{ranks[0], ranks[1]}, views)
	if _, px := ranks[0].Prior(); px != one.priorPixels {
		t.Errorf("rank 0 counted %d prior pixels, one rank %d", px, one.priorPixels)
	}
	overall, worst, name := stateDiff(t, one, ranks[0])
	t.Logf("colorization, %d ranks against 1 after %d steps: %.2g of the largest weight; worst tensor %s at %.2g of its own", k, steps, overall, name, worst)
	if overall > 1e-3 || worst > 3e-2 {
		t.Errorf("the %d-rank run left the 1-rank run's state: %.3g overall (limit 1e-3), %s %.3g (limit 3e-2)", k, overall, name, worst)
	}
	if o, _, _ := stateDiff(t, ranks[0], ranks[1]); o != 0 {
		t.Errorf("ranks 0 and 1 hold different state: %.3g overall", o)
	}
}

// colourSquares is squares in colour: a saturated square (red top-left for
// class 0, blue bottom-right for class 1) on a noisy green-grey ground.
func colourSquares(n int, seed uint64) *data.Images {
	rng := rand.New(rand.NewPCG(seed, 1))
	const side = 16
	ds := &data.Images{Name: "squares", N: n, C: 3, H: side, W: side, Pix: make([]uint8, n*3*side*side), Labels: make([]int, n),
		Classes: []string{"top-left", "bottom-right"}}
	for i := range n {
		c := i % 2
		ds.Labels[i] = c
		for r := range side {
			for col := range side {
				px := [3]int{80 + rng.IntN(40), 120 + rng.IntN(40), 80 + rng.IntN(40)}
				if c == 0 && r < 8 && col < 8 {
					px = [3]int{200 + rng.IntN(50), rng.IntN(40), rng.IntN(40)}
				} else if c == 1 && r >= 8 && col >= 8 {
					px = [3]int{rng.IntN(40), rng.IntN(40), 200 + rng.IntN(50)}
				}
				for ch, v := range px {
					ds.Pix[((i*3+ch)*side+r)*side+col] = uint8(v)
				}
			}
		}
	}
	return ds
}

// TestTrainColorization: a short run through Train on coloured squares
// lowers the loss, keeps the head and the prior in the checkpoint and only
// the backbone in FinalFile, and resumes; grey images and the CIFAR
// recipe are refused.
func TestTrainColorization(t *testing.T) {
	cfg := tinyConfig(t, "colorization")
	cfg.Epochs, cfg.LR = 20, 1e-2
	var losses []float32
	res, err := Train(t.Context(), cfg, colourSquares(16, 2), TrainHooks{Step: func(s TrainStep) { losses = append(losses, s.Loss) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 40 || len(losses) != 40 {
		t.Fatalf("%d steps, %d losses", res.Steps, len(losses))
	}
	// Batches differ much in their share of rare, heavily weighted
	// colours, so the loss is compared over four steps.
	var first, last float32
	for i := range 4 {
		first += losses[i] / 4
		last += losses[len(losses)-4+i] / 4
	}
	t.Logf("losses %v", losses)
	t.Logf("mean of the first four steps %.4g, of the last four %.4g (%.0f%% lower)", first, last, 100*(1-last/first))
	if !(last < 0.85*first) {
		t.Errorf("loss fell from %g to %g only", first, last)
	}
	c := res.Method.(*Colorization)
	if _, px := c.Prior(); px != 2*8*16 {
		t.Errorf("the prior counts %d pixels, want one epoch's %d", px, 2*8*16)
	}
	f, err := weights.Read(res.Final)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(nn.StateTensors(c.Backbone())) {
		t.Errorf("%s holds %d tensors, the backbone %d (the head and prior must stay out)", res.Final, len(f.Tensors), len(nn.StateTensors(c.Backbone())))
	}
	ck, err := weights.Read(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	saved, ok := ck.Tensors["ab_weights"]
	if !ok {
		t.Fatalf("checkpoint has no ab_weights: %v", ck.Names())
	}
	if sw, _ := saved.Float32(); !slices.Equal(sw.Data, c.Weights()) {
		t.Error("the checkpoint's weights are not the method's")
	}
	cfg.Resume = res.Checkpoint
	again, err := Train(t.Context(), cfg, colourSquares(16, 2), TrainHooks{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if again.Steps != 40 || !slices.Equal(again.Method.(*Colorization).Weights(), c.Weights()) {
		t.Error("the resumed run has another step or other weights")
	}
	for _, c := range []struct {
		name string
		edit func(*TrainConfig)
		ds   data.Dataset
		want string
	}{
		{"grey", func(*TrainConfig) {}, squares(16, 2), "needs colour images"},
		{"cifar recipe", func(c *TrainConfig) { c.Recipe = RecipeCIFAR }, colourSquares(16, 2), "Colorization has the paper recipe only"},
	} {
		cc := tinyConfig(t, "colorization")
		c.edit(&cc)
		if _, err := Train(t.Context(), cc, c.ds, TrainHooks{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestNewColorization: the paper's recipe scaled to the run, the run's
// normalisation and rate reaching the config, and bad configs refused.
func TestNewColorization(t *testing.T) {
	run := Run{Batch: 80, StepsPerEpoch: 10, Epochs: 3}
	m, err := New("colorization", tinyResNet(t, 1), run, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Configuration().(ColorizationConfig)
	if o := c.Optim; o.Name != "adamw" || math.Abs(o.LR-6e-5) > 1e-12 || math.Abs(o.FinalLR-6e-6) > 1e-12 || o.Beta2 != 0.99 || o.TotalSteps != 30 ||
		c.PriorSteps != 10 || c.Stride != 4 || c.Lambda != 0.5 || c.Mean[0] != 0.485 {
		t.Errorf("paper recipe %+v", c)
	}
	if OptimizerName(m) != "AdamW" {
		t.Errorf("optimizer %s", OptimizerName(m))
	}
	run.Mean, run.Std, run.LR = []float64{0.5, 0.4, 0.3}, []float64{0.2, 0.2, 0.2}, 1e-3
	m, err = New("colorization", tinyResNet(t, 1), run, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c = m.Configuration().(ColorizationConfig)
	if !slices.Equal(c.Mean, run.Mean) || !slices.Equal(c.Std, run.Std) || c.Optim.LR != 1e-3 || math.Abs(c.Optim.FinalLR-1e-4) > 1e-12 {
		t.Errorf("run options not applied: %+v", c)
	}
	for _, c := range []struct {
		name string
		edit func(*ColorizationConfig)
		want string
	}{
		{"stride", func(c *ColorizationConfig) { c.Stride = 0 }, "stride 0"},
		{"lambda", func(c *ColorizationConfig) { c.Lambda = 0 }, "λ 0"},
		{"prior", func(c *ColorizationConfig) { c.PriorSteps = -1 }, "-1 prior steps"},
		{"norm", func(c *ColorizationConfig) { c.Mean = c.Mean[:1] }, "1 means and 3 stds"},
		{"std", func(c *ColorizationConfig) { c.Std = []float64{1, 0, 1} }, "positive std"},
		{"optim", func(c *ColorizationConfig) { c.Optim.Name = "rmsprop" }, "unknown optimizer"},
	} {
		cfg := DefaultColorizationConfig(8, 2, 2)
		c.edit(&cfg)
		if _, err := NewColorization(cfg, tinyResNet(t, 1), rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
