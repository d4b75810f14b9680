package ssl

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// testdata/deepcluster_golden.json comes from
// scripts/gen_deepcluster_golden.py: PCA-whitening with L2 normalisation,
// Lloyd's k-means from fixed centroids, faiss's re-seeding of an empty
// cluster on a case where its random choice is forced, the sampler's
// per-cluster counts, and two SGD steps of the classifier (PyTorch).
// Assignments and counts must match exactly, values within goldenTol
// (1e-5 absolute + 1e-5 relative).

type dcSnapshot struct {
	Iterations int          `json:"iterations"`
	Centroids  goldenTensor `json:"centroids"`
	Assign     []int        `json:"assign"`
	Objective  []float64    `json:"objective"`
	Final      float64      `json:"final"`
	Splits     int          `json:"splits"`
}

type dcGolden struct {
	PCA struct {
		X      goldenTensor `json:"x"`
		D      int          `json:"d"`
		Mean   []float64    `json:"mean"`
		Values []float64    `json:"values"`
		Y      goldenTensor `json:"y"`
	} `json:"pca"`
	KMeans struct {
		X          goldenTensor `json:"x"`
		Init       goldenTensor `json:"init"`
		K          int          `json:"k"`
		Iterations int          `json:"iterations"`
		Want       dcSnapshot   `json:"want"`
	} `json:"kmeans"`
	Split struct {
		X     goldenTensor `json:"x"`
		Init  goldenTensor `json:"init"`
		K     int          `json:"k"`
		After []dcSnapshot `json:"after"`
	} `json:"split"`
	Sampler []struct {
		Labels []int `json:"labels"`
		K      int   `json:"k"`
		Counts []int `json:"counts"`
	} `json:"sampler"`
	Steps struct {
		Features    goldenTensor `json:"features"`
		Weight      goldenTensor `json:"weight"`
		Bias        goldenTensor `json:"bias"`
		Labels      []int        `json:"labels"`
		LR          float64      `json:"lr"`
		WeightDecay float64      `json:"weight_decay"`
		Losses      []float64    `json:"losses"`
		FinalWeight goldenTensor `json:"final_weight"`
		FinalBias   goldenTensor `json:"final_bias"`
	} `json:"steps"`
}

func loadDeepClusterGolden(t *testing.T) *dcGolden {
	t.Helper()
	return readGolden[dcGolden](t, "deepcluster")
}

func float64sTo32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func TestDeepClusterPCAGolden(t *testing.T) {
	g := loadDeepClusterGolden(t).PCA
	n, f := g.X.Shape[0], g.X.Shape[1]
	x := float64sTo32(g.X.Data)
	p, err := fitPCA(x, n, f, g.D)
	if err != nil {
		t.Fatal(err)
	}
	var worstMean, worstVal float64
	for j, m := range g.Mean {
		worstMean = math.Max(worstMean, math.Abs(p.Mean[j]-m))
	}
	for i, v := range g.Values {
		worstVal = math.Max(worstVal, math.Abs(p.Values[i]-v)/v)
	}
	if worstMean > goldenTol || worstVal > goldenTol {
		t.Fatalf("mean off by %g, eigenvalues by %g (relative)", worstMean, worstVal)
	}
	y := p.apply(x, n)
	if err := closeTo(y, g.Y.Data); err != nil {
		t.Fatalf("whitened features: %v", err)
	}
	t.Logf("whitened + L2 features within %.2g of NumPy (eigenvalues %.2g relative)", maxAbsDiff(y, g.Y.Data), worstVal)
	if _, err := fitPCA(x, n, f, f+1); err == nil {
		t.Error("more dimensions than features: no error")
	}
	if _, err := fitPCA(make([]float32, 3*f), 3, f, 2); err == nil {
		t.Error("constant features: no error")
	}
}

func TestDeepClusterKMeansGolden(t *testing.T) {
	g := loadDeepClusterGolden(t).KMeans
	n, d := g.X.Shape[0], g.X.Shape[1]
	res, err := kmeans(float64sTo32(g.X.Data), n, d, float64sTo32(g.Init.Data), g.K, g.Iterations, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, res, g.Want)
	if _, err := kmeans(make([]float32, 4*d), 4, d, make([]float32, 5*d), 5, 1, nil); err == nil {
		t.Error("more clusters than rows: no error")
	}
}

func checkSnapshot(t *testing.T, res kmeansResult, want dcSnapshot) {
	t.Helper()
	if !slices.Equal(res.Assign, want.Assign) {
		t.Fatalf("after %d iterations: assignments %v, want %v", want.Iterations, res.Assign, want.Assign)
	}
	if err := closeTo(res.Centroids, want.Centroids.Data); err != nil {
		t.Fatalf("after %d iterations: centroids: %v", want.Iterations, err)
	}
	if res.Splits != want.Splits {
		t.Errorf("after %d iterations: %d splits, want %d", want.Iterations, res.Splits, want.Splits)
	}
	for i, o := range append(want.Objective, want.Final) {
		got := res.Final
		if i < len(res.Objective) {
			got = res.Objective[i]
		}
		if math.Abs(got-o) > 1e-4*(1+math.Abs(o)) {
			t.Errorf("after %d iterations: objective %d is %g, want %g", want.Iterations, i, got, o)
		}
	}
	t.Logf("after %d iterations: assignments equal, centroids within %.2g", want.Iterations, maxAbsDiff(res.Centroids, want.Centroids.Data))
}

func TestDeepClusterSplitGolden(t *testing.T) {
	g := loadDeepClusterGolden(t).Split
	n, d := g.X.Shape[0], g.X.Shape[1]
	for _, want := range g.After {
		res, err := kmeans(float64sTo32(g.X.Data), n, d, float64sTo32(g.Init.Data), g.K, want.Iterations, rand.New(rand.NewPCG(3, 4)))
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshot(t, res, want)
	}
}

// TestDeepClusterSplitChoice: where faiss's choice is random, it only
// ever splits a cluster of two rows or more, moves the pair apart by the
// relative eps, and keeps the counts' sum.
func TestDeepClusterSplitChoice(t *testing.T) {
	const d = 3
	for seed := range uint64(200) {
		counts := []int{3, 1, 0, 4, 0, 1}
		n := 9
		c := make([]float32, len(counts)*d)
		for i := range c {
			c[i] = float32(i + 1)
		}
		before := append([]float32(nil), c...)
		if got := splitEmpty(c, counts, d, n, rand.New(rand.NewPCG(seed, 9))); got != 2 {
			t.Fatalf("seed %d: %d splits, want 2", seed, got)
		}
		sum := 0
		for _, k := range counts {
			sum += k
			if k == 0 {
				t.Fatalf("seed %d: counts %v keep an empty cluster", seed, counts)
			}
		}
		if sum != n {
			t.Fatalf("seed %d: counts %v sum to %d, want %d", seed, counts, sum, n)
		}
		// Each new centroid is a perturbed copy of a cluster that had two
		// rows or more (0 or 3; a copy may be split again, so within a
		// few eps), never of a single-row one.
		for _, ci := range []int{2, 4} {
			near := func(cj int) bool {
				for j := range d {
					if math.Abs(float64(c[ci*d+j]-before[cj*d+j])) > 3*kmeansSplitEps*math.Abs(float64(before[cj*d+j])) {
						return false
					}
				}
				return true
			}
			if !near(0) && !near(3) || near(1) || near(5) {
				t.Fatalf("seed %d: centroid %d %v is no split of cluster 0 or 3 (%v)", seed, ci, c[ci*d:(ci+1)*d], before)
			}
		}
		for _, single := range []int{1, 5} {
			if !slices.Equal(c[single*d:(single+1)*d], before[single*d:(single+1)*d]) {
				t.Fatalf("seed %d: a single-row cluster %d was split", seed, single)
			}
		}
	}
}

func TestDeepClusterSamplerGolden(t *testing.T) {
	for ci, g := range loadDeepClusterGolden(t).Sampler {
		members := make([][]int, g.K)
		for i, l := range g.Labels {
			if l >= 0 {
				members[l] = append(members[l], i)
			}
		}
		if got := clusterCounts(members, len(g.Labels)); !slices.Equal(got, g.Counts) {
			t.Fatalf("case %d: counts %v, want %v", ci, got, g.Counts)
		}
		for seed := range uint64(5) {
			order, err := uniformOrder(g.Labels, g.K, rand.New(rand.NewPCG(seed, 5)))
			if err != nil {
				t.Fatal(err)
			}
			if len(order) != len(g.Labels) {
				t.Fatalf("case %d: %d images in the epoch, want %d", ci, len(order), len(g.Labels))
			}
			counts := make([]int, g.K)
			times := map[int]int{}
			for _, i := range order {
				if g.Labels[i] < 0 {
					t.Fatalf("case %d: unlabelled image %d drawn", ci, i)
				}
				counts[g.Labels[i]]++
				times[i]++
			}
			if !slices.Equal(counts, g.Counts) {
				t.Fatalf("case %d seed %d: drawn %v per cluster, want %v", ci, seed, counts, g.Counts)
			}
			// A cluster with at least its count of images gives distinct
			// ones; a smaller one each of its images q or q+1 times.
			for l, m := range members {
				if len(m) == 0 {
					continue
				}
				q := g.Counts[l] / len(m)
				for _, i := range m {
					if times[i] < q || times[i] > q+1 {
						t.Fatalf("case %d seed %d: image %d of cluster %d (%d images, %d draws) drawn %d times", ci, seed, i, l, len(m), g.Counts[l], times[i])
					}
				}
			}
		}
	}
	if _, err := uniformOrder([]int{-1, -1}, 2, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("no labelled image: no error")
	}
}

// flatEncoder hands its input [N, D, 1, 1] on as the features, so the
// classifier trains on given features.
type flatEncoder struct{ dim int }

func (flatEncoder) CollectState(string, *nn.State) {}
func (flatEncoder) SetTraining(bool)               {}
func (e flatEncoder) FeatureDim() int              { return e.dim }
func (e flatEncoder) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.Reshape(x, x.Shape()[0], e.dim)
}

// TestDeepClusterStepsGolden: the classifier's cross-entropy and two SGD
// steps without momentum (the reference's top-layer optimizer), although
// the backbone's optimizer has momentum.
func TestDeepClusterStepsGolden(t *testing.T) {
	g := loadDeepClusterGolden(t).Steps
	b, f := g.Features.Shape[0], g.Features.Shape[1]
	k := g.Weight.Shape[0]
	cfg := DeepClusterConfig{Clusters: k, PCADim: 2, Iterations: 1, Images: b,
		Optim: OptimConfig{Name: "sgd", LR: g.LR, Momentum: 0.9, WeightDecay: g.WeightDecay}}
	m, err := NewDeepCluster(cfg, flatEncoder{f}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Classifier.Weight.Value.Data, float64sTo32(g.Weight.Data))
	copy(m.Classifier.Bias.Value.Data, float64sTo32(g.Bias.Data))
	v := g.Features.tensor()
	v.Shape = []int{b, f, 1, 1}
	tp := autograd.NewTape()
	var worst float64
	for i, want := range g.Losses {
		loss, err := m.step(tp, v, g.Labels)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(loss)-want) > goldenTol*(1+math.Abs(want)) {
			t.Fatalf("step %d: loss %.8g, want %.8g", i, loss, want)
		}
		worst = math.Max(worst, math.Abs(float64(loss)-want))
	}
	if err := closeTo(m.Classifier.Weight.Value.Data, g.FinalWeight.Data); err != nil {
		t.Fatalf("weight after %d steps: %v", len(g.Losses), err)
	}
	if err := closeTo(m.Classifier.Bias.Value.Data, g.FinalBias.Data); err != nil {
		t.Fatalf("bias after %d steps: %v", len(g.Losses), err)
	}
	t.Logf("losses within %.2g, classifier within %.2g of PyTorch", worst,
		math.Max(maxAbsDiff(m.Classifier.Weight.Value.Data, g.FinalWeight.Data), maxAbsDiff(m.Classifier.Bias.Value.Data, g.FinalBias.Data)))
	// Step itself needs the rows' images and a clustering.
	if _, err := m.Step(tp, []*tensor.Tensor{v}); err == nil {
		t.Error("Step before any clustering: no error")
	}
}

func TestDeepClusterNMI(t *testing.T) {
	a := []int{0, 0, 1, 1, 2, 2}
	if v := nmi(a, []int{5, 5, 3, 3, 4, 4}); math.Abs(v-1) > 1e-12 {
		t.Errorf("renamed labels: NMI %g, want 1", v)
	}
	if v := nmi([]int{0, 0, 1, 1}, []int{0, 1, 0, 1}); math.Abs(v) > 1e-12 {
		t.Errorf("independent labels: NMI %g, want 0", v)
	}
	if v := nmi([]int{-1, -1}, []int{0, 1}); !math.IsNaN(v) {
		t.Errorf("nothing labelled twice: NMI %g, want NaN", v)
	}
}

// TestTrainDeepCluster: two epochs through Train on the squares set, a
// clustering before each (labels for every image, a finite loss), and
// resumes from mid-epoch (which keeps the checkpoint's pseudo-labels and
// order) and from an epoch's end (which clusters again) that reproduce
// the uninterrupted run.
func TestTrainDeepCluster(t *testing.T) {
	ds := squares(40, 2)
	straight := tinyConfig(t, "deepcluster")
	var epochs []TrainEpoch
	want, err := Train(t.Context(), straight, ds, TrainHooks{Epoch: func(e TrainEpoch) { epochs = append(epochs, e) }})
	if err != nil {
		t.Fatal(err)
	}
	dc := want.Method.(*DeepCluster)
	if dc.Config.Clusters != 4 || want.Steps != 10 {
		t.Fatalf("%d clusters, %d steps; want 4 and 10", dc.Config.Clusters, want.Steps)
	}
	checkClusterEpochs(t, epochs)
	st, ok := dc.LastClustering()
	labels, epoch := dc.PseudoLabels()
	if !ok || st.Epoch != 1 || epoch != 1 || st.Images != 40 || st.NonEmpty < 2 || math.IsNaN(st.NMI) {
		t.Fatalf("last clustering %+v (epoch %d)", st, epoch)
	}
	for i, l := range labels {
		if l < 0 || l >= 4 {
			t.Fatalf("image %d has pseudo-label %d", i, l)
		}
	}
	t.Logf("clustering of epoch 2: %+v; epoch losses %.4f, %.4f", st, epochs[0].Record.Loss, epochs[1].Record.Loss)

	for _, at := range []int64{7, 5} {
		got, rec := stopAndResume(t, tinyConfig(t, "deepcluster"), ds, at)
		// Mid-epoch the resumed run keeps the checkpoint's clustering; at
		// the epoch's end it clusters the next epoch itself.
		if len(rec) != 1 || (at == 7) != (rec[0].Record.ClusterS == 0) {
			t.Fatalf("resumed at %d: epoch records %+v", at, rec)
		}
		gl, ge := got.Method.(*DeepCluster).PseudoLabels()
		if ge != 1 || !slices.Equal(gl, labels) {
			t.Fatalf("resumed at %d: pseudo-labels of epoch %d %v, want %v", at, ge, gl, labels)
		}
		worst := stateMaxDiff(want.Method, got.Method)
		if worst > 1e-6 {
			t.Fatalf("resumed at step %d: differs from the uninterrupted run by %g", at, worst)
		}
		t.Logf("resumed at step %d: method state within %g of the uninterrupted run", at, worst)
	}
}

// stopAndResume interrupts the run cfg at step at, resumes it from its
// checkpoint to the end and returns the resumed run and its epoch records.
func stopAndResume(t *testing.T, cfg TrainConfig, ds data.Dataset, at int64) (*TrainResult, []TrainEpoch) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	_, err := Train(ctx, cfg, ds, TrainHooks{Step: func(s TrainStep) {
		if s.Step == at {
			cancel()
		}
	}})
	cancel()
	var ie *InterruptedError
	if !errors.As(err, &ie) || ie.Step != at {
		t.Fatalf("stop at %d: error %v", at, err)
	}
	cont := cfg
	cont.Resume = filepath.Join(cfg.Out, CheckpointFile)
	var rec []TrainEpoch
	got, err := Train(t.Context(), cont, ds, TrainHooks{Epoch: func(e TrainEpoch) { rec = append(rec, e) }})
	if err != nil {
		t.Fatal(err)
	}
	return got, rec
}

// stateMaxDiff is the largest absolute difference between two methods'
// state tensors, parameters and buffers.
func stateMaxDiff(a, b Method) float64 {
	var worst float64
	sa, sb := nn.StateTensors(a), nn.StateTensors(b)
	for name, ta := range sa {
		fa, _ := ta.Float32()
		fb, _ := sb[name].Float32()
		for i := range fa.Data {
			worst = math.Max(worst, math.Abs(float64(fa.Data[i]-fb.Data[i])))
		}
	}
	return worst
}

// BenchmarkDeepClusterClustering times one clustering of a 60k-image set
// with the defaults (features 512 -> PCA 256, 100 clusters, 20
// iterations) on random features; the forward pass over the set is not
// included.
func BenchmarkDeepClusterClustering(b *testing.B) {
	const n, f = 60000, 512
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*f)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	m, err := NewDeepCluster(DefaultDeepClusterConfig(n, 256), flatEncoder{f}, rng)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := m.cluster(0, x, n, f); err != nil {
			b.Fatal(err)
		}
	}
}

// checkClusterEpochs fails unless every epoch record has a clustering time
// and a finite, positive loss.
func checkClusterEpochs(t *testing.T, epochs []TrainEpoch) {
	t.Helper()
	for _, e := range epochs {
		r := e.Record
		if !(r.ClusterS > 0) || math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) || !(r.Loss > 0) {
			t.Errorf("epoch record %+v: want a clustering time and a finite loss", r)
		}
	}
}
