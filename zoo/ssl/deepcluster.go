package ssl

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/data"
	"github.com/sslzoo/sslzoo/data/augment"
	"github.com/sslzoo/sslzoo/eval"
	"github.com/sslzoo/sslzoo/nn"
	"github.com/sslzoo/sslzoo/tensor"
	"github.com/sslzoo/sslzoo/weights"
)

// DeepCluster's defaults.
const (
	// DefaultDeepClusterClusters is k for a set of 1000 images or more. The
	// paper takes 10000 clusters for ImageNet's 1.28M images (ten times its
	// classes, about 128 images a cluster); 100 is ten times the classes of
	// the 60k-image sets here (600 images a cluster). Smaller sets get one
	// cluster per 10 images, at least 2.
	DefaultDeepClusterClusters = 100
	// DefaultDeepClusterPCADim is the whitened dimension (the paper's 256),
	// capped at the backbone's feature dimension and at one less than the
	// number of images.
	DefaultDeepClusterPCADim = 256
	// DefaultDeepClusterIterations is the number of k-means iterations, as
	// the reference (clus.niter = 20 in its faiss call).
	DefaultDeepClusterIterations = 20
)

// maxDeepClusterImages is the largest set whose image indices and labels
// the float32 state buffers hold exactly.
const maxDeepClusterImages = 1 << 24

// The PCG streams of an epoch's random draws (with the epoch in the
// stream number).
const (
	dcStreamInit = iota + 1
	dcStreamSplit
	dcStreamSampler
	dcStreamClassifier
)

// DeepClusterConfig configures DeepCluster (Caron et al. 2018, "Deep
// Clustering for Unsupervised Learning of Visual Features").
type DeepClusterConfig struct {
	// Clusters is k, the number of pseudo-classes (and the classifier's
	// outputs); at most Images.
	Clusters int
	// PCADim is the dimension the features are PCA-whitened to before
	// k-means (capped at the feature dimension and Images-1).
	PCADim int
	// Iterations is the number of k-means (Lloyd) iterations.
	Iterations int
	// Images is the size of the training set, which the state buffers of
	// the pseudo-labels and the epoch's order are sized by.
	Images int
	// Seed, with the epoch, draws the k-means initial centroids, the
	// re-seeding of empty clusters, the epoch's sampling and the
	// classifier's re-initialisation. It is kept in the state
	// ("cluster_seed").
	Seed  uint64
	Optim OptimConfig
}

// DefaultDeepClusterClustersFor is the default k for a set of n images:
// DefaultDeepClusterClusters, or n/10 (at least 2, at most n) for sets of
// fewer than 1000 images.
func DefaultDeepClusterClustersFor(n int) int {
	return min(n, max(2, min(DefaultDeepClusterClusters, n/10)))
}

// DefaultDeepClusterConfig is the paper's recipe for a set of images
// images and batches of batch: SGD with momentum 0.9 at a constant
// 0.05*batch/256 (the reference's 0.05 at batch 256, no schedule) and
// weight decay 1e-5; the classifier, re-initialised at every clustering,
// is updated by plain SGD at the same rate and decay without momentum, as
// the reference's separate top-layer optimizer; k-means with
// DefaultDeepClusterClustersFor(images) clusters, 20 iterations, on the
// features PCA-whitened to 256 dimensions. The caller sets Seed.
func DefaultDeepClusterConfig(images, batch int) DeepClusterConfig {
	return DeepClusterConfig{
		Clusters: DefaultDeepClusterClustersFor(images), PCADim: DefaultDeepClusterPCADim,
		Iterations: DefaultDeepClusterIterations, Images: images,
		Optim: OptimConfig{Name: "sgd", LR: scaleLR(0.05, batch), Momentum: 0.9, WeightDecay: 1e-5},
	}
}

// DeepClusterStats describes one clustering.
type DeepClusterStats struct {
	Epoch int // 0-based epoch it labels
	// Images is the number of images clustered (those whose features were
	// taken), NonEmpty the clusters that got any, Dim the whitened
	// dimension.
	Images, NonEmpty, Dim int
	// Objective is the final k-means loss (the sum of squared distances of
	// the whitened, normalised features to their centroids); Splits the
	// empty clusters re-seeded over the iterations.
	Objective float64
	Splits    int
	// NMI is the normalised mutual information with the previous
	// clustering (NaN for the first one of a process): 1 means the
	// pseudo-labels did not change.
	NMI float64
	// Features and Cluster are the time taken by the forward pass over
	// the set and by PCA, k-means and the sampler.
	Features, Cluster time.Duration
}

// DeepCluster trains an encoder to classify its own clusters: at the start
// of every epoch the features of the whole training set (the backbone in
// evaluation mode, on the evaluation transform) are PCA-whitened,
// L2-normalised and clustered by k-means; the assignments become
// pseudo-labels, the classifier (one Linear over the pooled features) is
// re-initialised, and the epoch trains backbone and classifier with
// cross-entropy on the pseudo-labels, one random crop and flip per image,
// the images drawn uniformly over the clusters (uniformOrder).
//
// Only Train drives it: Train clusters the set before each epoch
// (prepareEpoch), gives the loader the epoch's order (epochOrder) and
// tells Step which images its rows are (setBatchIndices). The
// pseudo-labels, the epoch's order and the clustered epoch are state
// buffers, so a run interrupted mid-epoch resumes with the same labels and
// order; the PCA and the centroids are not kept, as nothing uses them
// after the assignment (the next clustering fits its own).
//
// Data parallelism: the loss is per image, so averaging the gradients of
// equal rank batches gives the global batch's exactly, as for Jigsaw.
// Every rank holds the whole set and the same weights, so each takes the
// features of all images and clusters them; since kernels on another
// thread count may sum in another order, rank 0's labels and epoch order
// (2N floats) are then broadcast, and the loader shards that common order
// as it does the shuffle.
type DeepCluster struct {
	Config     DeepClusterConfig
	Encoder    Encoder
	Classifier *nn.Linear
	parts
	opt *deepClusterSGD
	// labels [Images] is each image's pseudo-label (-1: none), order
	// [Images] the epoch's image order, epoch the epoch they belong to (-1
	// before the first clustering), seed the draws' seed: all state
	// buffers.
	labels, order *tensor.Tensor
	epoch, seed   int64
	// batch holds the dataset indices of the next Step's rows.
	batch []int
	last  *DeepClusterStats
}

// NewDeepCluster wraps backbone with a classifier of cfg.Clusters outputs
// and builds the optimizer.
func NewDeepCluster(cfg DeepClusterConfig, backbone Encoder, rng *rand.Rand) (*DeepCluster, error) {
	switch {
	case cfg.Images < 2 || cfg.Images > maxDeepClusterImages:
		return nil, fmt.Errorf("deepcluster: a set of %d images: want 2 to %d", cfg.Images, maxDeepClusterImages)
	case cfg.Clusters < 2 || cfg.Clusters > cfg.Images:
		return nil, fmt.Errorf("deepcluster: %d clusters for %d images: want 2 to the number of images", cfg.Clusters, cfg.Images)
	case cfg.PCADim < 1 || cfg.Iterations < 0:
		return nil, fmt.Errorf("deepcluster: PCA dimension %d and %d k-means iterations: want a positive dimension and no negative count", cfg.PCADim, cfg.Iterations)
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	m := &DeepCluster{Config: cfg, Encoder: backbone, Classifier: nn.NewLinear(backbone.FeatureDim(), cfg.Clusters, true, rng),
		labels: tensor.New(cfg.Images), order: tensor.New(cfg.Images), epoch: -1, seed: int64(cfg.Seed)}
	m.labels.Fill(-1)
	m.list = []part{{"backbone", backbone, true}, {"classifier", m.Classifier, true}}
	m.buffers = func(prefix string, s *nn.State) {
		s.Buffers = append(s.Buffers, nn.Buffer{Name: nn.Join(prefix, "pseudo_labels"), T: m.labels},
			nn.Buffer{Name: nn.Join(prefix, "epoch_order"), T: m.order},
			nn.Buffer{Name: nn.Join(prefix, "clustered_epoch"), Count: &m.epoch},
			nn.Buffer{Name: nn.Join(prefix, "cluster_seed"), Count: &m.seed})
	}
	var err error
	if m.opt, err = newDeepClusterSGD(m.trainable(), cfg.Optim); err != nil {
		return nil, fmt.Errorf("deepcluster: %w", err)
	}
	m.SetTraining(true)
	return m, nil
}

func (m *DeepCluster) Name() string            { return "deepcluster" }
func (m *DeepCluster) Backbone() Encoder       { return m.Encoder }
func (m *DeepCluster) Optimizer() nn.Optimizer { return m.opt }
func (m *DeepCluster) Configuration() any      { return m.Config }
func (m *DeepCluster) Schedule() OptimConfig   { return m.Config.Optim }

// LastClustering describes the clustering this process ran last; false
// before any (a resumed run that continues an epoch reuses the
// checkpoint's pseudo-labels and has run none yet).
func (m *DeepCluster) LastClustering() (DeepClusterStats, bool) {
	if m.last == nil {
		return DeepClusterStats{}, false
	}
	return *m.last, true
}

// PseudoLabels returns each training image's pseudo-label (-1: none) and
// the epoch they were made for (-1: none yet).
func (m *DeepCluster) PseudoLabels() ([]int, int) {
	out := make([]int, len(m.labels.Data))
	for i, v := range m.labels.Data {
		out[i] = int(v)
	}
	return out, int(m.epoch)
}

// epochPreparer is a method that works on the whole training set before an
// epoch's first step and orders the epoch's images itself (DeepCluster).
type epochPreparer interface {
	// prepareEpoch runs before every epoch, the resumed one too, and
	// reports whether it did any work (a method resumed mid-epoch keeps
	// its checkpoint's state).
	prepareEpoch(ctx context.Context, epoch int, src epochSource) (bool, error)
	// epochOrder is the loader's LoaderConfig.Order.
	epochOrder(epoch int) []int
	// setBatchIndices names the dataset images of the next Step's rows.
	setBatchIndices(idx []int)
}

// epochSource is the training set as prepareEpoch sees it: every image,
// through the evaluation transform.
type epochSource struct {
	ds      data.Dataset
	extract eval.ExtractConfig
}

// indexedSet labels each image with its index, so the features that
// eval.Extract returns name their images (it leaves out skipped ones).
type indexedSet struct{ data.Dataset }

func (s indexedSet) Get(i int) (*augment.Image, int, error) {
	img, _, err := s.Dataset.Get(i)
	return img, i, err
}

func (m *DeepCluster) rng(epoch int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(m.seed), uint64(epoch)<<4|stream))
}

func (m *DeepCluster) setBatchIndices(idx []int) { m.batch = idx }

func (m *DeepCluster) epochOrder(epoch int) []int {
	if m.epoch != int64(epoch) {
		return nil // the loader reports the empty order
	}
	out := make([]int, len(m.order.Data))
	for i, v := range m.order.Data {
		out[i] = int(v)
	}
	return out
}

// prepareEpoch clusters the training set for epoch, unless the state
// already holds that epoch's clustering (a resume mid-epoch). Nothing
// changes unless it succeeds.
func (m *DeepCluster) prepareEpoch(ctx context.Context, epoch int, src epochSource) (bool, error) {
	if m.epoch == int64(epoch) {
		return false, nil
	}
	if n := src.ds.Len(); n != m.Config.Images {
		return false, fmt.Errorf("deepcluster: built for %d images, the training set has %d", m.Config.Images, n)
	}
	t0 := time.Now()
	f, err := eval.Extract(ctx, m.Encoder, indexedSet{src.ds}, src.extract)
	m.SetTraining(true)
	if err != nil {
		return false, fmt.Errorf("deepcluster: features for epoch %d: %w", epoch+1, err)
	}
	t1 := time.Now()
	idx := f.Labels
	assign, st, err := m.cluster(epoch, f.X, f.N, f.D)
	if err != nil {
		return false, fmt.Errorf("deepcluster: clustering for epoch %d: %w", epoch+1, err)
	}
	labels := make([]int, m.Config.Images)
	for i := range labels {
		labels[i] = -1
	}
	for r, i := range idx {
		labels[i] = assign[r]
	}
	order, err := uniformOrder(labels, m.Config.Clusters, m.rng(epoch, dcStreamSampler))
	if err != nil {
		return false, fmt.Errorf("deepcluster: epoch %d: %w", epoch+1, err)
	}
	st.NMI = math.NaN()
	if m.epoch >= 0 {
		prev, _ := m.PseudoLabels()
		st.NMI = nmi(prev, labels)
	}
	st.Features, st.Cluster = t1.Sub(t0), time.Since(t1)
	for i, l := range labels {
		m.labels.Data[i] = float32(l)
	}
	for i, v := range order {
		m.order.Data[i] = float32(v)
	}
	if m.parallel() {
		// Every rank clustered the whole set from the same weights, but
		// its kernels may sum in another order; rank 0's labels and
		// order are the ones all ranks follow.
		if err := m.comm.Bcast(m.labels.Data, 0); err != nil {
			return false, fmt.Errorf("deepcluster: sharing rank 0's pseudo-labels: %w", err)
		}
		if err := m.comm.Bcast(m.order.Data, 0); err != nil {
			return false, fmt.Errorf("deepcluster: sharing rank 0's epoch order: %w", err)
		}
	}
	m.epoch = int64(epoch)
	m.resetClassifier(epoch)
	m.last = &st
	return true, nil
}

// cluster PCA-whitens and L2-normalises the n feature rows x [n, f] and
// clusters them with k-means from k distinct random rows (faiss's
// initialisation); it returns each row's cluster.
func (m *DeepCluster) cluster(epoch int, x []float32, n, f int) ([]int, DeepClusterStats, error) {
	k := m.Config.Clusters
	if n < k {
		return nil, DeepClusterStats{}, fmt.Errorf("%d images gave features, fewer than the %d clusters", n, k)
	}
	d := max(1, min(m.Config.PCADim, f, n-1))
	pca, err := fitPCA(x, n, f, d)
	if err != nil {
		return nil, DeepClusterStats{}, err
	}
	y := pca.apply(x, n)
	init := make([]float32, k*d)
	for c, r := range m.rng(epoch, dcStreamInit).Perm(n)[:k] {
		copy(init[c*d:(c+1)*d], y[r*d:(r+1)*d])
	}
	res, err := kmeans(y, n, d, init, k, m.Config.Iterations, m.rng(epoch, dcStreamSplit))
	if err != nil {
		return nil, DeepClusterStats{}, err
	}
	st := DeepClusterStats{Epoch: epoch, Images: n, Dim: d, Objective: res.Final, Splits: res.Splits}
	seen := make([]bool, k)
	for _, a := range res.Assign {
		if !seen[a] {
			seen[a] = true
			st.NonEmpty++
		}
	}
	return res.Assign, st, nil
}

// resetClassifier draws a fresh classifier as the reference does after
// every clustering: weights from N(0, 0.01^2), biases 0. It has no
// optimizer state to reset (no momentum).
func (m *DeepCluster) resetClassifier(epoch int) {
	nn.Normal(m.Classifier.Weight.Value, 0, 0.01, m.rng(epoch, dcStreamClassifier))
	if m.Classifier.Bias != nil {
		m.Classifier.Bias.Value.Zero()
	}
}

// Step runs one DeepCluster iteration on one view, the crops [N, C, H, W]
// of the images Train named with setBatchIndices: cross-entropy of the
// classifier's scores against their pseudo-labels.
func (m *DeepCluster) Step(tp *autograd.Tape, views []*tensor.Tensor) (float32, error) {
	idx := m.batch
	m.batch = nil
	if err := checkViews("deepcluster", views, 1, true); err != nil {
		return 0, err
	}
	n := views[0].Shape[0]
	if m.epoch < 0 {
		return 0, fmt.Errorf("deepcluster: no pseudo-labels yet; ssl.Train clusters the training set before each epoch")
	}
	if len(idx) != n {
		return 0, fmt.Errorf("deepcluster: %d crops but %d image indices (ssl.Train passes each batch's indices)", n, len(idx))
	}
	labels := make([]int, n)
	for r, i := range idx {
		if i < 0 || i >= len(m.labels.Data) {
			return 0, fmt.Errorf("deepcluster: image %d of a set of %d", i, len(m.labels.Data))
		}
		if labels[r] = int(m.labels.Data[i]); labels[r] < 0 {
			return 0, fmt.Errorf("deepcluster: image %d has no pseudo-label (its features were not taken)", i)
		}
	}
	return m.step(tp, views[0], labels)
}

// step is Step with the pseudo-labels given (the golden test's).
func (m *DeepCluster) step(tp *autograd.Tape, v *tensor.Tensor, labels []int) (float32, error) {
	return runStep(tp, "deepcluster", &m.parts, m.opt, m.Config.Optim, func() (*autograd.Var, error) {
		feats := m.Encoder.Features(tp, autograd.Const(v))
		return tp.CrossEntropy(m.Classifier.Forward(tp, feats), labels), nil
	}, m.opt.Step)
}

// deepClusterSGD is the reference's two optimizers as one: SGD with the
// config's momentum over the backbone, and SGD without momentum over the
// classifier (whose state would not survive its re-initialisation
// anyway), at the same rate and weight decay. Only the backbone's has
// state to save.
type deepClusterSGD struct {
	backbone, top *nn.SGD
}

func newDeepClusterSGD(params []nn.Param, oc OptimConfig) (*deepClusterSGD, error) {
	if oc.Name != "sgd" {
		return nil, fmt.Errorf("optimizer %q: DeepCluster trains with sgd", oc.Name)
	}
	if err := oc.validate(); err != nil {
		return nil, fmt.Errorf("optimizer %q: %w", oc.Name, err)
	}
	var body, top []nn.Param
	for _, p := range params {
		if strings.HasPrefix(p.Name, "classifier.") {
			top = append(top, p)
		} else {
			body = append(body, p)
		}
	}
	lr, wd := float32(oc.LRAt(0)), float32(oc.WeightDecay)
	return &deepClusterSGD{
		backbone: nn.NewSGD(body, nn.SGDConfig{LR: lr, Momentum: float32(oc.Momentum), WeightDecay: wd}),
		top:      nn.NewSGD(top, nn.SGDConfig{LR: lr, WeightDecay: wd}),
	}, nil
}

func (o *deepClusterSGD) Step()            { o.backbone.Step(); o.top.Step() }
func (o *deepClusterSGD) ZeroGrad()        { o.backbone.ZeroGrad(); o.top.ZeroGrad() }
func (o *deepClusterSGD) SetLR(lr float32) { o.backbone.SetLR(lr); o.top.SetLR(lr) }
func (o *deepClusterSGD) LR() float32      { return o.backbone.LR() }

// StateTensors implements nn.OptimizerState: the backbone's momentum and
// the rate.
func (o *deepClusterSGD) StateTensors() map[string]*weights.Tensor { return o.backbone.StateTensors() }

// LoadStateTensors implements nn.OptimizerState.
func (o *deepClusterSGD) LoadStateTensors(ts map[string]*weights.Tensor) error {
	if err := o.backbone.LoadStateTensors(ts); err != nil {
		return err
	}
	o.top.SetLR(o.backbone.LR())
	return nil
}
