package kserve

import "math"

// Parsing float32 elements is most of what decoding a JSON request costs
// once the data arrays are lifted out (BenchmarkDecodeRequestJSON). Most
// numbers clients send have few digits, and for those Clinger's fast path
// is exact: a mantissa below 2^53 and a power of ten up to 1e22 are both
// float64 values, so one float64 multiply or divide rounds correctly.
// Rounding that float64 again to float32 is correct too, except when the
// float64 lands exactly halfway between two float32 values (then the
// decimal itself may have been just off the midpoint), which is checked.

// exactPow10 holds the powers of ten a float64 represents exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// fastFloat32 parses tok, a JSON number (isNumber holds), when the fast
// path applies; false sends the caller to strconv.
func fastFloat32(tok []byte) (float32, bool) {
	i, neg := 0, false
	if tok[0] == '-' {
		neg, i = true, 1
	}
	var mant uint64
	digits, e10 := 0, 0 // significant digits taken; decimal exponent
	for ; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
		if mant == 0 && tok[i] == '0' {
			continue
		}
		mant = mant*10 + uint64(tok[i]-'0')
		digits++
	}
	if i < len(tok) && tok[i] == '.' {
		for i++; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
			e10--
			if mant == 0 && tok[i] == '0' {
				continue
			}
			mant = mant*10 + uint64(tok[i]-'0')
			digits++
		}
	}
	if digits > 15 { // 10^15 < 2^53: the mantissa is exact; more digits might overflow uint64
		return 0, false
	}
	if i < len(tok) { // exponent
		i++
		eneg := false
		if tok[i] == '+' || tok[i] == '-' {
			eneg, i = tok[i] == '-', i+1
		}
		if len(tok)-i > 3 {
			return 0, false
		}
		e := 0
		for ; i < len(tok); i++ {
			e = e*10 + int(tok[i]-'0')
		}
		if eneg {
			e = -e
		}
		e10 += e
	}
	if mant == 0 {
		if neg {
			return float32(math.Copysign(0, -1)), true
		}
		return 0, true
	}
	if e10 < -22 || e10 > 22 {
		return 0, false
	}
	f := float64(mant)
	if e10 < 0 {
		f /= exactPow10[-e10]
	} else {
		f *= exactPow10[e10]
	}
	// float32 normals only, and not a float32 midpoint: a float64 keeps 29
	// more mantissa bits than a float32, and a midpoint is 1 then 28 zeros.
	if f < 0x1p-126 || f > math.MaxFloat32 || math.Float64bits(f)&(1<<29-1) == 1<<28 {
		return 0, false
	}
	if neg {
		f = -f
	}
	return float32(f), true
}
