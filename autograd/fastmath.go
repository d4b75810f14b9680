package autograd

import "math"

// Scalar float32 kernels for exp and erf. The math package's float64
// versions cost 5-15 ns each, which would make softmax over attention
// scores and GELU over MLP activations dominate a ViT/BERT step. These
// evaluate short polynomials in float64 (as cheap as float32 for scalar
// code) and are within one float32 ulp of the correctly rounded result.

const (
	log2e = 1.4426950408889634
	ln2   = 0.6931471805599453
)

// exp32 returns e^x. Results below the smallest normal float32 are
// flushed to 0 (they would vanish next to any other term anyway).
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.8:
		return float32(math.Inf(1))
	case x < -87.33:
		return 0
	}
	xd := float64(x)
	kf := xd * log2e
	var k int64
	if kf >= 0 {
		k = int64(kf + 0.5)
	} else {
		k = int64(kf - 0.5)
	}
	// r lies in [-ln2/2, ln2/2]; the Taylor series to r^7 is below 1e-8
	// relative error there.
	r := xd - float64(k)*ln2
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return float32(p * math.Float64frombits(uint64(k+1023)<<52))
}

// Rational approximation erf(x) = x*P(x²)/Q(x²) on |x| <= 4, fitted for
// minimax relative error (about 2e-9 in float64) by scripts/fit_erf32.py.
// Beyond |x| = 4, erf rounds to ±1 in float32.
const (
	erfP0 = 1.12837916937585
	erfP1 = 0.18520271595805346
	erfP2 = 0.054316697346046966
	erfP3 = 0.0038495718541105713
	erfP4 = 0.00037960208714220246
	erfP5 = 4.684609845408139e-06
	erfP6 = -1.320133752313879e-08
	erfQ1 = 0.49746504736816505
	erfQ2 = 0.1139580771007602
	erfQ3 = 0.015461986227538275
	erfQ4 = 0.0013075526756206987
	erfQ5 = 6.310897976992674e-05
)

// erf64 evaluates the approximation in float64; callers round to float32.
func erf64(x float64) float64 {
	if x > 4 {
		return 1
	}
	if x < -4 {
		return -1
	}
	t := x * x
	p := erfP0 + t*(erfP1+t*(erfP2+t*(erfP3+t*(erfP4+t*(erfP5+t*erfP6)))))
	q := 1 + t*(erfQ1+t*(erfQ2+t*(erfQ3+t*(erfQ4+t*erfQ5))))
	y := x * p / q
	// Clamp the approximation's tiny overshoot near |x| = 4.
	if y > 1 {
		return 1
	}
	if y < -1 {
		return -1
	}
	return y
}

// erf32 returns erf(x) for float32 x.
func erf32(x float32) float32 { return float32(erf64(float64(x))) }
