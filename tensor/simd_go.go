package tensor

import "math"

// Go forms of the kernels in simd.go: the whole implementation without cgo,
// the short-slice path with it, and the reference the C kernels are tested
// against.

func hardSwishGo(o, x []float32) {
	x = x[:len(o)]
	for i, v := range x {
		t := v + 3
		if t == t { // NaN passes the Clip as it is
			t = min(max(t, 0), 6)
		}
		o[i] = v * t / 6
	}
}

func reluGo(o, x []float32) {
	x = x[:len(o)]
	for i, v := range x {
		// Branch-free (activation signs are random): clear every bit when
		// the sign is set, unless the magnitude exceeds +Inf's (NaN).
		b := math.Float32bits(v)
		neg := uint32(int32(b) >> 31)
		notNaN := uint32(int32((b&0x7fffffff)-0x7f800001) >> 31)
		o[i] = math.Float32frombits(b &^ (neg & notNaN))
	}
}

// positiveMask is all ones when v > 0 (and not NaN), else 0: v > 0 exactly
// when its bits lie in [1, 0x7f800000].
func positiveMask(v float32) uint32 {
	u := int64(math.Float32bits(v) - 1)
	return uint32((u - 0x7f800000) >> 63)
}

func reluGradGo(gx, g, o []float32, acc bool) {
	g, o = g[:len(gx)], o[:len(gx)]
	if acc {
		for i := range gx {
			gx[i] += math.Float32frombits(math.Float32bits(g[i]) & positiveMask(o[i]))
		}
		return
	}
	for i := range gx {
		gx[i] = math.Float32frombits(math.Float32bits(g[i]) & positiveMask(o[i]))
	}
}

func addGo(o, a, b []float32) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] + b[i]
	}
}

func addToGo(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

func addScalarGo(o, a []float32, v float32) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] + v
	}
}

// bnBlock bounds how many values a float32 accumulator sums before its
// total moves into a float64, so that long runs (large images) keep their
// accuracy; ResNet's runs (H*W) are at most this long at CIFAR size.
const bnBlock = 1024

func bnStatsGo(x []float32, n, c, s, lo, hi int, mean, variance []float64) {
	m := float64(n) * float64(s)
	for ch := lo; ch < hi; ch++ {
		var sum float64
		for i := 0; i < n; i++ {
			off := (i*c + ch) * s
			for b := off; b < off+s; b += bnBlock {
				sum += float64(sum32(x[b:min(b+bnBlock, off+s)]))
			}
		}
		mu := sum / m
		mu32 := float32(mu)
		var v float64
		for i := 0; i < n; i++ {
			off := (i*c + ch) * s
			for b := off; b < off+s; b += bnBlock {
				v += float64(sqDev32(x[b:min(b+bnBlock, off+s)], mu32))
			}
		}
		mean[ch], variance[ch] = mu, v/m
	}
}

func bnApplyGo(o, x []float32, n, c, s, lo, hi int, scale, shift []float32) {
	for i := 0; i < n; i++ {
		for ch := lo; ch < hi; ch++ {
			off := (i*c + ch) * s
			sc, sh := scale[ch], shift[ch]
			os := o[off : off+s]
			for j, e := range x[off : off+s] {
				os[j] = e*sc + sh
			}
		}
	}
}

func bnDotsGo(dy, x []float32, n, c, s, lo, hi int, mean []float32, sdy, sdyx []float64) {
	for ch := lo; ch < hi; ch++ {
		var a, b float64
		for i := 0; i < n; i++ {
			off := (i*c + ch) * s
			for bl := off; bl < off+s; bl += bnBlock {
				e := min(bl+bnBlock, off+s)
				ga, gb := dots32(dy[bl:e], x[bl:e], mean[ch])
				a += float64(ga)
				b += float64(gb)
			}
		}
		sdy[ch], sdyx[ch] = a, b
	}
}

func bnInputGradGo(gx, dy, x []float32, n, c, s, lo, hi int, k, meanDy, c2, mean []float32, acc bool) {
	for i := 0; i < n; i++ {
		for ch := lo; ch < hi; ch++ {
			off := (i*c + ch) * s
			d, g := gx[off:off+s], dy[off:off+s]
			kk := k[ch]
			if c2 == nil {
				if acc {
					for j := range d {
						d[j] += g[j] * kk
					}
				} else {
					for j := range d {
						d[j] = g[j] * kk
					}
				}
				continue
			}
			xs := x[off : off+s]
			md, cc, mu := meanDy[ch], c2[ch], mean[ch]
			if acc {
				for j := range d {
					d[j] += kk * (g[j] - md - (xs[j]-mu)*cc)
				}
			} else {
				for j := range d {
					d[j] = kk * (g[j] - md - (xs[j]-mu)*cc)
				}
			}
		}
	}
}

func sgdGo(w, g, buf []float32, lr, wd, mom, damp float32, nesterov, fresh bool) {
	g = g[:len(w)]
	if mom == 0 {
		for j := range w {
			d := g[j]
			if wd != 0 {
				d += wd * w[j]
			}
			w[j] -= lr * d
		}
		return
	}
	buf = buf[:len(w)]
	for j := range w {
		d := g[j]
		if wd != 0 {
			d += wd * w[j]
		}
		b := mom*buf[j] + (1-damp)*d
		if fresh {
			b = d
		}
		buf[j] = b
		if nesterov {
			d += mom * b
		} else {
			d = b
		}
		w[j] -= lr * d
	}
}

// The sums below keep four independent accumulators: one running sum is
// bound by the add latency (one element per 4 cycles).

// sum32 returns the sum of x.
func sum32(x []float32) float32 {
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a0 += x[i]
		a1 += x[i+1]
		a2 += x[i+2]
		a3 += x[i+3]
	}
	for ; i < len(x); i++ {
		a0 += x[i]
	}
	return (a0 + a1) + (a2 + a3)
}

// sqDev32 returns the sum of (x-mu)^2.
func sqDev32(x []float32, mu float32) float32 {
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := x[i]-mu, x[i+1]-mu, x[i+2]-mu, x[i+3]-mu
		a0 += d0 * d0
		a1 += d1 * d1
		a2 += d2 * d2
		a3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := x[i] - mu
		a0 += d * d
	}
	return (a0 + a1) + (a2 + a3)
}

// dots32 returns sum(g) and sum(g*(x-mu)).
func dots32(g, x []float32, mu float32) (sg, sgx float32) {
	x = x[:len(g)]
	var a0, a1, b0, b1 float32
	i := 0
	for ; i+2 <= len(g); i += 2 {
		a0 += g[i]
		a1 += g[i+1]
		b0 += g[i] * (x[i] - mu)
		b1 += g[i+1] * (x[i+1] - mu)
	}
	for ; i < len(g); i++ {
		a0 += g[i]
		b0 += g[i] * (x[i] - mu)
	}
	return a0 + a1, b0 + b1
}
