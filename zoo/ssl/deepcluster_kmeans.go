package ssl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/sslzoo/sslzoo/tensor"
)

// DeepCluster's clustering: PCA-whitening, k-means and the sampler that is
// uniform over the clusters, on float32 row-major matrices. The GEMMs go
// through tensor.Sgemm in row chunks (which bound the scratch memory); the
// sums that decide results (covariance, centroids, norms) are float64 and
// run in a fixed order, so a clustering is the same bits on every run.

// pcaRows is the number of rows a chunk of the covariance and projection
// GEMMs takes: float32 sums over at most this many rows, float64 across
// chunks.
const pcaRows = 4096

// pcaEps regularises the whitening: direction i is scaled by
// 1/sqrt(lambda_i + pcaEps*lambda_1), so directions the float32 covariance
// cannot resolve (below about 1e-6 of the largest variance) are not blown
// up. faiss's PCAMatrix, which the reference uses, has epsilon 0.
const pcaEps = 1e-5

// pcaWhitening is a fitted PCA-whitening from F to D dimensions.
type pcaWhitening struct {
	F, D int
	// Mean is the feature mean [F]; A the projection [D, F], whose rows are
	// the covariance's leading eigenvectors (sign: the largest-magnitude
	// entry positive, the first such on a tie), each scaled by
	// 1/sqrt(lambda + pcaEps*lambda_1).
	Mean []float64
	A    []float32
	// Values are the D leading eigenvalues of the covariance (divided by
	// n), largest first.
	Values []float64
}

// fitPCA fits PCA-whitening of the n rows of x [n, f] to d dimensions.
func fitPCA(x []float32, n, f, d int) (*pcaWhitening, error) {
	if n < 2 || f < 1 || d < 1 || d > f || len(x) != n*f {
		return nil, fmt.Errorf("pca: %d values as %d rows of %d features to %d dimensions: need 2+ rows and 1 <= d <= f", len(x), n, f, d)
	}
	mean := make([]float64, f)
	for i := range n {
		for j, v := range x[i*f : (i+1)*f] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	cov := make([]float64, f*f)
	rows := min(n, pcaRows)
	buf := make([]float32, rows*f)
	tmp := make([]float32, f*f)
	for lo := 0; lo < n; lo += rows {
		r := min(rows, n-lo)
		centre(buf[:r*f], x[lo*f:(lo+r)*f], mean)
		tensor.Sgemm(true, false, f, f, r, 1, buf[:r*f], f, buf[:r*f], f, 0, tmp, f)
		for i, v := range tmp {
			cov[i] += float64(v)
		}
	}
	// The chunk GEMMs are symmetric up to rounding; average the halves.
	sym := mat.NewSymDense(f, nil)
	for i := range f {
		for j := i; j < f; j++ {
			sym.SetSym(i, j, (cov[i*f+j]+cov[j*f+i])/(2*float64(n)))
		}
	}
	var es mat.EigenSym
	if !es.Factorize(sym, true) {
		return nil, fmt.Errorf("pca: the eigendecomposition of the %dx%d covariance did not converge", f, f)
	}
	vals := es.Values(nil) // ascending
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	p := &pcaWhitening{F: f, D: d, Mean: mean, A: make([]float32, d*f), Values: make([]float64, d)}
	top := math.Max(vals[f-1], 0)
	if !(top > 0) {
		return nil, fmt.Errorf("pca: the %d features do not vary over the %d rows", f, n)
	}
	for i := range d {
		col := f - 1 - i
		lambda := math.Max(vals[col], 0)
		p.Values[i] = lambda
		sign, big := 1.0, -1.0
		for j := range f {
			if a := math.Abs(vecs.At(j, col)); a > big {
				big = a
				sign = math.Copysign(1, vecs.At(j, col))
			}
		}
		s := sign / math.Sqrt(lambda+pcaEps*top)
		for j := range f {
			p.A[i*f+j] = float32(vecs.At(j, col) * s)
		}
	}
	return p, nil
}

// centre writes the rows of x minus mean into dst.
func centre(dst, x []float32, mean []float64) {
	f := len(mean)
	for i := range len(x) / f {
		for j, m := range mean {
			dst[i*f+j] = float32(float64(x[i*f+j]) - m)
		}
	}
}

// apply whitens the n rows of x [n, F] and L2-normalises each result (a
// zero row stays zero), returning [n, D].
func (p *pcaWhitening) apply(x []float32, n int) []float32 {
	f, d := p.F, p.D
	out := make([]float32, n*d)
	rows := min(n, pcaRows)
	buf := make([]float32, rows*f)
	for lo := 0; lo < n; lo += rows {
		r := min(rows, n-lo)
		centre(buf[:r*f], x[lo*f:(lo+r)*f], p.Mean)
		tensor.Sgemm(false, true, r, d, f, 1, buf[:r*f], f, p.A, f, 0, out[lo*d:(lo+r)*d], d)
	}
	normaliseRows(out, n, d)
	return out
}

// normaliseRows scales each row of x [n, d] to unit L2 norm.
func normaliseRows(x []float32, n, d int) {
	for i := range n {
		row := x[i*d : (i+1)*d]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		if ss == 0 {
			continue
		}
		s := 1 / math.Sqrt(ss)
		for j, v := range row {
			row[j] = float32(float64(v) * s)
		}
	}
}

// kmeansSplitEps is faiss's perturbation of a split centroid (EPS in
// Clustering.cpp's split_clusters).
const kmeansSplitEps = 1.0 / 1024

// kmeansResult is the outcome of Lloyd's iterations.
type kmeansResult struct {
	// Assign is each row's nearest final centroid.
	Assign []int
	// Centroids are the final centroids [k, d].
	Centroids []float32
	// Objective is, per iteration, the sum over the rows of the squared
	// distance to the nearest centroid before that iteration's update
	// (faiss's obj); Final is the same for the final assignment.
	Objective []float64
	Final     float64
	// Splits counts the empty clusters re-seeded over all iterations.
	Splits int
}

// kmeans runs iters iterations of Lloyd's algorithm on the n rows of x
// [n, d] from the initial centroids init [k, d], as faiss's Clustering
// does: assign each row to its nearest centroid (squared L2, the lowest
// index on a tie), move each centroid to the mean of its rows, and re-seed
// every empty cluster by splitting a non-empty one (splitEmpty). The
// result's assignment is one more pass against the final centroids (as
// the reference's index.search after training).
func kmeans(x []float32, n, d int, init []float32, k, iters int, rng *rand.Rand) (kmeansResult, error) {
	return lloyd("k-means", x, n, d, init, k, iters, false, func(res *kmeansResult, sums []float64, counts []int) {
		for c, m := range counts {
			for j := range d {
				v := 0.0
				if m > 0 {
					v = sums[c*d+j] / float64(m)
				}
				res.Centroids[c*d+j] = float32(v)
			}
		}
		res.Splits += splitEmpty(res.Centroids, counts, d, n, rng)
	})
}

// lloyd is the loop both k-means share: iters rounds of assigning every
// row to its nearest centroid (byDot: by the largest dot product, else by
// squared L2; the lowest index on a tie) and of update, which moves the
// centroids given each cluster's sum of rows and count; then one more
// assignment. name prefixes its errors.
func lloyd(name string, x []float32, n, d int, init []float32, k, iters int, byDot bool, update func(res *kmeansResult, sums []float64, counts []int)) (kmeansResult, error) {
	if n < k || k < 1 || d < 1 || len(x) != n*d || len(init) != k*d || iters < 0 {
		return kmeansResult{}, fmt.Errorf("%s: %d rows of %d values (%d given) into %d clusters (%d initial values), %d iterations: need k <= n",
			name, n, d, len(x), k, len(init), iters)
	}
	res := kmeansResult{Assign: make([]int, n), Centroids: append([]float32(nil), init...)}
	xnorm := make([]float64, n)
	for i := range n {
		xnorm[i] = sqNorm(x[i*d : (i+1)*d])
	}
	sums := make([]float64, k*d)
	counts := make([]int, k)
	for range iters {
		res.Objective = append(res.Objective, nearest(x, xnorm, n, d, res.Centroids, k, res.Assign, byDot))
		clusterSums(x, d, res.Assign, sums, counts)
		update(&res, sums, counts)
	}
	res.Final = nearest(x, xnorm, n, d, res.Centroids, k, res.Assign, byDot)
	return res, nil
}

// clusterSums writes the float64 sum of each cluster's rows of x [n, d]
// into sums [k, d] and their number into counts [k], in row order.
func clusterSums(x []float32, d int, assign []int, sums []float64, counts []int) {
	clear(sums)
	clear(counts)
	for i, a := range assign {
		counts[a]++
		s := sums[a*d : (a+1)*d]
		for j, v := range x[i*d : (i+1)*d] {
			s[j] += float64(v)
		}
	}
}

func sqNorm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return s
}

// nearest writes each row's nearest centroid into assign and returns the
// sum of the squared distances. It ranks by |c|^2 - 2 x.c, the dot
// products from one GEMM per chunk of rows; byDot ranks by the dot product
// alone (the largest first), as spherical k-means on unit centroids does,
// where |c|^2 is 1 up to rounding that must not decide near-ties.
func nearest(x []float32, xnorm []float64, n, d int, c []float32, k int, assign []int, byDot bool) float64 {
	cnorm := make([]float32, k)
	for j := range k {
		cnorm[j] = float32(sqNorm(c[j*d : (j+1)*d]))
	}
	rank := cnorm
	if byDot {
		rank = make([]float32, k)
	}
	rows := min(n, max(1, (1<<20)/k))
	buf := make([]float32, rows*k)
	var obj float64
	for lo := 0; lo < n; lo += rows {
		r := min(rows, n-lo)
		tensor.Sgemm(false, true, r, k, d, -2, x[lo*d:(lo+r)*d], d, c, d, 0, buf[:r*k], k)
		for i := range r {
			row := buf[i*k : (i+1)*k]
			best, bj := row[0]+rank[0], 0
			for j := 1; j < k; j++ {
				if v := row[j] + rank[j]; v < best {
					best, bj = v, j
				}
			}
			assign[lo+i] = bj
			obj += math.Max(xnorm[lo+i]+float64(row[bj]+cnorm[bj]), 0)
		}
	}
	return obj
}

// splitEmpty re-seeds the empty clusters of centroids [k, d] (counts: the
// rows of each) by faiss's rule (Clustering.cpp, split_clusters), the
// trick of the DeepCluster paper: for each empty cluster ci, walk the
// clusters cyclically from 0 and stop at cluster cj with probability
// (count_j - 1) / (n - k), so a large cluster is split more likely and a
// single-row one never; ci takes cj's centroid, and the two are moved
// apart symmetrically by a relative kmeansSplitEps (even coordinates of
// ci scaled by 1+eps and of cj by 1-eps, odd ones the other way), so the
// next assignment parts cj's rows between them. Their counts become an
// even split of cj's, for the choices that follow. It returns the number
// of clusters re-seeded. With n >= k an empty cluster always leaves one
// of two rows or more to split.
func splitEmpty(centroids []float32, counts []int, d, n int, rng *rand.Rand) int {
	k := len(counts)
	split := 0
	const up, down = float32(1 + kmeansSplitEps), float32(1 - kmeansSplitEps)
	for ci := range k {
		if counts[ci] != 0 {
			continue
		}
		cj := 0
		for ; ; cj = (cj + 1) % k {
			// n == k makes this +Inf for a cluster of two rows or more and
			// NaN (never chosen) for one of a single row.
			p := (float64(counts[cj]) - 1) / float64(n-k)
			if rng.Float64() < p {
				break
			}
		}
		a, b := centroids[ci*d:(ci+1)*d], centroids[cj*d:(cj+1)*d]
		copy(a, b)
		for j := range d {
			if j%2 == 0 {
				a[j] *= up
				b[j] *= down
			} else {
				a[j] *= down
				b[j] *= up
			}
		}
		counts[ci] = counts[cj] / 2
		counts[cj] -= counts[ci]
		split++
	}
	return split
}

// clusterCounts is the number of images the uniform sampler draws from
// each cluster in an epoch of n images: with C non-empty clusters, n/C
// each, and one more for the n mod C largest (the lower label first
// among equals); empty clusters get none. members[l] lists cluster l's
// images.
func clusterCounts(members [][]int, n int) []int {
	counts := make([]int, len(members))
	var nonEmpty []int
	for l, m := range members {
		if len(m) > 0 {
			nonEmpty = append(nonEmpty, l)
		}
	}
	if len(nonEmpty) == 0 {
		return counts
	}
	q, r := n/len(nonEmpty), n%len(nonEmpty)
	for _, l := range nonEmpty {
		counts[l] = q
	}
	// The r largest clusters; nonEmpty is in label order, so the stable
	// sort puts the lower label first among equals.
	slices.SortStableFunc(nonEmpty, func(a, b int) int { return len(members[b]) - len(members[a]) })
	for _, l := range nonEmpty[:r] {
		counts[l]++
	}
	return counts
}

// uniformOrder is an epoch's image order, uniform over the pseudo-labels
// as the reference's UnifLabelSampler: labels[i] is image i's cluster (-1
// for an image that has none, e.g. one skipped when the features were
// taken), k the number of clusters. The epoch has len(labels) images,
// clusterCounts of them from each cluster: a cluster of at least as many
// images gives that many distinct ones, drawn without replacement; a
// smaller one gives each of its images count/size times and count mod
// size of them once more (the reference draws these with replacement, so
// some images of a small cluster are missed). The list is then shuffled.
func uniformOrder(labels []int, k int, rng *rand.Rand) ([]int, error) {
	members := make([][]int, k)
	for i, l := range labels {
		if l >= k {
			return nil, fmt.Errorf("uniform sampler: image %d has cluster %d of %d", i, l, k)
		}
		if l >= 0 {
			members[l] = append(members[l], i)
		}
	}
	counts := clusterCounts(members, len(labels))
	order := make([]int, 0, len(labels))
	for l, c := range counts {
		m := members[l]
		if c == 0 {
			continue
		}
		for range c / len(m) {
			order = append(order, m...)
		}
		// A partial Fisher-Yates draw of the rest without replacement.
		pool := append([]int(nil), m...)
		for i := range c % len(m) {
			j := i + rng.IntN(len(pool)-i)
			pool[i], pool[j] = pool[j], pool[i]
			order = append(order, pool[i])
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("uniform sampler: none of the %d images has a cluster", len(labels))
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order, nil
}

// nmi is the normalised mutual information of two labellings of the same
// images (arithmetic normalisation, sklearn's default since 0.22), over
// the images both label (>= 0); the reference logs it between
// consecutive epochs' clusterings to show how much they change. It is 1
// for two labellings that agree up to renaming and NaN when none is
// labelled by both.
func nmi(a, b []int) float64 {
	joint := map[[2]int]float64{}
	pa, pb := map[int]float64{}, map[int]float64{}
	var n float64
	for i := range min(len(a), len(b)) {
		if a[i] < 0 || b[i] < 0 {
			continue
		}
		joint[[2]int{a[i], b[i]}]++
		pa[a[i]]++
		pb[b[i]]++
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	entropy := func(p map[int]float64) float64 {
		var h float64
		for _, c := range p {
			h -= c / n * math.Log(c/n)
		}
		return h
	}
	ha, hb := entropy(pa), entropy(pb)
	if ha == 0 && hb == 0 {
		return 1
	}
	var mi float64
	for key, c := range joint {
		mi += c / n * math.Log(c*n/(pa[key[0]]*pb[key[1]]))
	}
	return max(0, 2*mi/(ha+hb))
}
