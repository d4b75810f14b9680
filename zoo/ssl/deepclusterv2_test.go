package ssl

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// testdata/deepclusterv2_golden.json comes from
// scripts/gen_deepclusterv2_golden.py: the reference's spherical k-means
// from fixed centroids (with a cluster that stays empty), the loss and
// its gradient for fixed embeddings, prototypes and labels, and one SGD
// step of the projection head through the method (PyTorch). Assignments
// must match exactly, values within goldenTol (1e-5 absolute + 1e-5
// relative).
type dc2Golden struct {
	KMeans struct {
		X          goldenTensor `json:"x"`
		Init       goldenTensor `json:"init"`
		K          int          `json:"k"`
		Iterations int          `json:"iterations"`
		Empty      int          `json:"empty"`
		Assign     []int        `json:"assign"`
		Centroids  goldenTensor `json:"centroids"`
		Final      float64      `json:"final"`
	} `json:"kmeans"`
	Loss struct {
		Z           goldenTensor   `json:"z"`
		Prototypes  []goldenTensor `json:"prototypes"`
		Labels      [][]int        `json:"labels"`
		Crops       int            `json:"crops"`
		Temperature float64        `json:"temperature"`
		Loss        float64        `json:"loss"`
		Grad        goldenTensor   `json:"grad"`
	} `json:"loss"`
	Step struct {
		Features    goldenTensor            `json:"features"`
		Crops       int                     `json:"crops"`
		Hidden      int                     `json:"hidden"`
		Dim         int                     `json:"dim"`
		Prototypes  []goldenTensor          `json:"prototypes"`
		Labels      [][]int                 `json:"labels"`
		LR          float64                 `json:"lr"`
		Momentum    float64                 `json:"momentum"`
		WeightDecay float64                 `json:"weight_decay"`
		Temperature float64                 `json:"temperature"`
		Init        map[string]goldenTensor `json:"init"`
		Loss        float64                 `json:"loss"`
		Final       map[string]goldenTensor `json:"final"`
		Bank        goldenTensor            `json:"bank"`
	} `json:"step"`
}

func loadDeepClusterV2Golden(t *testing.T) *dc2Golden {
	t.Helper()
	return readGolden[dc2Golden](t, "deepclusterv2")
}

// repeatLabels is each image's label for every crop, crop by crop, with
// the fixture's -100 as autograd.IgnoreIndex.
func repeatLabels(labels []int, crops int) []int {
	out := make([]int, 0, crops*len(labels))
	for range crops {
		out = append(out, labels...)
	}
	return out
}

func TestDeepClusterV2KMeansGolden(t *testing.T) {
	g := loadDeepClusterV2Golden(t).KMeans
	n, d := g.X.Shape[0], g.X.Shape[1]
	res, err := sphericalKMeans(float64sTo32(g.X.Data), n, d, float64sTo32(g.Init.Data), g.K, g.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Assign, g.Assign) {
		t.Fatalf("assignments %v, want %v", res.Assign, g.Assign)
	}
	if slices.Contains(res.Assign, g.Empty) {
		t.Fatalf("cluster %d should stay empty", g.Empty)
	}
	if err := closeTo(res.Centroids, g.Centroids.Data); err != nil {
		t.Fatalf("centroids: %v", err)
	}
	if math.Abs(res.Final-g.Final) > goldenTol*(1+g.Final) {
		t.Fatalf("final objective %.8g, want %.8g", res.Final, g.Final)
	}
	t.Logf("assignments exact; centroids within %.2g of PyTorch (the empty cluster kept its centroid); objective %.6g against %.6g",
		maxAbsDiff(res.Centroids, g.Centroids.Data), res.Final, g.Final)
	if _, err := sphericalKMeans(make([]float32, 4*d), 4, d, make([]float32, 5*d), 5, 1); err == nil {
		t.Error("more clusters than rows: no error")
	}
}

func TestDeepClusterV2LossGolden(t *testing.T) {
	g := loadDeepClusterV2Golden(t).Loss
	tp := autograd.NewTape()
	z := autograd.NewParam("z", g.Z.tensor())
	var protos []*autograd.Var
	var targets [][]int
	for h, p := range g.Prototypes {
		protos = append(protos, autograd.Const(p.tensor()))
		targets = append(targets, repeatLabels(g.Labels[h], g.Crops))
	}
	loss, err := DeepClusterV2Loss(tp, z, protos, targets, float32(g.Temperature), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Backward(loss); err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(float64(loss.Value.Data[0]) - g.Loss); d > goldenTol*(1+g.Loss) {
		t.Fatalf("loss %.8g, want %.8g", loss.Value.Data[0], g.Loss)
	}
	if err := closeTo(z.Grad.Data, g.Grad.Data); err != nil {
		t.Fatalf("gradient: %v", err)
	}
	t.Logf("loss within %.2g, gradient within %.2g of PyTorch", math.Abs(float64(loss.Value.Data[0])-g.Loss), maxAbsDiff(z.Grad.Data, g.Grad.Data))
	got := loss.Value.Data[0]
	tp.Reset()

	// Divisors: each head's own count gives the same loss; twice the
	// count (a second rank with as many rows) half of it.
	var own, twice []float64
	for _, tg := range targets {
		c := 0
		for _, v := range tg {
			if v != autograd.IgnoreIndex {
				c++
			}
		}
		own, twice = append(own, float64(c)), append(twice, 2*float64(c))
	}
	for _, c := range []struct {
		div  []float64
		want float32
	}{{own, got}, {twice, got / 2}} {
		l, err := DeepClusterV2Loss(tp, z, protos, targets, float32(g.Temperature), c.div)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(l.Value.Data[0]-c.want)) > 1e-6 {
			t.Errorf("divisors %v: loss %g, want %g", c.div, l.Value.Data[0], c.want)
		}
		tp.Reset()
	}
	// Nothing labelled is a zero loss, not NaN.
	none := [][]int{make([]int, len(targets[0])), make([]int, len(targets[1]))}
	for _, tg := range none {
		for i := range tg {
			tg[i] = autograd.IgnoreIndex
		}
	}
	if l, err := DeepClusterV2Loss(tp, z, protos, none, 0.1, nil); err != nil || l.Value.Data[0] != 0 {
		t.Errorf("no labelled row: loss %v, %v; want 0", l, err)
	}
	tp.Reset()
	for name, c := range map[string]struct {
		targets [][]int
		temp    float32
		div     []float64
	}{
		"heads":       {targets[:1], 0.1, nil},
		"temperature": {targets, 0, nil},
		"range":       {[][]int{repeatLabels([]int{0, 9, 0, 0}, g.Crops), targets[1]}, 0.1, nil},
		"rows":        {[][]int{targets[0][:3], targets[1]}, 0.1, nil},
		"divisors":    {targets, 0.1, []float64{1}},
	} {
		if _, err := DeepClusterV2Loss(tp, z, protos, c.targets, c.temp, c.div); err == nil {
			t.Errorf("%s: no error", name)
		}
		tp.Reset()
	}
}

// setStateFrom copies named tensors into m's parameters and buffers.
func setStateFrom(t *testing.T, m nn.Module, ts map[string]goldenTensor) {
	t.Helper()
	s := nn.StateOf(m)
	set := 0
	for _, p := range s.Params {
		if g, ok := ts[p.Name]; ok {
			copy(p.Var.Value.Data, float64sTo32(g.Data))
			set++
		}
	}
	for _, b := range s.Buffers {
		if g, ok := ts[b.Name]; ok && b.T != nil {
			copy(b.T.Data, float64sTo32(g.Data))
			set++
		}
	}
	if set != len(ts) {
		t.Fatalf("set %d of the fixture's %d tensors", set, len(ts))
	}
}

// TestDeepClusterV2StepGolden: one Step on the pooled features of 3 crops
// (the backbone is the identity) against PyTorch: the loss, the
// projection head after one SGD step, untouched prototypes and the global
// crops' embeddings in the images' rows of the memory bank.
func TestDeepClusterV2StepGolden(t *testing.T) {
	g := loadDeepClusterV2Golden(t).Step
	feat := g.Features.Shape[1]
	b := g.Features.Shape[0] / g.Crops
	var ks []int
	for _, p := range g.Prototypes {
		ks = append(ks, p.Shape[0])
	}
	const images = 6
	cfg := DeepClusterV2Config{ProjHidden: g.Hidden, ProjDim: g.Dim, Prototypes: ks, Temperature: float32(g.Temperature),
		Iterations: 1, GlobalCrops: 2, Images: images,
		Optim: OptimConfig{Name: "sgd", LR: g.LR, Momentum: g.Momentum, WeightDecay: g.WeightDecay}}
	m, err := NewDeepClusterV2(cfg, flatEncoder{feat}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	setStateFrom(t, m.Projector, g.Init)
	for h, p := range m.Prototypes {
		copy(p.Weight.Value.Data, float64sTo32(g.Prototypes[h].Data))
	}
	idx := []int{5, 0, 3, 1}
	for h, labels := range g.Labels {
		for r, l := range labels {
			m.labels.Data[h*images+idx[r]] = float32(max(l, -1))
		}
	}
	m.epoch = 0
	views := make([]*tensor.Tensor, g.Crops)
	x := float64sTo32(g.Features.Data)
	for c := range views {
		views[c] = tensor.FromSlice(slices.Clone(x[c*b*feat:(c+1)*b*feat]), b, feat, 1, 1)
	}
	tp := autograd.NewTape()
	m.setBatchIndices(idx)
	loss, err := m.Step(tp, views)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(loss)-g.Loss) > goldenTol*(1+g.Loss) {
		t.Fatalf("loss %.8g, want %.8g", loss, g.Loss)
	}
	s := nn.StateOf(m.Projector)
	var worst float64
	check := func(name string, got []float32) {
		want, ok := g.Final[name]
		if !ok {
			t.Fatalf("fixture lacks %s", name)
		}
		if err := closeTo(got, want.Data); err != nil {
			t.Fatalf("%s after the step: %v", name, err)
		}
		worst = math.Max(worst, maxAbsDiff(got, want.Data))
	}
	for _, p := range s.Params {
		check(p.Name, p.Var.Value.Data)
	}
	for _, buf := range s.Buffers {
		if buf.T != nil {
			check(buf.Name, buf.T.Data)
		}
	}
	for h, p := range m.Prototypes {
		if maxAbsDiff(p.Weight.Value.Data, g.Prototypes[h].Data) > 1e-7 {
			t.Errorf("prototypes %d moved; they train only by clustering", h)
		}
	}
	d := g.Dim
	want := make([]float64, len(m.bank.Data))
	for c := range 2 {
		for r, i := range idx {
			copy(want[(c*images+i)*d:(c*images+i+1)*d], g.Bank.Data[(c*b+r)*d:(c*b+r+1)*d])
		}
	}
	if err := closeTo(m.bank.Data, want); err != nil {
		t.Fatalf("memory bank: %v", err)
	}
	t.Logf("loss within %.2g, head within %.2g, memory bank within %.2g of PyTorch", math.Abs(float64(loss)-g.Loss), worst,
		maxAbsDiff(m.bank.Data, want))

	// Step refuses rows it cannot label.
	for name, c := range map[string]struct {
		idx   []int
		views []*tensor.Tensor
	}{
		"no indices":   {nil, views},
		"out of range": {[]int{0, 1, 2, images}, views},
		"one view":     {idx, views[:1]},
		"global crops": {idx, []*tensor.Tensor{views[0], tensor.New(b, feat, 2, 1)}},
	} {
		m.setBatchIndices(c.idx)
		if _, err := m.Step(tp, c.views); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	m.epoch = -1
	m.setBatchIndices(idx)
	if _, err := m.Step(tp, views); err == nil || !strings.Contains(err.Error(), "no pseudo-labels") {
		t.Errorf("Step before any clustering: %v", err)
	}
}

func TestDeepClusterV2Config(t *testing.T) {
	c := DefaultDeepClusterV2Config(60000, 256, 234, 100)
	if !slices.Equal(c.Prototypes, []int{100, 100, 100}) || c.Iterations != 10 || c.Temperature != 0.1 || c.GlobalCrops != 2 ||
		c.ProjDim != 128 || c.Optim.Name != "lars" || c.Optim.LR != 4.8*256/4096 {
		t.Errorf("defaults %+v", c)
	}
	if c := DefaultDeepClusterV2Config(48, 8, 6, 3); !slices.Equal(c.Prototypes, []int{4, 4, 4}) {
		t.Errorf("48 images: prototypes %v", c.Prototypes)
	}
	c.UseCIFARRecipe(256, 195, 1000)
	if !slices.Equal(c.Prototypes, []int{3000, 3000, 3000}) || c.Optim.LR != 0.6 || c.Optim.WarmupSteps != 11*195 ||
		math.Abs(c.Optim.FinalLR-0.0006) > 1e-12 || !c.Optim.ClipTrustRatio {
		t.Errorf("cifar recipe %+v", c)
	}
	m, err := New("deepclusterv2", tinyResNet(t, 3), Run{Batch: 8, StepsPerEpoch: 6, Epochs: 3, Recipe: RecipeCIFAR, Images: 48}, nil)
	if err != nil || !slices.Equal(m.Configuration().(DeepClusterV2Config).Prototypes, []int{4, 4, 4}) || OptimizerName(m) != "LARS" {
		t.Fatalf("cifar recipe on 48 images: %v", err)
	}
	enc := flatEncoder{4}
	for name, edit := range map[string]func(*DeepClusterV2Config){
		"images":      func(c *DeepClusterV2Config) { c.Images = 1 },
		"no heads":    func(c *DeepClusterV2Config) { c.Prototypes = nil },
		"k > n":       func(c *DeepClusterV2Config) { c.Prototypes = []int{100} },
		"k < 2":       func(c *DeepClusterV2Config) { c.Prototypes = []int{1} },
		"temperature": func(c *DeepClusterV2Config) { c.Temperature = 0 },
		"iterations":  func(c *DeepClusterV2Config) { c.Iterations = -1 },
		"crops":       func(c *DeepClusterV2Config) { c.GlobalCrops = 0 },
		"bank":        func(c *DeepClusterV2Config) { c.Images, c.ProjDim, c.ProjHidden = 1<<24, 1<<10, 4 },
	} {
		c := DefaultDeepClusterV2Config(48, 8, 6, 3)
		c.ProjHidden, c.ProjDim = 8, 4
		edit(&c)
		if _, err := NewDeepClusterV2(c, enc, nil); err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "bank" && !strings.Contains(err.Error(), "GiB") {
			t.Errorf("bank: error %v does not give the size", err)
		}
	}
}

// TestTrainDeepClusterV2: three epochs through Train on the squares set: a
// clustering before each (the first fills the bank), labels for every
// image, a finite loss, a bank of unit rows; and resumes from mid-epoch
// (which keeps the checkpoint's labels and bank) and from an epoch's end
// (which clusters again) that reproduce the uninterrupted run.
func TestTrainDeepClusterV2(t *testing.T) {
	ds := squares(40, 2)
	straight := tinyConfig(t, "deepclusterv2")
	straight.Epochs = 3
	var epochs []TrainEpoch
	want, err := Train(t.Context(), straight, ds, TrainHooks{Epoch: func(e TrainEpoch) { epochs = append(epochs, e) }})
	if err != nil {
		t.Fatal(err)
	}
	dc := want.Method.(*DeepClusterV2)
	if !slices.Equal(dc.Config.Prototypes, []int{4, 4, 4}) || want.Steps != 15 {
		t.Fatalf("prototypes %v, %d steps; want 3 x 4 and 15", dc.Config.Prototypes, want.Steps)
	}
	checkClusterEpochs(t, epochs)
	st, ok := dc.LastClustering()
	labels, epoch := dc.PseudoLabels()
	if !ok || st.Epoch != 2 || epoch != 2 || st.Images != 40 || st.Filled || len(st.NonEmpty) != 3 || math.IsNaN(st.NMI[0]) {
		t.Fatalf("last clustering %+v (epoch %d)", st, epoch)
	}
	for h, ls := range labels {
		for i, l := range ls {
			if l < 0 || l >= 4 {
				t.Fatalf("head %d: image %d has pseudo-label %d", h, i, l)
			}
		}
	}
	d := dc.Config.ProjDim
	for r := range len(dc.bank.Data) / d {
		if n := sqNorm(dc.bank.Data[r*d : (r+1)*d]); math.Abs(n-1) > 1e-5 {
			t.Fatalf("bank row %d has squared norm %g", r, n)
		}
	}
	// The prototypes are the unit centroids.
	for h, p := range dc.Prototypes {
		for k := range 4 {
			if n := sqNorm(p.Weight.Value.Data[k*d : (k+1)*d]); math.Abs(n-1) > 1e-5 {
				t.Fatalf("head %d prototype %d has squared norm %g", h, k, n)
			}
		}
	}
	t.Logf("clustering of epoch 3: images %d, non-empty %v, objective %.4g, NMI %.3g; epoch losses %.4f, %.4f, %.4f",
		st.Images, st.NonEmpty, st.Objective, st.NMI, epochs[0].Record.Loss, epochs[1].Record.Loss, epochs[2].Record.Loss)

	for _, at := range []int64{7, 10} {
		cut := tinyConfig(t, "deepclusterv2")
		cut.Epochs = 3
		got, rec := stopAndResume(t, cut, ds, at)
		// Mid-epoch the resumed run keeps the checkpoint's clustering; at
		// the epoch's end it clusters the next epoch itself.
		if len(rec) == 0 || (at == 7) != (rec[0].Record.ClusterS == 0) {
			t.Fatalf("resumed at %d: epoch records %+v", at, rec)
		}
		worst := stateMaxDiff(want.Method, got.Method)
		if worst != 0 {
			t.Fatalf("resumed at step %d: differs from the uninterrupted run by %g", at, worst)
		}
		t.Logf("resumed at step %d: method state (bank, labels, prototypes included) equal to the uninterrupted run's", at)
	}
}

// TestDataParallelDeepClusterV2EpochBoundary: 2 ranks against 1 over 8
// steps of 6-step epochs, so the second clustering runs on a bank that
// the ranks filled with their gathered embeddings (TestDataParallel-
// MatchesOneRank's 4 steps see only the first clustering, of the bank
// filled by the pass over the set).
func TestDataParallelDeepClusterV2EpochBoundary(t *testing.T) {
	cfg := tinyConfig(t, "deepclusterv2")
	cfg.MaxSteps, cfg.Epochs, cfg.Workers = 8, 3, 1
	ds := squares(48, 5)
	one, err := Train(context.Background(), cfg, ds, TrainHooks{})
	if err != nil {
		t.Fatal(err)
	}
	res := trainRanks(t, cfg, ds, 2)
	l1, e1 := one.Method.(*DeepClusterV2).PseudoLabels()
	l2, e2 := res[0].Method.(*DeepClusterV2).PseudoLabels()
	if e1 != 1 || e2 != 1 {
		t.Fatalf("clustered epochs %d and %d, want 1 (the second epoch's)", e1, e2)
	}
	for h := range l1 {
		if !slices.Equal(l1[h], l2[h]) {
			t.Errorf("head %d: the 2-rank run's second clustering differs from the 1-rank run's", h)
		}
	}
	overall, worst, name := stateDiff(t, one.Method, res[0].Method)
	t.Logf("deepclusterv2, 2 ranks against 1 after 8 steps (a clustering at step 6): %.2g of the largest value; worst tensor %s at %.2g of its own", overall, name, worst)
	if overall > 1e-3 || worst > 3e-2 {
		t.Errorf("the 2-rank run left the 1-rank run's state: %.3g overall (limit 1e-3), %s %.3g (limit 3e-2)", overall, name, worst)
	}
	if o, w, _ := stateDiff(t, res[0].Method, res[1].Method); o != 0 || w != 0 {
		t.Errorf("ranks 0 and 1 hold different state: %.3g overall", o)
	}
}
