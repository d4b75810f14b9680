package ssl

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
	"github.com/sslzoo/sslzoo/zoo"
)

// testdata/jigsaw_golden.json comes from scripts/gen_jigsaw_golden.py: the
// permutation sets (exact), the puzzle loss with its gradients, and two
// training iterations of the method, all within goldenTol (1e-5 absolute +
// 1e-5 relative).

type jigsawGoldenDraw struct {
	Top    int      `json:"top"`
	Left   int      `json:"left"`
	Jitter [][2]int `json:"jitter"`
	Label  int      `json:"label"`
}

type jigsawGolden struct {
	Permutations []struct {
		N           int                `json:"n"`
		Start       int                `json:"start"`
		Perms       [][JigsawTiles]int `json:"perms"`
		MinDistance int                `json:"min_distance"`
	} `json:"permutations"`
	Loss struct {
		Labels       []int                   `json:"labels"`
		Features     goldenTensor            `json:"features"`
		Init         map[string]goldenTensor `json:"init"`
		Loss         float64                 `json:"loss"`
		GradFeatures goldenTensor            `json:"grad_features"`
		Grads        map[string]goldenTensor `json:"grads"`
	} `json:"loss"`
	Steps struct {
		Batch, Size, Tile, Feat, Hidden int
		Optim                           struct {
			LR          float64 `json:"lr"`
			Momentum    float64 `json:"momentum"`
			WeightDecay float64 `json:"weight_decay"`
		} `json:"optim"`
		Init  map[string]goldenTensor `json:"init"`
		Steps []struct {
			Crops goldenTensor       `json:"crops"`
			Draws []jigsawGoldenDraw `json:"draws"`
			Loss  float64            `json:"loss"`
			Tiles *goldenTensor      `json:"tiles"`
		} `json:"steps"`
		Final map[string]goldenTensor `json:"final"`
	} `json:"steps"`
}

func loadJigsawGolden(t *testing.T) *jigsawGolden {
	t.Helper()
	return readGolden[jigsawGolden](t, "jigsaw")
}

// maxAbsDiff is the largest |got - want|, for the log.
func maxAbsDiff(got []float32, want []float64) float64 {
	var m float64
	for i, w := range want {
		if i < len(got) {
			m = max(m, math.Abs(float64(got[i])-w))
		}
	}
	return m
}

func hamming(a, b [JigsawTiles]int) int {
	d := 0
	for i := range a {
		if a[i] != b[i] {
			d++
		}
	}
	return d
}

// TestJigsawPermutationsGolden: the greedy max-min Hamming selection gives
// the script's sets exactly, from the same first permutation with the same
// tie-break.
func TestJigsawPermutationsGolden(t *testing.T) {
	g := loadJigsawGolden(t)
	if len(g.Permutations) < 2 {
		t.Fatalf("%d sets in the fixture", len(g.Permutations))
	}
	for _, c := range g.Permutations {
		got, err := MaxHammingPermutations(c.N, c.Start)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.Perms) {
			t.Errorf("n %d start %d: Go and Python sets differ:\n got %v\nwant %v", c.N, c.Start, got[:min(5, len(got))], c.Perms[:min(5, len(c.Perms))])
		}
		minD := JigsawTiles
		for i := range got {
			for j := range i {
				minD = min(minD, hamming(got[i], got[j]))
			}
		}
		if minD != c.MinDistance || minD < 2 {
			t.Errorf("n %d: minimum distance %d, script %d", c.N, minD, c.MinDistance)
		}
		t.Logf("n %d start %d: identical, minimum Hamming distance %d", c.N, c.Start, minD)
	}
}

// TestJigsawPermutationOrder: index k is the k-th permutation in
// lexicographic order, and bad arguments are errors.
func TestJigsawPermutationOrder(t *testing.T) {
	p := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}
	for k := range 5000 {
		if got := permutationAt(k); !slices.Equal(got[:], p) {
			t.Fatalf("permutationAt(%d) = %v, want %v", k, got, p)
		}
		nextPermutation(p)
	}
	if got := permutationAt(NumTilePermutations - 1); got != [JigsawTiles]int{8, 7, 6, 5, 4, 3, 2, 1, 0} {
		t.Errorf("last permutation %v", got)
	}
	for _, c := range []struct{ n, start int }{{1, 0}, {MaxJigsawPermutations + 1, 0}, {10, -1}, {10, NumTilePermutations}} {
		if _, err := MaxHammingPermutations(c.n, c.start); err == nil {
			t.Errorf("n %d start %d: no error", c.n, c.start)
		}
	}
}

// TestJigsawLossGolden: the loss on given tile features (concatenated in
// input order, classifier with BatchNorm, cross-entropy) and its gradients
// with respect to the features and the classifier's parameters.
func TestJigsawLossGolden(t *testing.T) {
	g := loadJigsawGolden(t).Loss
	d := g.Features.Shape[1]
	hidden := g.Init["classifier.0.weight"].Shape[0]
	classes := g.Init["classifier.3.weight"].Shape[0]
	head, err := newMLPHead([]int{JigsawTiles * d, hidden, classes}, true, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	mod := group{{"classifier", head, true}}
	init := map[string]*weights.Tensor{}
	for name, v := range g.Init {
		init[name] = weights.FromFloat32(v.tensor())
	}
	if err := nn.LoadState(mod, init, false); err != nil {
		t.Fatal(err)
	}
	loss, worst := headLossGolden(t, g.Features, nn.StateOf(mod).Params, func(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
		return JigsawLoss(tp, x, head, g.Labels)
	}, g.Loss, g.GradFeatures, g.Grads)
	t.Logf("loss |diff| %.2g, gradients max |diff| %.2g", math.Abs(float64(loss)-g.Loss), worst)
	// A feature batch that is not nine tiles per label is an op error.
	if err := autograd.Catch(func() { JigsawLoss(autograd.NewTape(), autograd.Const(tensor.New(10, d)), head, g.Labels) }); err == nil {
		t.Error("10 feature rows for 4 puzzles: no error")
	}
}

// TestJigsawStepsGolden: two iterations of the method (puzzle cutting and
// per-tile normalisation, encoder over the 9N tiles, classifier, loss,
// backward, SGD with momentum and weight decay) against PyTorch, from the
// same weights, permutation set and puzzle draws.
func TestJigsawStepsGolden(t *testing.T) {
	g := loadJigsawGolden(t).Steps
	rng := rand.New(rand.NewPCG(1, 1))
	oc := OptimConfig{Name: "sgd", LR: g.Optim.LR, Momentum: g.Optim.Momentum, WeightDecay: g.Optim.WeightDecay}
	perms := g.Init["permutations"]
	m, err := NewJigsaw(JigsawConfig{Permutations: perms.Shape[0], Size: g.Size, Tile: g.Tile, HiddenDim: g.Hidden, Seed: 5, Optim: oc},
		newConvEncoder(g.Feat, rng), rng)
	if err != nil {
		t.Fatal(err)
	}
	init := map[string]*weights.Tensor{}
	for name, v := range g.Init {
		init[name] = weights.FromFloat32(v.tensor())
	}
	missing, unexpected := nn.DiffState(m, init)
	for _, name := range missing {
		if !isCounter(name) && name != "puzzle_seed" {
			t.Fatalf("fixture lacks %s", name)
		}
	}
	if len(unexpected) > 0 {
		t.Fatalf("fixture has unknown tensors %v", unexpected)
	}
	if err := nn.LoadState(m, init, false); err != nil {
		t.Fatal(err)
	}
	set, err := m.Permutations()
	if err != nil {
		t.Fatal(err)
	}
	tp := autograd.NewTape()
	var worstLoss float64
	for s, st := range g.Steps {
		crops := st.Crops.tensor()
		draws := make([]jigsawDraw, len(st.Draws))
		for i, d := range st.Draws {
			draws[i] = jigsawDraw{Top: d.Top, Left: d.Left, Label: d.Label}
			copy(draws[i].Jitter[:], d.Jitter)
		}
		if st.Tiles != nil {
			tiles := tensor.New(st.Tiles.Shape...)
			cutPuzzles(tiles, crops, draws, set, g.Tile)
			if err := closeTo(tiles.Data, st.Tiles.Data); err != nil {
				t.Errorf("step %d tiles: %v", s, err)
			}
			t.Logf("tiles max |diff| %.2g", maxAbsDiff(tiles.Data, st.Tiles.Data))
		}
		loss, err := m.step(tp, crops, draws)
		if err != nil {
			t.Fatal(err)
		}
		if err := closeTo([]float32{loss}, []float64{st.Loss}); err != nil {
			t.Errorf("step %d loss: %v", s, err)
		}
		worstLoss = max(worstLoss, math.Abs(float64(loss)-st.Loss))
	}
	got := nn.StateTensors(m)
	var worst float64
	for name, want := range g.Final {
		w, ok := got[name]
		if !ok {
			t.Errorf("no %s in the Go state", name)
			continue
		}
		f, err := w.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if err := closeTo(f.Data, want.Data); err != nil {
			t.Errorf("%s after %d steps: %v", name, len(g.Steps), err)
		}
		worst = max(worst, maxAbsDiff(f.Data, want.Data))
	}
	t.Logf("losses max |diff| %.2g, state after %d steps max |diff| %.2g", worstLoss, len(g.Steps), worst)
}

// smallJigsaw is Jigsaw on the tiny ResNet at crop size size.
func smallJigsaw(t *testing.T, enc Encoder, size int, seed uint64) *Jigsaw {
	t.Helper()
	m, err := NewJigsaw(JigsawConfig{Permutations: 10, Size: size, HiddenDim: 32, Seed: seed, Optim: testOptim("sgd", 0.05)},
		enc, rand.New(rand.NewPCG(seed, 3)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJigsawTiling: the puzzles' shapes, tiles that lie inside their cells
// at random places (gaps), tile content in permutation order, and each
// tile channel normalised by its own mean and standard deviation.
func TestJigsawTiling(t *testing.T) {
	const n, c, size = 16, 2, 20 // 6-px cells, 5-px tiles, a 2-px margin
	m := smallJigsaw(t, tinyResNet(t, 1), size, 7)
	if m.Config.Tile != 5 {
		t.Fatalf("tile %d, want 5 (64/75 of a 6-px cell)", m.Config.Tile)
	}
	v := randomViews(3, 1, n, size)[0]
	v.Shape[1] = c // two channels of the random images
	v.Data = v.Data[:n*c*size*size]
	// A flat channel: only centred.
	for i := range size * size {
		v.Data[i] = 0.25
	}
	perms, err := m.Permutations()
	if err != nil {
		t.Fatal(err)
	}
	jitters, labels := map[int]bool{}, map[int]bool{}
	for step := range 4 {
		m.steps = int64(step)
		draws := m.drawPuzzles(n, size, size)
		tiles := tensor.New(JigsawTiles*n, c, 5, 5)
		got := cutPuzzles(tiles, v, draws, perms, 5)
		if len(got) != n {
			t.Fatalf("%d labels for %d crops", len(got), n)
		}
		for i, d := range draws {
			labels[d.Label] = true
			if got[i] != d.Label || d.Label < 0 || d.Label >= 10 || d.Top < 0 || d.Top > 2 || d.Left < 0 || d.Left > 2 {
				t.Fatalf("puzzle %d: %+v (label %d)", i, d, got[i])
			}
			for cell, j := range d.Jitter {
				if j[0] < 0 || j[0] > 1 || j[1] < 0 || j[1] > 1 {
					t.Fatalf("puzzle %d cell %d: jitter %v outside the 1-px gap", i, cell, j)
				}
				jitters[j[0]*2+j[1]] = true
			}
			for k, cell := range perms[d.Label] {
				y0, x0 := d.Top+cell/3*6+d.Jitter[cell][0], d.Left+cell%3*6+d.Jitter[cell][1]
				for ci := range c {
					out := tiles.Data[((i*JigsawTiles+k)*c+ci)*25:][:25]
					var src []float64
					for y := range 5 {
						for x := range 5 {
							src = append(src, float64(v.Data[((i*c+ci)*size+y0+y)*size+x0+x]))
						}
					}
					var mean, ss float64
					for _, p := range src {
						mean += p
					}
					mean /= 25
					for _, p := range src {
						ss += (p - mean) * (p - mean)
					}
					std := math.Sqrt(ss / 24)
					if std == 0 {
						std = 1
					}
					var om, os2 float64
					for j, p := range out {
						if want := (src[j] - mean) / std; math.Abs(float64(p)-want) > 1e-5 {
							t.Fatalf("image %d position %d (cell %d) channel %d pixel %d: %g, want %g", i, k, cell, ci, j, p, want)
						}
						om += float64(p) / 25
					}
					for _, p := range out {
						os2 += (float64(p) - om) * (float64(p) - om) / 24
					}
					wantStd := 1.0
					if i == 0 && ci == 0 {
						wantStd = 0 // the flat channel
					}
					if math.Abs(om) > 1e-5 || math.Abs(math.Sqrt(os2)-wantStd) > 1e-5 {
						t.Fatalf("image %d tile %d channel %d: mean %g std %g, want 0 and %g", i, k, ci, om, math.Sqrt(os2), wantStd)
					}
				}
			}
		}
	}
	if len(jitters) != 4 || len(labels) < 5 {
		t.Errorf("jitters %v and labels %v drawn: not random", jitters, labels)
	}
	// The same step draws the same puzzles; the next one others.
	m.steps = 9
	a, b := m.drawPuzzles(n, size, size), m.drawPuzzles(n, size, size)
	m.steps = 10
	if !slices.Equal(a, b) || slices.Equal(a, m.drawPuzzles(n, size, size)) {
		t.Error("puzzle draws are not a function of the seed and step")
	}
}

// TestJigsawTileSizes: the tile side per crop size and backbone, and the
// minimum image size named when the grid does not fit.
func TestJigsawTileSizes(t *testing.T) {
	imagenet, err := zoo.NewResNet(zoo.ResNetConfig{Depth: 18, Width: 0.0625, InChannels: 1}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	cifar, vit := tinyResNet(t, 1), newTinyViT(t, 1)
	for _, c := range []struct {
		name       string
		enc        Encoder
		size, tile int
		want       int
		err        string
	}{
		{"cifar 32", cifar, 32, 0, 8, ""},
		{"cifar 28", cifar, 28, 0, 7, ""},
		{"cifar 36", cifar, 36, 0, 10, ""},
		{"cifar 15", cifar, 15, 0, 4, ""},
		{"cifar 14", cifar, 14, 0, 0, "14-px images are too small for the 3x3 grid of tiles with gaps (tiles need at least 4 px); the minimum image size is 15 px"},
		{"imagenet 32", imagenet, 32, 0, 8, ""},
		{"imagenet 28", imagenet, 28, 0, 0, "the minimum image size is 30 px"},
		{"vit 32", vit, 32, 0, 8, ""},
		{"vit 16", vit, 16, 0, 0, "2x2 of its 4-px patches); the minimum image size is 30 px"},
		{"explicit tile", cifar, 18, 5, 5, ""},
		{"explicit tile too big", cifar, 16, 5, 0, "the minimum image size is 18 px"},
		{"explicit tile vit", vit, 40, 6, 0, "multiples of 4"},
	} {
		got, err := jigsawTile(c.size, c.tile, c.enc)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: tile %d (%v), want %d", c.name, got, err, c.want)
		}
	}
}

// TestJigsawStepsAndResume: Jigsaw trains a ResNet and a ViT; a checkpoint
// brings back the permutation set and the draws' seed, so a method built
// with another seed resumes exactly; bad views are errors.
func TestJigsawStepsAndResume(t *testing.T) {
	views := randomViews(5, 1, testBatch, 16)
	a := smallJigsaw(t, tinyResNet(t, 1), 16, 1)
	before := slices.Clone(paramByName(t, a, "backbone.conv1.weight").Value.Data)
	for _, l := range trainFixed(t, a, views, 3) {
		if !(l > 0) || math.IsInf(float64(l), 0) {
			t.Fatalf("loss %g", l)
		}
	}
	if slices.Equal(before, paramByName(t, a, "backbone.conv1.weight").Value.Data) {
		t.Error("the backbone did not move")
	}
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	if err := nn.SaveCheckpoint(path, a, a.Optimizer(), a.Steps(), nil, nil); err != nil {
		t.Fatal(err)
	}
	b := smallJigsaw(t, tinyResNet(t, 2), 16, 2)
	pa, _ := a.Permutations()
	if pb, _ := b.Permutations(); slices.Equal(pa, pb) {
		t.Fatal("seeds 1 and 2 chose the same permutation set")
	}
	if _, _, err := nn.LoadCheckpoint(path, b, b.Optimizer(), nil); err != nil {
		t.Fatal(err)
	}
	if pb, _ := b.Permutations(); !slices.Equal(pa, pb) || b.seed != a.seed || b.Steps() != 3 {
		t.Fatalf("restored set equal %v, seed %d (saved %d), step %d", slices.Equal(pa, pb), b.seed, a.seed, b.Steps())
	}
	tp := autograd.NewTape()
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
		if !slices.Equal(p.Var.Value.Data, sb.Params[i].Var.Value.Data) {
			t.Fatalf("%s differs after the resumed step", p.Name)
		}
	}

	// A ViT sees 8-px tiles (2x2 patches) of 32-px crops.
	v := smallJigsaw(t, newTinyViT(t, 1), 32, 1)
	for _, l := range trainFixed(t, v, randomViews(6, 1, 4, 32), 2) {
		if !(l > 0) || math.IsInf(float64(l), 0) {
			t.Fatalf("ViT loss %g", l)
		}
	}

	nan := randomViews(5, 1, testBatch, 16)
	nan[0].Data[3] = float32(math.NaN())
	for _, c := range []struct {
		name  string
		views []*tensor.Tensor
		want  string
	}{
		{"two views", randomViews(5, 2, testBatch, 16), "got 2 views, want 1"},
		{"small crops", randomViews(5, 1, testBatch, 12), "the minimum image size is 15 px"},
		{"nan", nan, "is NaN"},
	} {
		if _, err := a.Step(tp, c.views); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	bad := a.perms.Data[0]
	a.perms.Data[0] = a.perms.Data[1]
	if _, err := a.Step(tp, views); err == nil || !strings.Contains(err.Error(), "not an order of the 9 tiles") {
		t.Errorf("corrupt permutation set: %v", err)
	}
	a.perms.Data[0] = bad
}

// TestTrainJigsaw: a short run through Train records the permutation
// count, saves the set with the checkpoint, writes a backbone FinalFile
// that loads on its own, and resumes from its checkpoint; images too small
// for the grid and bad permutation counts are refused.
func TestTrainJigsaw(t *testing.T) {
	cfg := tinyConfig(t, "jigsaw")
	cfg.Permutations = 12
	res, err := Train(t.Context(), cfg, squares(16, 2), TrainHooks{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Spec.Permutations != 12 || res.Steps != 4 {
		t.Fatalf("spec %+v, %d steps", res.Spec, res.Steps)
	}
	j := res.Method.(*Jigsaw)
	if j.Config.Tile != 4 || j.Config.Size != 16 || j.Config.Permutations != 12 {
		t.Errorf("config %+v", j.Config)
	}
	enc, spec, err := LoadEncoder(res.Final, rand.New(rand.NewPCG(1, 1)), false)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Method != "jigsaw" || spec.Permutations != 12 {
		t.Errorf("final spec %+v", spec)
	}
	trained := nn.StateTensors(j.Backbone())
	f, err := weights.Read(res.Final)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(trained) {
		t.Errorf("%s holds %d tensors, the backbone %d (the classifier must stay out)", res.Final, len(f.Tensors), len(trained))
	}
	for name, ts := range nn.StateTensors(enc) {
		a, _ := ts.Float32()
		b, _ := trained[name].Float32()
		if !slices.Equal(a.Data, b.Data) {
			t.Fatalf("%s: %s differs from the trained backbone", res.Final, name)
		}
	}
	ck, err := weights.Read(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	saved, ok := ck.Tensors["permutations"]
	if !ok {
		t.Fatalf("checkpoint has no permutation set: %v", ck.Names())
	}
	if sf, _ := saved.Float32(); !slices.Equal(sf.Data, j.perms.Data) {
		t.Error("the checkpoint's permutation set is not the method's")
	}
	cfg.Resume = res.Checkpoint
	again, err := Train(t.Context(), cfg, squares(16, 2), TrainHooks{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !slices.Equal(again.Method.(*Jigsaw).perms.Data, j.perms.Data) || again.Steps != 4 {
		t.Error("the resumed run has another permutation set or step")
	}

	for _, c := range []struct {
		name string
		edit func(*TrainConfig)
		want string
	}{
		{"small", func(c *TrainConfig) { c.Size = 12 }, "the minimum image size is 15 px"},
		{"one permutation", func(c *TrainConfig) { c.Permutations = 1 }, "1 permutations: want 2 to 10000"},
		{"cifar recipe", func(c *TrainConfig) { c.Recipe = RecipeCIFAR }, "Jigsaw has the paper recipe only"},
	} {
		cc := tinyConfig(t, "jigsaw")
		c.edit(&cc)
		if _, err := Train(t.Context(), cc, squares(16, 2), TrainHooks{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
