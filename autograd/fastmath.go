package autograd

import "math"

// Scalar float32 kernels for the transcendental functions in hot loops.
// The math package works in float64 and costs 10-80 ns per call here;
// converting float32<->float64 per element is itself slow on amd64 (the
// conversions carry false register dependencies), so these stay in
// float32 and evaluate short polynomials in Estrin form to keep
// dependency chains short.

// exp32 returns e^x within 2 float32 ulps. Results below the smallest
// normal float32 are flushed to 0 (they vanish next to any other term).
func exp32(x float32) float32 {
	if x > 88.3762 {
		// Rare: near overflow (or +Inf), where 2^k needs k = 128.
		return float32(math.Exp(float64(x)))
	}
	if x < -87.33654 {
		return 0
	}
	// x = k*ln2 + r with |r| <= ln2/2; k by adding 1.5*2^23, which rounds
	// to an integer in the low mantissa bits (NaN stays NaN throughout).
	const magic = 12582912
	kf := x*1.442695041 + magic
	k := math.Float32bits(kf) - math.Float32bits(magic)
	fk := kf - magic
	// ln2 split in two (Cody-Waite) so that fk*ln2Hi is exact.
	r := x - fk*0.693145751953125
	r -= fk * 1.428606765330187e-06
	r2 := r * r
	r4 := r2 * r2
	// Taylor series to r^7: truncation error below 1e-8 for |r| <= ln2/2.
	p := (1 + r) + (0.5+0.16666667*r)*r2 + ((0.041666668+0.008333334*r)+(0.0013888889+0.0001984127*r)*r2)*r4
	return p * math.Float32frombits((k+127)<<23)
}

// gelu32 returns the exact GELU x*Φ(x) to float32 precision from the
// piecewise polynomials in gelu_table.go.
func gelu32(x float32) float32 {
	if x >= geluHi {
		return x
	}
	if !(x > geluLo) {
		return 0 * x // 0, or NaN for NaN and -Inf as 0.5*x*(1+erf) gives
	}
	i := min(uint(int((x-geluLo)*4)), geluIntervals-1)
	c := &geluTab[i]
	u := x - (float32(int(i))*0.25 - 6)
	u2 := u * u
	return (c[0] + c[1]*u) + (c[2]+c[3]*u)*u2 + c[4]*(u2*u2)
}

// geluGrad32 returns d/dx x*Φ(x) = Φ(x) + x*φ(x).
func geluGrad32(x float32) float32 {
	if x >= geluHi {
		return 1
	}
	if !(x > geluLo) {
		if x != x {
			return x
		}
		return 0
	}
	i := min(uint(int((x-geluLo)*4)), geluIntervals-1)
	c := &geluGradTab[i]
	u := x - (float32(int(i))*0.25 - 6)
	u2 := u * u
	return (c[0] + c[1]*u) + (c[2]+c[3]*u)*u2 + c[4]*(u2*u2)
}

// erf32 returns erf(x) in float32 to about 3e-7 absolute (a few ulps). Small |x| use the
// Maclaurin series (so tiny inputs keep their relative accuracy); the rest
// use Abramowitz & Stegun 7.1.26 (max error 1.5e-7) on top of exp32.
func erf32(x float32) float32 {
	if x != x {
		return x
	}
	ax := x
	if ax < 0 {
		ax = -ax
	}
	if ax < 0.5 {
		// 2/sqrt(pi) * (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320)
		z := x * x
		p := 1 + z*(-1.0/3+z*(1.0/10+z*(-1.0/42+z*(1.0/216+z*(-1.0/1320)))))
		return 1.1283791670955126 * x * p
	}
	if ax >= 4 {
		// erf(4) = 1 - 1.5e-8: 1 in float32.
		return float32(math.Copysign(1, float64(x)))
	}
	t := 1 / (1 + 0.3275911*ax)
	poly := t * (0.254829592 + t*(-0.284496736+t*(1.421413741+t*(-1.453152027+t*1.061405429))))
	y := 1 - poly*exp32(-ax*ax)
	if x < 0 {
		return -y
	}
	return y
}
