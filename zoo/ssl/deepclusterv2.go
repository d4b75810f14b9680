package ssl

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/eval"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
)

// DeepCluster v2's defaults.
const (
	// DefaultDeepClusterV2Heads is the number of sets of prototypes, each
	// clustering the memory bank on its own (the reference's
	// nmb_prototypes [3000, 3000, 3000]).
	DefaultDeepClusterV2Heads = 3
	// DefaultDeepClusterV2Iterations is the number of k-means iterations
	// (the reference's nmb_kmeans_iters).
	DefaultDeepClusterV2Iterations = 10
	// maxDeepClusterV2Heads bounds the heads (the draws' stream numbers
	// carry the head).
	maxDeepClusterV2Heads = 64
	// maxDeepClusterV2Bank is the largest memory bank in floats (4 GiB).
	maxDeepClusterV2Bank = 1 << 30
)

// DeepClusterV2Config configures DeepCluster v2 (Caron et al. 2020, the
// SwAV paper's variant of DeepCluster, main_deepclusterv2.py).
type DeepClusterV2Config struct {
	// ProjHidden and ProjDim size the projection head (2048 -> 128), whose
	// L2-normalised output is the embedding that is clustered.
	ProjHidden, ProjDim int
	// Prototypes is the number of clusters of each head (one k-means each;
	// each at most Images).
	Prototypes []int
	// Temperature divides the prototype scores before the softmax (0.1).
	Temperature float32
	// Iterations is the number of k-means iterations (10).
	Iterations int
	// GlobalCrops is the number of leading views whose embeddings the
	// memory bank keeps (2; the reference's crops_for_assign [0, 1]); head h
	// clusters those of crop h mod GlobalCrops.
	GlobalCrops int
	// Images is the size of the training set, which the memory bank and
	// the pseudo-labels are sized by.
	Images int
	// Seed, with the epoch and the head, draws the k-means initial
	// centroids; it is kept in the state ("cluster_seed").
	Seed  uint64
	Optim OptimConfig
}

// DefaultDeepClusterV2Config is the SwAV repository's DeepCluster v2
// recipe (scripts/deepclusterv2_*.sh) for a set of images images: the
// SwAV projection head 2048 -> 128, temperature 0.1, k-means of 10
// iterations on the two global crops' embeddings, and SwAV's optimizer
// (LARS at 4.8*batch/4096 with every parameter adapted, 10 warmup epochs,
// a cosine to a thousandth, weight decay 1e-6); the prototypes never train
// (freeze_prototypes_niters beyond the run). The reference's 3 heads of
// 3000 prototypes are for ImageNet's 1.28M images (427 a cluster); here
// each of the 3 heads has DefaultDeepClusterClustersFor(images) clusters,
// as DeepCluster: 100 for a set of 1000 images or more (600 a cluster on
// the 60k-image sets), a tenth of a smaller set. The caller sets Seed.
func DefaultDeepClusterV2Config(images, batch, stepsPerEpoch, epochs int) DeepClusterV2Config {
	sw := DefaultSwAVConfig(batch, stepsPerEpoch, epochs)
	return DeepClusterV2Config{
		ProjHidden: sw.ProjHidden, ProjDim: sw.ProjDim, Prototypes: deepClusterV2Heads(DefaultDeepClusterClustersFor(images)),
		Temperature: 0.1, Iterations: DefaultDeepClusterV2Iterations, GlobalCrops: 2, Images: images, Optim: sw.Optim,
	}
}

// UseCIFARRecipe switches c to solo-learn's CIFAR DeepCluster v2: LARS at
// 0.6 per 256 images with weight decay 1e-6 (biases and norms excluded),
// 11 warmup epochs and a cosine to a thousandth of the rate; 3 heads of
// 3000 prototypes, each capped at a tenth of the set (at least 2).
func (c *DeepClusterV2Config) UseCIFARRecipe(batch, stepsPerEpoch, epochs int) {
	c.Prototypes = deepClusterV2Heads(min(c.Images, max(2, min(3000, c.Images/10))))
	c.Optim = cifarLARS(0.6, 1e-6, batch, stepsPerEpoch, epochs)
	c.Optim.WarmupSteps, c.Optim.FinalLR = warmupOf(11, epochs, stepsPerEpoch), c.Optim.LR/1000
}

func deepClusterV2Heads(k int) []int {
	out := make([]int, DefaultDeepClusterV2Heads)
	for i := range out {
		out[i] = k
	}
	return out
}

// DeepClusterV2Stats describes one clustering of the memory bank.
type DeepClusterV2Stats struct {
	Epoch int // 0-based epoch it labels
	// Images is the number of images clustered (those with embeddings in
	// the bank); Filled reports that this clustering first filled the
	// bank by a pass over the set.
	Images int
	Filled bool
	// Per head: the clusters that got any image, the final k-means loss
	// (the sum of squared distances of the unit embeddings to their unit
	// centroids, 2 - 2 cos), and the normalised mutual information with
	// the previous clustering (NaN for the first one of a process).
	NonEmpty  []int
	Objective []float64
	NMI       []float64
	// Features is the time of the pass that filled the bank (0 when it
	// was full), Cluster that of the k-means.
	Features, Cluster time.Duration
}

// DeepClusterV2 trains an encoder to predict which cluster its images'
// embeddings fell in at the start of the epoch, as the SwAV repository's
// main_deepclusterv2.py: a projection head maps the pooled features to a
// unit embedding; a memory bank holds, for every training image, the
// embeddings of its GlobalCrops global crops from the last step that saw
// it; before every epoch, each head runs spherical k-means on the bank's
// embeddings of one global crop (sphericalKMeans) from distinct random
// rows, its centroids become that head's prototypes (a bias-free Linear,
// never trained by the gradient), and each image's cluster its
// pseudo-label. The loss is the cross-entropy of every crop's prototype
// scores over Temperature against its image's pseudo-label, averaged over
// the crops and then over the heads.
//
// The reference fills the bank before the first epoch with a no-grad pass
// over the training loader (both global crops, the network in training
// mode); sslzoo fills it, for the first clustering, with each image's
// embedding through the evaluation transform in evaluation mode (eval.
// Extract, as DeepCluster takes its features), the same row for every
// crop, so the pass leaves BatchNorm's statistics alone and needs no
// second augmentation stream. The reference's bank is positional, each
// epoch's images in loader order, so an image dropped with the last
// partial batch is left out of the next clustering; sslzoo's bank is by
// image, so that image is clustered on its older embedding.
//
// Only Train drives it: Train fills and clusters before each epoch
// (prepareEpoch) and tells Step which images its rows are
// (setBatchIndices); the epoch's order is the loader's shuffle. The bank
// [GlobalCrops, Images, ProjDim], the pseudo-labels [heads, Images], the
// clustered epoch and the seed are state buffers and the prototypes are
// parameters, so a run interrupted mid-epoch resumes with the same labels
// and bank. The bank is GlobalCrops*Images*ProjDim floats (61 MB for 60k
// images at the defaults), in every checkpoint.
//
// Data parallelism: the loss is per image, so the mean over the ranks of
// each rank's loss, its heads' cross-entropy sums divided by the global
// batch's count of labelled rows (over the ranks), is the global batch's
// loss and the averaged gradients are its gradients. Every step gathers
// the global batch's image indices (which give that count) and, after the
// update, its global crops' embeddings, which every rank writes into its
// bank: the bank is global on every rank at all times (rank 0's
// checkpoint holds all of it). The first clustering's pass over the set
// runs on every rank and rank 0's bank is broadcast; every rank then
// clusters, and rank 0's pseudo-labels and centroids are broadcast, as for
// DeepCluster.
type DeepClusterV2 struct {
	Config     DeepClusterV2Config
	Encoder    Encoder
	Projector  Head
	Prototypes []*nn.Linear // [K_h, ProjDim] each, no bias: the centroids
	parts
	opt nn.Optimizer
	// bank [GlobalCrops, Images, ProjDim] holds unit embeddings (a zero
	// row: none yet); labels [heads, Images] the pseudo-labels (-1: none);
	// epoch the epoch they belong to (-1 before the first clustering);
	// seed the draws' seed: all state buffers.
	bank, labels *tensor.Tensor
	epoch, seed  int64
	// batch holds the dataset indices of the next Step's rows.
	batch []int
	last  *DeepClusterV2Stats
}

// NewDeepClusterV2 wraps backbone with the projection head and the
// prototypes and builds the optimizer.
func NewDeepClusterV2(cfg DeepClusterV2Config, backbone Encoder, rng *rand.Rand) (*DeepClusterV2, error) {
	switch {
	case cfg.Images < 2 || cfg.Images > maxDeepClusterImages:
		return nil, fmt.Errorf("deepclusterv2: a set of %d images: want 2 to %d", cfg.Images, maxDeepClusterImages)
	case cfg.ProjHidden < 1 || cfg.ProjDim < 1:
		return nil, fmt.Errorf("deepclusterv2: projection head %d -> %d: want positive sizes", cfg.ProjHidden, cfg.ProjDim)
	case len(cfg.Prototypes) < 1 || len(cfg.Prototypes) > maxDeepClusterV2Heads:
		return nil, fmt.Errorf("deepclusterv2: %d sets of prototypes: want 1 to %d", len(cfg.Prototypes), maxDeepClusterV2Heads)
	case !(cfg.Temperature > 0) || math.IsInf(float64(cfg.Temperature), 0) || cfg.Iterations < 0:
		return nil, fmt.Errorf("deepclusterv2: temperature %g and %d k-means iterations: want a positive temperature and no negative count", cfg.Temperature, cfg.Iterations)
	case cfg.GlobalCrops < 1 || cfg.GlobalCrops > 16:
		return nil, fmt.Errorf("deepclusterv2: %d global crops in the memory bank: want 1 to 16", cfg.GlobalCrops)
	}
	for h, k := range cfg.Prototypes {
		if k < 2 || k > cfg.Images {
			return nil, fmt.Errorf("deepclusterv2: head %d has %d prototypes for %d images: want 2 to the number of images", h, k, cfg.Images)
		}
	}
	if n := int64(cfg.GlobalCrops) * int64(cfg.Images) * int64(cfg.ProjDim); n > maxDeepClusterV2Bank {
		return nil, fmt.Errorf("deepclusterv2: a memory bank of %d crops x %d images x %d dimensions is %.1f GiB, over the %d GiB limit",
			cfg.GlobalCrops, cfg.Images, cfg.ProjDim, float64(n)*4/(1<<30), maxDeepClusterV2Bank*4/(1<<30))
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	m := &DeepClusterV2{Config: cfg, Encoder: backbone, bank: tensor.New(cfg.GlobalCrops, cfg.Images, cfg.ProjDim),
		labels: tensor.New(len(cfg.Prototypes), cfg.Images), epoch: -1, seed: int64(cfg.Seed)}
	m.labels.Fill(-1)
	var err error
	if m.Projector, err = newMLPHead([]int{backbone.FeatureDim(), cfg.ProjHidden, cfg.ProjDim}, true, rng); err != nil {
		return nil, fmt.Errorf("deepclusterv2: projector: %w", err)
	}
	// The reference's MultiPrototypes names: prototypes.prototypes0, ...
	protos := make(group, len(cfg.Prototypes))
	for h, k := range cfg.Prototypes {
		p := nn.NewLinear(cfg.ProjDim, k, false, rng)
		normalizeRows(p.Weight.Value)
		p.Weight.SetRequiresGrad(false) // overwritten by every clustering
		m.Prototypes = append(m.Prototypes, p)
		protos[h] = part{fmt.Sprintf("prototypes%d", h), p, false}
	}
	m.list = group{{"backbone", backbone, true}, {"projector", m.Projector, true}, {"prototypes", protos, false}}
	m.buffers = func(prefix string, s *nn.State) {
		s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "memory_bank"), T: m.bank},
			nn.Buffer{Name: nn.Join(prefix, "pseudo_labels"), T: m.labels},
			nn.Buffer{Name: nn.Join(prefix, "clustered_epoch"), Count: &m.epoch},
			nn.Buffer{Name: nn.Join(prefix, "cluster_seed"), Count: &m.seed})
	}
	if m.opt, err = cfg.Optim.build(m.trainable()); err != nil {
		return nil, fmt.Errorf("deepclusterv2: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *DeepClusterV2) Name() string            { return "deepclusterv2" }
func (m *DeepClusterV2) Backbone() Encoder       { return m.Encoder }
func (m *DeepClusterV2) Optimizer() nn.Optimizer { return m.opt }
func (m *DeepClusterV2) Configuration() any      { return m.Config }
func (m *DeepClusterV2) Schedule() OptimConfig   { return m.Config.Optim }

// LastClustering describes the clustering this process ran last; false
// before any (a run resumed mid-epoch keeps the checkpoint's).
func (m *DeepClusterV2) LastClustering() (DeepClusterV2Stats, bool) {
	if m.last == nil {
		return DeepClusterV2Stats{}, false
	}
	return *m.last, true
}

// PseudoLabels returns each head's pseudo-label of every training image
// (-1: none) and the epoch they were made for (-1: none yet).
func (m *DeepClusterV2) PseudoLabels() ([][]int, int) {
	n := m.Config.Images
	out := make([][]int, len(m.Config.Prototypes))
	for h := range out {
		out[h] = make([]int, n)
		for i, v := range m.labels.Data[h*n : (h+1)*n] {
			out[h][i] = int(v)
		}
	}
	return out, int(m.epoch)
}

// epochHook is a method that works on the whole training set before an
// epoch's first step and needs to know which images each step's rows are
// (DeepCluster, DeepCluster v2); an epochPreparer also orders the epoch.
type epochHook interface {
	prepareEpoch(ctx context.Context, epoch int, src epochSource) (bool, error)
	setBatchIndices(idx []int)
}

func (m *DeepClusterV2) setBatchIndices(idx []int) { m.batch = idx }

// dcv2Embedder is the backbone and projection head as one eval.Encoder:
// the unit embedding the bank holds.
type dcv2Embedder struct{ m *DeepClusterV2 }

func (e dcv2Embedder) CollectState(prefix string, s *nn.State) { e.m.CollectState(prefix, s) }
func (e dcv2Embedder) SetTraining(on bool)                     { e.m.SetTraining(on) }
func (e dcv2Embedder) FeatureDim() int                         { return e.m.Config.ProjDim }
func (e dcv2Embedder) Features(tp *autograd.Tape, x *autograd.Var) *autograd.Var {
	return tp.L2Normalize(e.m.Projector.Forward(tp, e.m.Encoder.Features(tp, x)), 1, normEps)
}

// prepareEpoch clusters the memory bank for epoch (filling it first when
// no clustering has run yet), unless the state already holds that epoch's
// clustering (a resume mid-epoch). Nothing changes unless it succeeds.
func (m *DeepClusterV2) prepareEpoch(ctx context.Context, epoch int, src epochSource) (bool, error) {
	if m.epoch == int64(epoch) {
		return false, nil
	}
	if n := src.ds.Len(); n != m.Config.Images {
		return false, fmt.Errorf("deepclusterv2: built for %d images, the training set has %d", m.Config.Images, n)
	}
	t0 := time.Now()
	bank := m.bank.Data
	var fresh []float32
	if m.epoch < 0 {
		f, err := eval.Extract(ctx, dcv2Embedder{m}, indexedSet{src.ds}, src.extract)
		m.SetTraining(true)
		if err != nil {
			return false, fmt.Errorf("deepclusterv2: filling the memory bank for epoch %d: %w", epoch+1, err)
		}
		n, d := m.Config.Images, m.Config.ProjDim
		fresh = make([]float32, len(bank))
		for r, i := range f.Labels {
			for c := range m.Config.GlobalCrops {
				copy(fresh[(c*n+i)*d:(c*n+i+1)*d], f.X[r*d:(r+1)*d])
			}
		}
		if m.parallel() {
			// Every rank took the same embeddings, up to its kernels'
			// summation order; rank 0's are the ones all ranks keep.
			if err := m.comm.Bcast(fresh, 0); err != nil {
				return false, fmt.Errorf("deepclusterv2: sharing rank 0's memory bank: %w", err)
			}
		}
		bank = fresh
	}
	t1 := time.Now()
	labels, centroids, st, err := m.cluster(epoch, bank)
	if err != nil {
		return false, fmt.Errorf("deepclusterv2: clustering for epoch %d: %w", epoch+1, err)
	}
	if m.parallel() {
		if err := m.comm.Bcast(labels, 0); err != nil {
			return false, fmt.Errorf("deepclusterv2: sharing rank 0's pseudo-labels: %w", err)
		}
		if err := m.comm.Bcast(centroids, 0); err != nil {
			return false, fmt.Errorf("deepclusterv2: sharing rank 0's centroids: %w", err)
		}
	}
	st.Filled = fresh != nil
	if st.Filled {
		st.Features = t1.Sub(t0)
	}
	st.Cluster = time.Since(t1)
	prev, _ := m.PseudoLabels()
	n := m.Config.Images
	for h := range m.Config.Prototypes {
		st.NMI = append(st.NMI, math.NaN())
		if m.epoch >= 0 {
			next := make([]int, n)
			for i, v := range labels[h*n : (h+1)*n] {
				next[i] = int(v)
			}
			st.NMI[h] = nmi(prev[h], next)
		}
	}
	if fresh != nil {
		copy(m.bank.Data, fresh)
	}
	copy(m.labels.Data, labels)
	off := 0
	for _, p := range m.Prototypes {
		off += copy(p.Weight.Value.Data, centroids[off:])
	}
	m.epoch = int64(epoch)
	m.last = &st
	return true, nil
}

// cluster runs each head's spherical k-means on its crop's rows of bank
// [GlobalCrops, Images, ProjDim] that hold an embedding, from distinct
// random rows. It returns the pseudo-labels [heads, Images] (-1 for the
// images left out) and the heads' centroids, one after the other.
func (m *DeepClusterV2) cluster(epoch int, bank []float32) (labels, centroids []float32, st DeepClusterV2Stats, err error) {
	n, d, g := m.Config.Images, m.Config.ProjDim, m.Config.GlobalCrops
	st.Epoch = epoch
	labels = make([]float32, len(m.Config.Prototypes)*n)
	for i := range labels {
		labels[i] = -1
	}
	for h, k := range m.Config.Prototypes {
		block := bank[(h%g)*n*d : (h%g+1)*n*d]
		var rows []int
		for i := range n {
			if sqNorm(block[i*d:(i+1)*d]) > 0 {
				rows = append(rows, i)
			}
		}
		x := block
		if len(rows) < n {
			x = make([]float32, len(rows)*d)
			for r, i := range rows {
				copy(x[r*d:(r+1)*d], block[i*d:(i+1)*d])
			}
		}
		if len(rows) < k {
			return nil, nil, st, fmt.Errorf("head %d: %d images in the memory bank, fewer than its %d prototypes", h, len(rows), k)
		}
		init := make([]float32, k*d)
		rng := rand.New(rand.NewPCG(uint64(m.seed), uint64(epoch)<<8|uint64(h)))
		for c, r := range rng.Perm(len(rows))[:k] {
			copy(init[c*d:(c+1)*d], x[r*d:(r+1)*d])
		}
		res, err := sphericalKMeans(x, len(rows), d, init, k, m.Config.Iterations)
		if err != nil {
			return nil, nil, st, fmt.Errorf("head %d: %w", h, err)
		}
		seen := make([]bool, k)
		nonEmpty := 0
		for r, a := range res.Assign {
			labels[h*n+rows[r]] = float32(a)
			if !seen[a] {
				seen[a] = true
				nonEmpty++
			}
		}
		centroids = append(centroids, res.Centroids...)
		st.Images = len(rows)
		st.NonEmpty = append(st.NonEmpty, nonEmpty)
		st.Objective = append(st.Objective, res.Final)
	}
	return labels, centroids, st, nil
}

// sphericalKMeans runs iters iterations of k-means on the unit sphere on
// the n rows of x [n, d] from the initial centroids init [k, d], as the
// reference's cluster_memory: assign each row to the centroid of the
// largest dot product (the lowest index on a tie), move each centroid
// that got rows to their mean, then scale every centroid to unit length;
// an empty cluster keeps its centroid (the reference masks it out of the
// update; DeepCluster's faiss re-seeds it instead, splitEmpty). The
// result's assignment is one more pass against the final centroids (the
// reference's last E step). The rows should be unit vectors; the
// objective is then 2 - 2 cos summed over the rows.
func sphericalKMeans(x []float32, n, d int, init []float32, k, iters int) (kmeansResult, error) {
	return lloyd("spherical k-means", x, n, d, init, k, iters, true, func(res *kmeansResult, sums []float64, counts []int) {
		for c, cnt := range counts {
			if cnt == 0 {
				continue
			}
			for j := range d {
				res.Centroids[c*d+j] = float32(sums[c*d+j] / float64(cnt))
			}
		}
		normaliseRows(res.Centroids, k, d)
	})
}

// DeepClusterV2Loss is DeepCluster v2's loss on the unit embeddings z
// [R, D] of every crop of a batch (crop by crop): for each head h, the
// cross-entropy of the scores z P_h^T / temperature (prototypes[h] is
// [K_h, D]) against targets[h] (R entries; autograd.IgnoreIndex skips a
// row), averaged over the rows it counts; then the mean over the heads.
// divisors, when given, replaces each head's count of rows as the
// divisor of its sum (data parallelism: the global count over the ranks).
// A head with no counted row contributes 0.
func DeepClusterV2Loss(tp *autograd.Tape, z *autograd.Var, prototypes []*autograd.Var, targets [][]int, temperature float32, divisors []float64) (*autograd.Var, error) {
	switch {
	case len(z.Shape()) != 2:
		return nil, fmt.Errorf("deepclusterv2 loss: embeddings of shape %v: want [R, D]", z.Shape())
	case len(prototypes) < 1 || len(targets) != len(prototypes) || divisors != nil && len(divisors) != len(prototypes):
		return nil, fmt.Errorf("deepclusterv2 loss: %d heads of prototypes, %d of targets, %d divisors", len(prototypes), len(targets), len(divisors))
	case !(temperature > 0):
		return nil, fmt.Errorf("deepclusterv2 loss: temperature %g", temperature)
	}
	r := z.Shape()[0]
	var loss *autograd.Var
	for h, p := range prototypes {
		if len(targets[h]) != r {
			return nil, fmt.Errorf("deepclusterv2 loss: head %d has %d targets for %d embeddings", h, len(targets[h]), r)
		}
		if s := p.Shape(); len(s) != 2 || s[1] != z.Shape()[1] {
			return nil, fmt.Errorf("deepclusterv2 loss: head %d prototypes of shape %v for embeddings of %d", h, s, z.Shape()[1])
		}
		count := 0
		for i, t := range targets[h] {
			if t == autograd.IgnoreIndex {
				continue
			}
			if t < 0 || t >= p.Shape()[0] {
				return nil, fmt.Errorf("deepclusterv2 loss: head %d row %d has target %d of %d prototypes", h, i, t, p.Shape()[0])
			}
			count++
		}
		if count == 0 {
			continue
		}
		scale := 1 / float32(len(prototypes))
		if divisors != nil {
			if !(divisors[h] > 0) {
				return nil, fmt.Errorf("deepclusterv2 loss: head %d counts %d rows but its divisor is %g", h, count, divisors[h])
			}
			scale = float32(float64(count) / divisors[h] / float64(len(prototypes)))
		}
		ce := tp.CrossEntropy(tp.MulScalar(tp.Linear(z, p, nil), 1/temperature), targets[h])
		term := tp.MulScalar(ce, scale)
		if loss == nil {
			loss = term
		} else {
			loss = tp.Add(loss, term)
		}
	}
	if loss == nil {
		// Nothing labelled: a zero that still runs the backward pass (and
		// its collectives) like any other step.
		loss = tp.MulScalar(tp.SumAll(z), 0)
	}
	return loss, nil
}

// Step runs one DeepCluster v2 iteration on the crops of a batch, the
// first GlobalCrops views the global crops, the rest local crops (smaller
// images allowed), of the images Train named with setBatchIndices: the
// cross-entropy of every crop's prototype scores against its image's
// pseudo-labels; then the global crops' embeddings (those of the forward
// pass) replace the images' rows of the memory bank.
//
// Under data parallelism it gathers the global batch's image indices
// (values; the count of labelled rows divides every rank's loss, and they
// name the bank's rows) and, after the update, the global crops'
// embeddings of every rank, which every rank writes into its bank.
func (m *DeepClusterV2) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	idx := m.batch
	m.batch = nil
	g := m.Config.GlobalCrops
	if err := checkViews("deepclusterv2", views, max(2, g), false); err != nil {
		return 0, err
	}
	b := views[0].Shape[0]
	for i := 1; i < g; i++ {
		if !tensor.SameShape(views[i].Shape, views[0].Shape) {
			return 0, fmt.Errorf("deepclusterv2: global crop %d has shape %v, crop 0 %v", i, views[i].Shape, views[0].Shape)
		}
	}
	if m.epoch < 0 {
		return 0, fmt.Errorf("deepclusterv2: no pseudo-labels yet; ssl.Train clusters the memory bank before each epoch")
	}
	if len(idx) != b {
		return 0, fmt.Errorf("deepclusterv2: %d crops but %d image indices (ssl.Train passes each batch's indices)", b, len(idx))
	}
	n := m.Config.Images
	for _, i := range idx {
		if i < 0 || i >= n {
			return 0, fmt.Errorf("deepclusterv2: image %d of a set of %d", i, n)
		}
	}
	_, ranks := m.ranks()
	heads := len(m.Prototypes)
	var z *autograd.Var
	var all []int // the global batch's images, rank by rank
	return runStep(tp, "deepclusterv2", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		own := make([]float32, b)
		for r, i := range idx {
			own[r] = float32(i)
		}
		for _, v := range m.gatherValues("deepclusterv2 indices", tensor.FromSlice(own, b)).Data {
			all = append(all, int(v))
		}
		targets := make([][]int, heads)
		divisors := make([]float64, heads)
		for h := range heads {
			lab := m.labels.Data[h*n : (h+1)*n]
			targets[h] = make([]int, len(views)*b)
			for r, i := range idx {
				t := int(lab[i])
				if t < 0 {
					t = autograd.IgnoreIndex
				}
				for c := range views {
					targets[h][c*b+r] = t
				}
			}
			for _, i := range all {
				if lab[i] >= 0 {
					divisors[h] += float64(len(views))
				}
			}
			divisors[h] /= float64(ranks)
		}
		z = tp.L2Normalize(m.Projector.Forward(tp, multiCropFeatures(tp, m.Encoder, views)), 1, normEps)
		protos := make([]*autograd.Var, heads)
		for h, p := range m.Prototypes {
			protos[h] = p.Weight
		}
		return DeepClusterV2Loss(tp, z, protos, targets, m.Config.Temperature, divisors)
	}, func() {
		m.opt.Step()
		d := m.Config.ProjDim
		emb := m.gatherValues("deepclusterv2 memory bank", tensor.FromSlice(z.Value.Data[:g*b*d], g*b, d)).Data
		for k, i := range all {
			r, row := k/b, k%b
			for c := range g {
				src := emb[((r*g+c)*b+row)*d:]
				copy(m.bank.Data[(c*n+i)*d:(c*n+i+1)*d], src[:d])
			}
		}
	})
}
