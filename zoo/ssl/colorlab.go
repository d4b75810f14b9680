package ssl

import (
	"fmt"
	"math"
	"sync"

	"github.com/sslzoo/sslzoo/tensor"
)

// Colour science of Colorization (Zhang, Isola & Efros 2016): sRGB <->
// CIE L*a*b* under D65, the quantised ab gamut the classifier predicts
// over, the soft encoding of ab targets, the class-rebalancing weights and
// the annealed-mean decoding. scripts/gen_colorization_golden.py computes
// the same from the same formulas in NumPy.

// The constants of the paper (Sec. 2.1 and 2.2 and its training code).
const (
	// ABGrid is the side of the ab quantisation cells.
	ABGrid = 10
	// SoftNeighbours and SoftSigma are the soft encoding of a target: its
	// nearest bins, weighted by a Gaussian of this width in ab units.
	SoftNeighbours = 5
	SoftSigma      = 5.0
	// RebalanceSigma is the width of the Gaussian that smooths the
	// empirical bin distribution; RebalanceLambda its mix with the uniform.
	RebalanceSigma  = 5.0
	RebalanceLambda = 0.5
	// AnnealTemperature is the temperature of the annealed mean, the
	// paper's compromise between the mean (T = 1, desaturated) and the mode
	// (T -> 0, patchy).
	AnnealTemperature = 0.38
	// GrayThreshold: an image none of whose target pixels has |a| or |b|
	// above it is grey and gets no loss (the reference's NonGrayMaskLayer).
	GrayThreshold = 5.0
)

// srgbToXYZ is the linear sRGB -> XYZ matrix computed from the sRGB
// primaries and the D65 white (Bruce Lindbloom's table), so each row sums
// to a component of d65 and sRGB greys have a = b = 0.
var srgbToXYZ = [3][3]float64{
	{0.4124564, 0.3575761, 0.1804375},
	{0.2126729, 0.7151522, 0.0721750},
	{0.0193339, 0.1191920, 0.9503041},
}

// d65 is the reference white (CIE 1931 2-degree observer).
var d65 = [3]float64{0.95047, 1, 1.08883}

// xyzToSRGB is srgbToXYZ inverted.
var xyzToSRGB = invert3(srgbToXYZ)

// The exact CIE constants (scikit-image rounds them to 0.008856 and 7.787
// times 116).
const (
	labEpsilon = 216.0 / 24389
	labKappa   = 24389.0 / 27
)

func invert3(m [3][3]float64) [3][3]float64 {
	det := m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) - m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) + m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
	var r [3][3]float64
	for i := range 3 {
		for j := range 3 {
			// The cofactor of (j, i), for the adjugate.
			a, b := (j+1)%3, (j+2)%3
			c, d := (i+1)%3, (i+2)%3
			r[i][j] = (m[a][c]*m[b][d] - m[a][d]*m[b][c]) / det
		}
	}
	return r
}

// srgbLinear undoes the sRGB transfer function (IEC 61966-2-1).
func srgbLinear(c float64) float64 {
	if c > 0.04045 {
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	return c / 12.92
}

// srgbEncode applies the sRGB transfer function; values outside [0, 1]
// are extended (negative ones linearly), not clipped.
func srgbEncode(c float64) float64 {
	if c > 0.0031308 {
		return 1.055*math.Pow(c, 1/2.4) - 0.055
	}
	return 12.92 * c
}

func labF(t float64) float64 {
	if t > labEpsilon {
		return math.Cbrt(t)
	}
	return (labKappa*t + 16) / 116
}

func labFInv(f float64) float64 {
	if f3 := f * f * f; f3 > labEpsilon {
		return f3
	}
	return (116*f - 16) / labKappa
}

// SRGBToLab converts an sRGB colour (components in [0, 1]) to CIE
// L*a*b* (D65): L in [0, 100], a and b roughly in [-110, 110].
func SRGBToLab(r, g, b float64) (l, a, bb float64) {
	lr, lg, lb := srgbLinear(r), srgbLinear(g), srgbLinear(b)
	var f [3]float64
	for i, row := range srgbToXYZ {
		f[i] = labF((row[0]*lr + row[1]*lg + row[2]*lb) / d65[i])
	}
	return 116*f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
}

// LabToSRGB converts CIE L*a*b* (D65) to sRGB. Colours outside the sRGB
// gamut come back outside [0, 1]; clip them to show them.
func LabToSRGB(l, a, b float64) (r, g, bb float64) {
	fy := (l + 16) / 116
	xyz := [3]float64{labFInv(fy+a/500) * d65[0], labFInv(fy) * d65[1], labFInv(fy-b/200) * d65[2]}
	var c [3]float64
	for i, row := range xyzToSRGB {
		c[i] = srgbEncode(row[0]*xyz[0] + row[1]*xyz[1] + row[2]*xyz[2])
	}
	return c[0], c[1], c[2]
}

// srgbGray is the sRGB grey of the colour's lightness, the colour with
// its L and a = b = 0: the encoded luminance.
func srgbGray(r, g, b float64) float64 {
	y := srgbToXYZ[1]
	return srgbEncode(y[0]*srgbLinear(r) + y[1]*srgbLinear(g) + y[2]*srgbLinear(b))
}

// abBinTable holds the quantised ab gamut in units of ABGrid, sorted by a
// then b: the 10x10 cells (centred on multiples of 10) that some sRGB
// colour lands in. It is printed by scripts/gen_colorization_golden.py
// --go, which finds the cells by converting every face of the RGB cube on
// a 1025-point grid a side and the solid cube on a 65-point grid (the rim
// of the ab gamut is the image of the cube's surface); 513 points a side
// give the same set, and so do 2049.
var abBinTable = [...][2]int8{
	{-9, 8}, {-8, 4}, {-8, 5}, {-8, 6}, {-8, 7}, {-8, 8}, {-7, 2}, {-7, 3},
	{-7, 4}, {-7, 5}, {-7, 6}, {-7, 7}, {-7, 8}, {-7, 9}, {-6, 0}, {-6, 1},
	{-6, 2}, {-6, 3}, {-6, 4}, {-6, 5}, {-6, 6}, {-6, 7}, {-6, 8}, {-6, 9},
	{-5, -2}, {-5, -1}, {-5, 0}, {-5, 1}, {-5, 2}, {-5, 3}, {-5, 4}, {-5, 5},
	{-5, 6}, {-5, 7}, {-5, 8}, {-5, 9}, {-4, -3}, {-4, -2}, {-4, -1}, {-4, 0},
	{-4, 1}, {-4, 2}, {-4, 3}, {-4, 4}, {-4, 5}, {-4, 6}, {-4, 7}, {-4, 8},
	{-4, 9}, {-3, -4}, {-3, -3}, {-3, -2}, {-3, -1}, {-3, 0}, {-3, 1}, {-3, 2},
	{-3, 3}, {-3, 4}, {-3, 5}, {-3, 6}, {-3, 7}, {-3, 8}, {-3, 9}, {-2, -4},
	{-2, -3}, {-2, -2}, {-2, -1}, {-2, 0}, {-2, 1}, {-2, 2}, {-2, 3}, {-2, 4},
	{-2, 5}, {-2, 6}, {-2, 7}, {-2, 8}, {-2, 9}, {-1, -5}, {-1, -4}, {-1, -3},
	{-1, -2}, {-1, -1}, {-1, 0}, {-1, 1}, {-1, 2}, {-1, 3}, {-1, 4}, {-1, 5},
	{-1, 6}, {-1, 7}, {-1, 8}, {-1, 9}, {0, -6}, {0, -5}, {0, -4}, {0, -3},
	{0, -2}, {0, -1}, {0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5},
	{0, 6}, {0, 7}, {0, 8}, {0, 9}, {1, -7}, {1, -6}, {1, -5}, {1, -4},
	{1, -3}, {1, -2}, {1, -1}, {1, 0}, {1, 1}, {1, 2}, {1, 3}, {1, 4},
	{1, 5}, {1, 6}, {1, 7}, {1, 8}, {2, -8}, {2, -7}, {2, -6}, {2, -5},
	{2, -4}, {2, -3}, {2, -2}, {2, -1}, {2, 0}, {2, 1}, {2, 2}, {2, 3},
	{2, 4}, {2, 5}, {2, 6}, {2, 7}, {2, 8}, {3, -8}, {3, -7}, {3, -6},
	{3, -5}, {3, -4}, {3, -3}, {3, -2}, {3, -1}, {3, 0}, {3, 1}, {3, 2},
	{3, 3}, {3, 4}, {3, 5}, {3, 6}, {3, 7}, {3, 8}, {4, -9}, {4, -8},
	{4, -7}, {4, -6}, {4, -5}, {4, -4}, {4, -3}, {4, -2}, {4, -1}, {4, 0},
	{4, 1}, {4, 2}, {4, 3}, {4, 4}, {4, 5}, {4, 6}, {4, 7}, {4, 8},
	{5, -9}, {5, -8}, {5, -7}, {5, -6}, {5, -5}, {5, -4}, {5, -3}, {5, -2},
	{5, -1}, {5, 0}, {5, 1}, {5, 2}, {5, 3}, {5, 4}, {5, 5}, {5, 6},
	{5, 7}, {6, -10}, {6, -9}, {6, -8}, {6, -7}, {6, -6}, {6, -5}, {6, -4},
	{6, -3}, {6, -2}, {6, -1}, {6, 0}, {6, 1}, {6, 2}, {6, 3}, {6, 4},
	{6, 5}, {6, 6}, {6, 7}, {7, -11}, {7, -10}, {7, -9}, {7, -8}, {7, -7},
	{7, -6}, {7, -5}, {7, -4}, {7, -3}, {7, -2}, {7, -1}, {7, 0}, {7, 1},
	{7, 2}, {7, 3}, {7, 4}, {7, 5}, {7, 6}, {7, 7}, {8, -11}, {8, -10},
	{8, -9}, {8, -8}, {8, -7}, {8, -6}, {8, -5}, {8, -4}, {8, -3}, {8, -2},
	{8, -1}, {8, 0}, {8, 1}, {8, 2}, {8, 3}, {8, 4}, {8, 5}, {8, 6},
	{8, 7}, {9, -9}, {9, -8}, {9, -7}, {9, -6}, {9, -5}, {9, -4}, {9, -3},
	{9, -2}, {9, -1}, {9, 0}, {10, -7}, {10, -6}, {10, -5},
}

// NumABBins is Q, the number of ab classes: 262, not the paper's 313.
// The paper's list (pts_in_hull.npy, which cannot be downloaded here) is
// not the set of cells the sRGB gamut reaches: a published copy of it
// holds all 262 of these, and its 51 others lie beyond them along the rim,
// where no sRGB colour lands (neither a convex hull of the gamut nor a
// wider RGB gamut gave those 313 exactly when we tried). A model trained
// here predicts over these 262.
const NumABBins = len(abBinTable)

// ABBins returns the centres of the ab classes, [Q][a, b], in class order.
func ABBins() [][2]float64 {
	out := make([][2]float64, NumABBins)
	for i, c := range abBinTable {
		out[i] = [2]float64{float64(c[0]) * ABGrid, float64(c[1]) * ABGrid}
	}
	return out
}

// abCentres is ABBins as a flat [a0, b0, a1, b1, ...] table.
var abCentres = func() []float64 {
	out := make([]float64, 0, 2*NumABBins)
	for _, c := range ABBins() {
		out = append(out, c[0], c[1])
	}
	return out
}()

// softEncode returns the SoftNeighbours bins nearest to (a, b), nearest
// first (a tie going to the lower class), and their Gaussian weights
// exp(-d²/2σ²), normalised to sum to 1: the paper's soft encoding of a
// target colour. The first is the nearest bin, the class the rebalancing
// weight is read from.
func softEncode(a, b float64) (idx [SoftNeighbours]int32, w [SoftNeighbours]float64) {
	var d2 [SoftNeighbours]float64
	n := 0
	for q := range NumABBins {
		da, db := a-abCentres[2*q], b-abCentres[2*q+1]
		d := da*da + db*db
		if n == SoftNeighbours && d >= d2[n-1] {
			continue
		}
		// Insert after the entries at most as far (earlier classes win ties).
		j := min(n, SoftNeighbours-1)
		for j > 0 && d2[j-1] > d {
			d2[j], idx[j] = d2[j-1], idx[j-1]
			j--
		}
		d2[j], idx[j] = d, int32(q)
		n = min(n+1, SoftNeighbours)
	}
	// Relative to the nearest, so that a far colour does not underflow.
	var sum float64
	for j := range w {
		w[j] = math.Exp(-(d2[j] - d2[0]) / (2 * SoftSigma * SoftSigma))
		sum += w[j]
	}
	for j := range w {
		w[j] /= sum
	}
	return idx, w
}

// rebalanceKernel is the Gaussian of width RebalanceSigma between bin
// centres, [Q*Q].
var rebalanceKernel = sync.OnceValue(func() []float64 {
	k := make([]float64, NumABBins*NumABBins)
	for i := range NumABBins {
		for j := range NumABBins {
			da, db := abCentres[2*i]-abCentres[2*j], abCentres[2*i+1]-abCentres[2*j+1]
			k[i*NumABBins+j] = math.Exp(-(da*da + db*db) / (2 * RebalanceSigma * RebalanceSigma))
		}
	}
	return k
})

// RebalanceWeights returns the class-rebalancing weights w [Q] of an
// empirical bin distribution p [Q] (counts, or probabilities): p is
// normalised, smoothed by a Gaussian of width RebalanceSigma over the bin
// centres (p̃ = G p, renormalised), mixed with the uniform distribution,
// and w = ((1-λ) p̃ + λ/Q)^-1, scaled so that Σ p̃ w = 1 (the paper's
// Eq. 4). λ is RebalanceLambda in the paper; λ = 1 gives w = 1. With
// nothing counted yet, every weight is 1. The reference code mixes in the
// uniform over the bins of non-zero prior only; after the smoothing every
// bin's prior is non-zero, so that is the uniform over all Q.
func RebalanceWeights(p []float64, lambda float64) ([]float64, error) {
	if len(p) != NumABBins {
		return nil, fmt.Errorf("colorization: distribution over %d bins, want %d", len(p), NumABBins)
	}
	if !(lambda > 0 && lambda <= 1) {
		return nil, fmt.Errorf("colorization: rebalancing mix λ %g must lie in (0, 1]", lambda)
	}
	var total float64
	for i, v := range p {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("colorization: bin %d holds %g; the distribution needs finite non-negative counts", i, v)
		}
		total += v
	}
	w := make([]float64, NumABBins)
	if total == 0 {
		for i := range w {
			w[i] = 1
		}
		return w, nil
	}
	k := rebalanceKernel()
	smooth := make([]float64, NumABBins)
	var ssum float64
	for i := range smooth {
		var s float64
		for j, v := range p {
			s += k[i*NumABBins+j] * v / total
		}
		smooth[i] = s
		ssum += s
	}
	var mean float64
	for i := range w {
		smooth[i] /= ssum
		w[i] = 1 / ((1-lambda)*smooth[i] + lambda/float64(NumABBins))
		mean += smooth[i] * w[i]
	}
	for i := range w {
		w[i] /= mean
	}
	return w, nil
}

// AnnealedMean decodes class scores to colours: logits [M, Q] (one row a
// pixel) -> ab [M, 2], the mean of the bin centres under the predicted
// distribution re-tempered to temperature t, softmax(logits / t) (the
// paper's f_T(z) = exp(log z / T) / Σ exp(log z / T) of the softmax z).
// The paper decodes with t = AnnealTemperature.
func AnnealedMean(logits *tensor.Tensor, t float64) (*tensor.Tensor, error) {
	if len(logits.Shape) != 2 || logits.Shape[1] != NumABBins || logits.Numel() != len(logits.Data) {
		return nil, fmt.Errorf("colorization: logits of shape %v, want [M, %d]", logits.Shape, NumABBins)
	}
	if !(t > 0) || math.IsInf(t, 0) {
		return nil, fmt.Errorf("colorization: temperature %g must be positive", t)
	}
	m := logits.Shape[0]
	out := tensor.New(m, 2)
	tensor.Parallel(m, 4*NumABBins, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := logits.Data[r*NumABBins : (r+1)*NumABBins]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = max(mx, float64(v))
			}
			var s, a, b float64
			for q, v := range row {
				e := math.Exp((float64(v) - mx) / t)
				s += e
				a += e * abCentres[2*q]
				b += e * abCentres[2*q+1]
			}
			out.Data[2*r], out.Data[2*r+1] = float32(a/s), float32(b/s)
		}
	})
	return out, nil
}
