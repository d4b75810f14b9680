package ssl

import (
	"fmt"
	"math"

	"github.com/sslzoo/sslzoo/autograd"
	"github.com/sslzoo/sslzoo/tensor"
)

// normEps is torch.nn.functional.normalize's default epsilon, which all the
// reference implementations use.
const normEps = 1e-12

// maskedLogit is added to logits that must drop out of a softmax. exp of
// anything this far below the row maximum is exactly 0 in float32, so the
// result equals PyTorch's masked_fill(-inf) without producing infinities
// that would turn gradients into NaN.
const maskedLogit = -1e9

// NTXent is SimCLR's normalised temperature-scaled cross-entropy over the
// 2N embeddings of two views: z1[i] and z2[i] are the two views of image i.
// Rows are L2-normalised, the similarity matrix is divided by temperature,
// each row's self-similarity is excluded, and the positive of row i is the
// other view of the same image. The result is the mean over all 2N rows.
func NTXent(tp *autograd.Tape, z1, z2 *autograd.Var, temperature float32) *autograd.Var {
	return ntXent(tp, z1, z2, temperature, &world{})
}

// ntXent is NTXent on one of several ranks: this rank's 2n rows are the
// anchors, and the normalised rows of every rank (gathered, in rank order)
// are what they are compared with, so the negatives span the global batch.
// The mean over the local anchors is this rank's share of the global loss.
func ntXent(tp *autograd.Tape, z1, z2 *autograd.Var, temperature float32, w *world) *autograd.Var {
	s1, s2 := z1.Shape(), z2.Shape()
	if len(s1) != 2 || !tensor.SameShape(s1, s2) {
		autograd.Failf("NTXent", "view embeddings have shapes %v and %v: need equal [N, D]", s1, s2)
	}
	if !(temperature > 0) {
		autograd.Failf("NTXent", "temperature %g must be positive", temperature)
	}
	n := s1[0]
	z := tp.L2Normalize(tp.Concat([]*autograd.Var{z1, z2}, 0), 1, normEps)
	rank, size := w.ranks()
	all := gatherRows(tp, z, w)
	cols, off := 2*n*size, 2*n*rank // off: this rank's first row among all
	logits := tp.MulScalar(tp.MatMulT(z, all, false, true), 1/temperature)
	mask := tp.AllocZeroed(2*n, cols)
	for i := range 2 * n {
		mask.Data[i*cols+off+i] = maskedLogit
	}
	logits = tp.Add(logits, autograd.Const(mask))
	targets := make([]int, 2*n)
	for i := range n {
		targets[i], targets[n+i] = off+n+i, off+i
	}
	return tp.CrossEntropy(logits, targets)
}

// InfoNCE is MoCo's contrastive loss against a queue of negatives: queries
// q [N, D] and keys k [N, D] are L2-normalised, the positive logit of row i
// is q[i]·k[i], the negatives are q[i]·queue[:, j] for the K columns of
// queue [D, K] (MoCo's buffer layout, columns already unit-norm), and the
// loss is the cross-entropy with the positive as class 0 after dividing by
// temperature. No gradient reaches the keys or the queue: pass keys
// computed under Tape.NoGrad (or Detach them).
func InfoNCE(tp *autograd.Tape, q, k *autograd.Var, queue *tensor.Tensor, temperature float32) *autograd.Var {
	sq, sk := q.Shape(), k.Shape()
	if len(sq) != 2 || !tensor.SameShape(sq, sk) {
		autograd.Failf("InfoNCE", "query shape %v and key shape %v: need equal [N, D]", sq, sk)
	}
	if len(queue.Shape) != 2 || queue.Shape[0] != sq[1] {
		autograd.Failf("InfoNCE", "queue shape %v: need [%d, K]", queue.Shape, sq[1])
	}
	if !(temperature > 0) {
		autograd.Failf("InfoNCE", "temperature %g must be positive", temperature)
	}
	qn := tp.L2Normalize(q, 1, normEps)
	kn := tp.Detach(tp.L2Normalize(k, 1, normEps))
	pos := tp.Sum(tp.Mul(qn, kn), []int{1}, true)
	neg := tp.MatMul(qn, autograd.Const(queue))
	logits := tp.MulScalar(tp.Concat([]*autograd.Var{pos, neg}, 1), 1/temperature)
	return tp.CrossEntropy(logits, make([]int, sq[0]))
}

// MoCoV3Contrastive is one direction of MoCo v3's loss: q and k [N, D] are
// L2-normalised, logits q·kᵀ/temperature have the matching key on the
// diagonal, and the cross-entropy is scaled by 2*temperature as in the
// paper's pseudo-code. Keys carry no gradient.
func MoCoV3Contrastive(tp *autograd.Tape, q, k *autograd.Var, temperature float32) *autograd.Var {
	return mocoV3Contrastive(tp, q, k, temperature, &world{})
}

// mocoV3Contrastive is MoCoV3Contrastive on one of several ranks: the keys
// of every rank are gathered (they carry no gradient), so each local query
// is contrasted with the global batch's keys, its own at its global row.
func mocoV3Contrastive(tp *autograd.Tape, q, k *autograd.Var, temperature float32, w *world) *autograd.Var {
	sq, sk := q.Shape(), k.Shape()
	if len(sq) != 2 || !tensor.SameShape(sq, sk) {
		autograd.Failf("MoCoV3Contrastive", "query shape %v and key shape %v: need equal [N, D]", sq, sk)
	}
	if !(temperature > 0) {
		autograd.Failf("MoCoV3Contrastive", "temperature %g must be positive", temperature)
	}
	qn := tp.L2Normalize(q, 1, normEps)
	kn := autograd.Const(w.gatherValues("MoCoV3Contrastive", tp.L2Normalize(k, 1, normEps).Value))
	logits := tp.MulScalar(tp.MatMulT(qn, kn, false, true), 1/temperature)
	rank, _ := w.ranks()
	targets := make([]int, sq[0])
	for i := range targets {
		targets[i] = rank*sq[0] + i
	}
	return tp.MulScalar(tp.CrossEntropy(logits, targets), 2*temperature)
}

// MoCoV3Loss is MoCo v3's symmetrised loss ctr(q1, k2) + ctr(q2, k1), where
// q are the predictor outputs of the online network and k the momentum
// encoder's projections of the two views.
func MoCoV3Loss(tp *autograd.Tape, q1, q2, k1, k2 *autograd.Var, temperature float32) *autograd.Var {
	return mocoV3Loss(tp, q1, q2, k1, k2, temperature, &world{})
}

func mocoV3Loss(tp *autograd.Tape, q1, q2, k1, k2 *autograd.Var, temperature float32, w *world) *autograd.Var {
	return tp.Add(mocoV3Contrastive(tp, q1, k2, temperature, w), mocoV3Contrastive(tp, q2, k1, temperature, w))
}

// BYOLLoss is BYOL's symmetrised normalised mean squared error: for each
// image, (2 - 2cos(p1, z2)) + (2 - 2cos(p2, z1)), averaged over the batch.
// p are the online predictions, z the target projections (no gradient
// reaches them).
func BYOLLoss(tp *autograd.Tape, p1, p2, z1, z2 *autograd.Var) *autograd.Var {
	both := crossCosine(tp, "BYOLLoss", p1, p2, z1, z2)
	return tp.AddScalar(tp.MulScalar(tp.MeanAll(both), -2), 4)
}

// SimSiamLoss is SimSiam's symmetrised negative cosine similarity,
// -(cos(p1, z2) + cos(p2, z1)) / 2 averaged over the batch, with the
// stop-gradient on the projections z: only the predictions p carry
// gradient. It is a mean of per-image terms, so under data parallelism
// nothing is gathered across ranks: each rank takes the loss of its own
// images and the gradient all-reduce averages them.
func SimSiamLoss(tp *autograd.Tape, p1, p2, z1, z2 *autograd.Var) *autograd.Var {
	both := crossCosine(tp, "SimSiamLoss", p1, p2, z1, z2)
	return tp.MulScalar(tp.MeanAll(both), -0.5)
}

// crossCosine is cos(p1, z2) + cos(p2, z1) per row [N], the z detached: the
// shared core of BYOL's and SimSiam's losses.
func crossCosine(tp *autograd.Tape, op string, p1, p2, z1, z2 *autograd.Var) *autograd.Var {
	for _, v := range []*autograd.Var{p2, z1, z2} {
		if len(p1.Shape()) != 2 || !tensor.SameShape(p1.Shape(), v.Shape()) {
			autograd.Failf(op, "prediction and projection shapes %v, %v, %v, %v: need equal [N, D]",
				p1.Shape(), p2.Shape(), z1.Shape(), z2.Shape())
		}
	}
	cos := func(p, z *autograd.Var) *autograd.Var {
		pn := tp.L2Normalize(p, 1, normEps)
		zn := tp.Detach(tp.L2Normalize(z, 1, normEps))
		return tp.Sum(tp.Mul(pn, zn), []int{1}, false)
	}
	return tp.Add(cos(p1, z2), cos(p2, z1))
}

// bnEps is BatchNorm1d's default epsilon, which Barlow Twins' affine-free
// BatchNorm of the projections uses.
const bnEps = 1e-5

// BarlowTwinsLoss is Barlow Twins' redundancy-reduction loss on the
// projections z1, z2 [N, D] of two views of the same N images. Each is
// standardised along the batch (BatchNorm1d without affine parameters:
// batch mean, biased variance, epsilon 1e-5), C = z1ᵀz2 / N is the D x D
// cross-correlation of the standardised matrices, and the loss is
// Σ_i (1 - C_ii)² + lambda Σ_{i≠j} C_ij² (the paper's lambda: 5e-3).
//
// The batch statistics and C span the global batch: under data
// parallelism every rank all-gathers z1 and z2 (the gather passing
// gradients back to each rank's own rows) and calls BarlowTwinsLoss on the
// gathered [N_global, D] matrices. The function takes the batch it is given
// as the whole batch.
func BarlowTwinsLoss(tp *autograd.Tape, z1, z2 *autograd.Var, lambda float32) *autograd.Var {
	s1, s2 := z1.Shape(), z2.Shape()
	if len(s1) != 2 || !tensor.SameShape(s1, s2) || s1[0] < 2 {
		autograd.Failf("BarlowTwinsLoss", "view embeddings have shapes %v and %v: need equal [N, D] with N >= 2", s1, s2)
	}
	if !(lambda >= 0) {
		autograd.Failf("BarlowTwinsLoss", "lambda %g must be non-negative", lambda)
	}
	n, d := s1[0], s1[1]
	a := tp.BatchNorm(z1, nil, nil, nil, nil, true, 0, bnEps)
	b := tp.BatchNorm(z2, nil, nil, nil, nil, true, 0, bnEps)
	c := tp.MulScalar(tp.MatMulT(a, b, true, false), 1/float32(n))
	// Σ w_ij (C_ij - I_ij)² with w = 1 on the diagonal and lambda off it
	// is both terms at once.
	eye, w := tp.AllocZeroed(d, d), tp.Alloc(d, d)
	for i := range w.Data {
		w.Data[i] = lambda
	}
	for i := range d {
		eye.Data[i*d+i], w.Data[i*d+i] = 1, 1
	}
	diff := tp.Sub(c, autograd.Const(eye))
	return tp.SumAll(tp.Mul(tp.Square(diff), autograd.Const(w)))
}

// VICRegLossConfig holds VICReg's coefficients.
type VICRegLossConfig struct {
	// Invariance, Variance and Covariance weigh the three terms (the
	// paper's 25, 25 and 1).
	Invariance, Variance, Covariance float32
	// Gamma is the target standard deviation of each dimension (1) and
	// Epsilon the variance's stabiliser inside the square root (1e-4).
	Gamma, Epsilon float32
}

// DefaultVICRegLoss is the paper's setting.
var DefaultVICRegLoss = VICRegLossConfig{Invariance: 25, Variance: 25, Covariance: 1, Gamma: 1, Epsilon: 1e-4}

// VICRegLoss is VICReg's variance-invariance-covariance loss on the
// expander outputs z1, z2 [N, D] of two views of the same N images:
// Invariance times the mean squared error between z1 and z2; Variance
// times the mean over dimensions of max(0, Gamma - sqrt(Var(z_j) +
// Epsilon)) (unbiased variance over the batch), averaged over the two
// views; Covariance times the sum over both views of the squared
// off-diagonal entries of the unbiased covariance matrix, divided by D.
//
// The variance and covariance terms span the global batch: under data
// parallelism every rank all-gathers z1 and z2 (the gather passing
// gradients back to each rank's own rows) and calls VICRegLoss on the
// gathered [N_global, D] matrices. The function takes the batch it is
// given as the whole batch.
func VICRegLoss(tp *autograd.Tape, z1, z2 *autograd.Var, cfg VICRegLossConfig) *autograd.Var {
	s1, s2 := z1.Shape(), z2.Shape()
	if len(s1) != 2 || !tensor.SameShape(s1, s2) || s1[0] < 2 {
		autograd.Failf("VICRegLoss", "view embeddings have shapes %v and %v: need equal [N, D] with N >= 2", s1, s2)
	}
	if !(cfg.Epsilon > 0) {
		autograd.Failf("VICRegLoss", "epsilon %g must be positive", cfg.Epsilon)
	}
	n, d := s1[0], s1[1]
	offDiag := tp.Alloc(d, d)
	for i := range offDiag.Data {
		offDiag.Data[i] = 1
	}
	for i := range d {
		offDiag.Data[i*d+i] = 0
	}
	off := autograd.Const(offDiag)
	inv := tp.MeanAll(tp.Square(tp.Sub(z1, z2)))
	var variance, covariance *autograd.Var
	for _, z := range []*autograd.Var{z1, z2} {
		zc := tp.Sub(z, tp.Mean(z, []int{0}, true))
		v := tp.MulScalar(tp.Sum(tp.Square(zc), []int{0}, false), 1/float32(n-1))
		std := tp.Sqrt(tp.AddScalar(v, cfg.Epsilon))
		hinge := tp.MeanAll(tp.ReLU(tp.AddScalar(tp.Neg(std), cfg.Gamma)))
		cov := tp.MulScalar(tp.MatMulT(zc, zc, true, false), 1/float32(n-1))
		c := tp.SumAll(tp.Mul(tp.Square(cov), off))
		if variance == nil {
			variance, covariance = hinge, c
		} else {
			variance, covariance = tp.Add(variance, hinge), tp.Add(covariance, c)
		}
	}
	return tp.Add(tp.Add(tp.MulScalar(inv, cfg.Invariance), tp.MulScalar(variance, cfg.Variance/2)),
		tp.MulScalar(covariance, cfg.Covariance/float32(d)))
}

// Sinkhorn computes SwAV's soft assignments ("codes") for scores [B, K]
// (embeddings times prototypes) with iters rounds of Sinkhorn-Knopp at
// entropic regularisation eps, as SwAV's distributed_sinkhorn on one
// process: Q = exp(scores/eps)ᵀ, normalised in turn so that every prototype
// gets 1/K of the mass and every sample 1/B, and finally scaled so each row
// of the returned [B, K] matrix sums to 1. It is computed in float64 and
// carries no gradient. Scores are shifted by their maximum before exp; the
// normalisations cancel the shift, so the result is the same and cannot
// overflow even for eps far below SwAV's 0.05.
func Sinkhorn(scores *tensor.Tensor, eps float32, iters int) (*tensor.Tensor, error) {
	if len(scores.Shape) != 2 || scores.Shape[0] == 0 || scores.Shape[1] == 0 {
		return nil, fmt.Errorf("sinkhorn: scores shape %v: need non-empty [B, K]", scores.Shape)
	}
	if !(eps > 0) || iters < 0 {
		return nil, fmt.Errorf("sinkhorn: epsilon %g must be positive and iterations %d non-negative", eps, iters)
	}
	b, k := scores.Shape[0], scores.Shape[1]
	mx := math.Inf(-1)
	for _, v := range scores.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("sinkhorn: scores %v hold a non-finite value", scores.Shape)
		}
		mx = math.Max(mx, float64(v))
	}
	q := make([]float64, b*k) // row-major [B, K]; SwAV's Q is its transpose
	var total float64
	for i, v := range scores.Data {
		q[i] = math.Exp((float64(v) - mx) / float64(eps))
		total += q[i]
	}
	for i := range q {
		q[i] /= total
	}
	colSum := make([]float64, k)
	for range iters {
		// Each prototype (SwAV's row of Q) gets total mass 1/K ...
		clear(colSum)
		for r := range b {
			for c := range k {
				colSum[c] += q[r*k+c]
			}
		}
		for r := range b {
			for c := range k {
				q[r*k+c] /= colSum[c] * float64(k)
			}
		}
		// ... then each sample gets 1/B.
		for r := range b {
			row := q[r*k : (r+1)*k]
			var s float64
			for _, v := range row {
				s += v
			}
			for c := range row {
				row[c] /= s * float64(b)
			}
		}
	}
	out := tensor.New(b, k)
	for i, v := range q {
		out.Data[i] = float32(v * float64(b))
		// A prototype whose every score sits more than ~745*eps below the
		// maximum gets no mass at all and the normalisation divides by 0.
		if math.IsNaN(float64(out.Data[i])) || math.IsInf(float64(out.Data[i]), 0) {
			return nil, fmt.Errorf("sinkhorn: epsilon %g is too small for scores spanning %v: assignments underflow", eps, scoreRange(scores.Data))
		}
	}
	return out, nil
}

func scoreRange(x []float32) [2]float32 {
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	return [2]float32{lo, hi}
}

// SwAVLossConfig holds the swapped-prediction settings.
type SwAVLossConfig struct {
	// Batch is the number of images B; scores hold Crops*B rows, crop by crop.
	Batch int
	// AssignCrops are the crops whose codes are predicted (SwAV: the two
	// global crops, [0, 1]).
	AssignCrops []int
	// Temperature divides the scores before the softmax (SwAV: 0.1).
	Temperature float32
	// Epsilon and Iterations configure Sinkhorn (SwAV: 0.05 and 3).
	Epsilon    float32
	Iterations int
	// Gather, under data parallelism, stacks every rank's [Batch, K] block
	// of an assignment crop's scores in rank order; Sinkhorn then spreads
	// the prototypes' mass over the global batch, and this rank keeps the
	// codes of its own rows, the Rank-th block. Nil on one process.
	Gather func(*tensor.Tensor) *tensor.Tensor
	Rank   int
}

// SwAVLoss is SwAV's swapped prediction. scores [Crops*B, K] are the
// normalised embeddings of all crops times the normalised prototypes. For
// each assignment crop i, the codes Q_i come from Sinkhorn on that crop's
// scores without gradient; when queueScores[i] (scores of queued embeddings
// of crop i, [L, K]) is given, Sinkhorn runs on the queue rows stacked above
// the batch and keeps the batch's rows (with cfg.Gather, the global batch's,
// and this rank's of them). Every other crop v predicts Q_i with the
// cross-entropy of softmax(scores_v/temperature), averaged over rows. The
// loss averages over the Crops-1 predicting crops and over the assignment
// crops. It returns the codes too.
func SwAVLoss(tp *autograd.Tape, scores *autograd.Var, queueScores []*tensor.Tensor, cfg SwAVLossConfig) (*autograd.Var, []*tensor.Tensor, error) {
	shape := scores.Shape()
	b := cfg.Batch
	if len(shape) != 2 || b <= 0 || shape[0]%b != 0 {
		return nil, nil, fmt.Errorf("swav loss: scores shape %v is not [crops*%d, K]", shape, b)
	}
	crops, k := shape[0]/b, shape[1]
	if crops < 2 {
		return nil, nil, fmt.Errorf("swav loss: %d crop(s); swapped prediction needs at least 2", crops)
	}
	if len(cfg.AssignCrops) == 0 {
		return nil, nil, fmt.Errorf("swav loss: no assignment crops")
	}
	if !(cfg.Temperature > 0) {
		return nil, nil, fmt.Errorf("swav loss: temperature %g must be positive", cfg.Temperature)
	}
	if queueScores != nil && len(queueScores) != len(cfg.AssignCrops) {
		return nil, nil, fmt.Errorf("swav loss: %d queue score blocks for %d assignment crops", len(queueScores), len(cfg.AssignCrops))
	}
	var total *autograd.Var
	codes := make([]*tensor.Tensor, len(cfg.AssignCrops))
	for i, c := range cfg.AssignCrops {
		if c < 0 || c >= crops {
			return nil, nil, fmt.Errorf("swav loss: assignment crop %d out of range for %d crops", c, crops)
		}
		own := &tensor.Tensor{Shape: []int{b, k}, Data: scores.Value.Data[c*b*k : (c+1)*b*k]}
		// Codes are computed over the rows in, and this rank's are the
		// b rows at offset skip: after the queue, and after the ranks
		// before it.
		in, skip := own, 0
		if cfg.Gather != nil {
			in = cfg.Gather(own)
			skip = cfg.Rank * b
			if len(in.Shape) != 2 || in.Shape[1] != k || in.Shape[0] < skip+b {
				return nil, nil, fmt.Errorf("swav loss: gathered scores %v hold no rows for rank %d of batch %d", in.Shape, cfg.Rank, b)
			}
		}
		if queueScores != nil && queueScores[i] != nil {
			qs := queueScores[i]
			if len(qs.Shape) != 2 || qs.Shape[1] != k {
				return nil, nil, fmt.Errorf("swav loss: queue scores %d shape %v: need [L, %d]", i, qs.Shape, k)
			}
			batch := in
			in = tensor.New(qs.Shape[0]+batch.Shape[0], k)
			copy(in.Data, qs.Data)
			copy(in.Data[len(qs.Data):], batch.Data)
			skip += qs.Shape[0]
		}
		q, err := Sinkhorn(in, cfg.Epsilon, cfg.Iterations)
		if err != nil {
			return nil, nil, fmt.Errorf("swav loss: crop %d: %w", c, err)
		}
		q = &tensor.Tensor{Shape: []int{b, k}, Data: q.Data[skip*k : (skip+b)*k]}
		codes[i] = q
		qc := autograd.Const(q)
		var sub *autograd.Var
		for v := range crops {
			if v == c {
				continue
			}
			x := tp.MulScalar(tp.Slice(scores, 0, v*b, (v+1)*b), 1/cfg.Temperature)
			ce := tp.CrossEntropySoft(x, qc)
			if sub == nil {
				sub = ce
			} else {
				sub = tp.Add(sub, ce)
			}
		}
		sub = tp.MulScalar(sub, 1/float32(crops-1))
		if total == nil {
			total = sub
		} else {
			total = tp.Add(total, sub)
		}
	}
	return tp.MulScalar(total, 1/float32(len(cfg.AssignCrops))), codes, nil
}

// queueScores is queue [L, D] times prototypes [K, D] transposed: the
// scores of queued embeddings, computed outside the tape (Sinkhorn needs no
// gradient).
func queueScores(queue, prototypes *tensor.Tensor) *tensor.Tensor {
	l, d, k := queue.Shape[0], queue.Shape[1], prototypes.Shape[0]
	out := tensor.New(l, k)
	tensor.Sgemm(false, true, l, k, d, 1, queue.Data, d, prototypes.Data, d, 0, out.Data, k)
	return out
}

// DINOLossConfig holds the batch layout and temperatures of DINOLoss.
type DINOLossConfig struct {
	// Batch is the number of images B; the student's rows are Crops*B and
	// the teacher's GlobalCrops*B, crop by crop.
	Batch int
	// StudentTemp sharpens the student's softmax (0.1); TeacherTemp the
	// teacher's (0.04 rising to 0.07 in the recipe, see DINO.TeacherTemp).
	StudentTemp, TeacherTemp float32
}

// DINOLoss is DINO's self-distillation loss. student [Crops*B, K] holds the
// student head's outputs for every crop (the global crops first), teacher
// [G*B, K] the teacher head's outputs for the G global crops, and center
// the K running means of the teacher's outputs. Each teacher block becomes
// the target softmax((teacher - center) / TeacherTemp), without gradient;
// each student block is log_softmax(student / StudentTemp). The loss is the
// cross-entropy of every target against every student crop of another
// view (a global crop is not compared with itself), averaged over rows and
// then over those G*(Crops-1) pairs.
//
// Every term is per image, so under data parallelism a rank calls DINOLoss
// on its own crops and nothing is gathered for the loss itself; only the
// centre's update needs the global batch (see UpdateDINOCenter).
func DINOLoss(tp *autograd.Tape, student, teacher *autograd.Var, center *tensor.Tensor, cfg DINOLossConfig) *autograd.Var {
	ss, ts, b := student.Shape(), teacher.Shape(), cfg.Batch
	if len(ss) != 2 || len(ts) != 2 || b < 1 || ss[0]%b != 0 || ts[0]%b != 0 || ss[1] != ts[1] {
		autograd.Failf("DINOLoss", "student %v and teacher %v outputs: need [crops*%d, K] and [global*%d, K]", ss, ts, b, b)
	}
	crops, global, k := ss[0]/b, ts[0]/b, ss[1]
	if global < 1 || crops < 2 || global > crops {
		autograd.Failf("DINOLoss", "%d global of %d crops: need at least one global crop and two crops", global, crops)
	}
	if center == nil || center.Numel() != k || len(center.Data) != k {
		autograd.Failf("DINOLoss", "center must hold %d values, one per output", k)
	}
	if !(cfg.StudentTemp > 0) || !(cfg.TeacherTemp > 0) {
		autograd.Failf("DINOLoss", "temperatures %g (student) and %g (teacher) must be positive", cfg.StudentTemp, cfg.TeacherTemp)
	}
	c := autograd.Const(&tensor.Tensor{Shape: []int{1, k}, Data: center.Data})
	targets := tp.Detach(tp.Softmax(tp.MulScalar(tp.Sub(teacher, c), 1/cfg.TeacherTemp), 1))
	logits := tp.MulScalar(student, 1/cfg.StudentTemp)
	blocks := make([]*autograd.Var, crops)
	for v := range crops {
		blocks[v] = tp.Slice(logits, 0, v*b, (v+1)*b)
	}
	var total *autograd.Var
	for g := range global {
		q := tp.Slice(targets, 0, g*b, (g+1)*b)
		for v := range crops {
			if v == g {
				continue
			}
			ce := tp.CrossEntropySoft(blocks[v], q)
			if total == nil {
				total = ce
			} else {
				total = tp.Add(total, ce)
			}
		}
	}
	return tp.MulScalar(total, 1/float32(global*(crops-1)))
}

// UpdateDINOCenter moves center [K] towards the mean of the teacher
// outputs [N, K] of this step's global crops: center = momentum*center +
// (1-momentum)*mean (DINO: momentum 0.9). The mean is over the global
// batch: a data-parallel run all-reduces the column sums of the teacher
// outputs and divides by the total row count, so every rank keeps the same
// centre. That sum is the only thing DINO gathers across ranks.
func UpdateDINOCenter(center, teacher *tensor.Tensor, momentum float64) error {
	if len(teacher.Shape) != 2 || teacher.Shape[0] < 1 || center.Numel() != teacher.Shape[1] || len(center.Data) != teacher.Shape[1] {
		return fmt.Errorf("dino center: %d values for teacher outputs %v: need [N, %d] with N >= 1", center.Numel(), teacher.Shape, center.Numel())
	}
	if !(momentum >= 0 && momentum <= 1) {
		return fmt.Errorf("dino center: momentum %g outside [0, 1]", momentum)
	}
	n, k := teacher.Shape[0], teacher.Shape[1]
	mean := make([]float64, k)
	for r := range n {
		for j, v := range teacher.Data[r*k : (r+1)*k] {
			mean[j] += float64(v)
		}
	}
	for j, s := range mean {
		center.Data[j] = float32(momentum*float64(center.Data[j]) + (1-momentum)*s/float64(n))
	}
	return nil
}
