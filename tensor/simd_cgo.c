//go:build cgo

// Element-wise kernels for the memory-bound ops (ReLU, BatchNorm, Add, the
// SGD step). The Go compiler does not vectorise loops; GCC at -O3 does, and
// target_clones builds each kernel for AVX-512, AVX2 and baseline x86-64,
// picking one at load time (ifunc), so one binary runs on any x86-64 CPU.
// Elsewhere the kernels are plain -O3 C.
//
// fp-contract=off (a pragma: cgo refuses the flag) keeps GCC from fusing
// multiply-adds, so each element-wise result is bit-identical to the Go
// fallback in simd_go.go. Sums are the exception (vector lanes sum in a different
// order); they accumulate in float32 lanes within blocks of up to 1024
// contiguous values and in double across blocks, as the Go code does with
// its four accumulators.

#pragma GCC optimize("fp-contract=off")

#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include "simd_cgo.h"

#if defined(__x86_64__) && defined(__gnu_linux__) && (defined(__GNUC__) || defined(__clang__))
#define SZ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SZ_CLONES
#endif

// A vector of 16 floats. Loads and stores go through memcpy so that
// unaligned Go slices are fine; GCC turns them into unaligned vector moves
// (or two/four narrower ones in the AVX2 and baseline clones).
typedef float szv16 __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) szv16 szload(const float *p) {
	szv16 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline __attribute__((always_inline)) float szhsum(szv16 v) {
	float s[16];
	memcpy(s, &v, sizeof s);
	float t = 0;
	for (int i = 0; i < 16; i++) {
		t += s[i];
	}
	return t;
}

// relu zeroes negative floats (including -0) and keeps NaN bit for bit,
// like relu32 in autograd: integer arithmetic, no branches.
SZ_CLONES
void sz_relu(float *restrict o, const float *restrict x, size_t n) {
	uint32_t *ob = (uint32_t *)o;
	const uint32_t *xb = (const uint32_t *)x;
	for (size_t i = 0; i < n; i++) {
		uint32_t b = xb[i];
		uint32_t neg = (uint32_t)((int32_t)b >> 31);
		uint32_t notnan = (uint32_t)((int32_t)((b & 0x7fffffffu) - 0x7f800001u) >> 31);
		ob[i] = b & ~(neg & notnan);
	}
}

// sz_relu_inplace is sz_relu over x itself (sz_relu's restrict pointers
// must not alias).
SZ_CLONES
void sz_relu_inplace(float *x, size_t n) {
	uint32_t *xb = (uint32_t *)x;
	for (size_t i = 0; i < n; i++) {
		uint32_t b = xb[i];
		uint32_t neg = (uint32_t)((int32_t)b >> 31);
		uint32_t notnan = (uint32_t)((int32_t)((b & 0x7fffffffu) - 0x7f800001u) >> 31);
		xb[i] = b & ~(neg & notnan);
	}
}

// sz_hardswish sets o = x*min(max(x+3, 0), 6)/6 in that order, ONNX's
// HardSwish as exporters write it out (Add, Clip, Mul, Div); NaN stays NaN.
SZ_CLONES
void sz_hardswish(float *restrict o, const float *restrict x, size_t n) {
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		float t = v + 3.0f;
		t = t > 0.0f ? t : (t == t ? 0.0f : t);
		t = t < 6.0f ? t : 6.0f;
		o[i] = v * t / 6.0f;
	}
}

// sz_relu_grad sets (acc=0) or adds to (acc=1) gx the upstream g where the
// output o is > 0 (not NaN), else 0.
SZ_CLONES
void sz_relu_grad(float *restrict gx, const float *restrict g, const float *restrict o, size_t n, int acc) {
	const uint32_t *gb = (const uint32_t *)g;
	const uint32_t *obits = (const uint32_t *)o;
	if (acc) {
		for (size_t i = 0; i < n; i++) {
			uint32_t m = (obits[i] - 1u) < 0x7f800000u ? 0xffffffffu : 0u;
			uint32_t v = gb[i] & m;
			float f;
			memcpy(&f, &v, 4);
			gx[i] += f;
		}
	} else {
		uint32_t *gxb = (uint32_t *)gx;
		for (size_t i = 0; i < n; i++) {
			uint32_t m = (obits[i] - 1u) < 0x7f800000u ? 0xffffffffu : 0u;
			gxb[i] = gb[i] & m;
		}
	}
}

SZ_CLONES
void sz_add(float *restrict o, const float *restrict a, const float *restrict b, size_t n) {
	for (size_t i = 0; i < n; i++) {
		o[i] = a[i] + b[i];
	}
}

// sz_add_to is dst += src. dst and src may not overlap.
SZ_CLONES
void sz_add_to(float *restrict dst, const float *restrict src, size_t n) {
	for (size_t i = 0; i < n; i++) {
		dst[i] += src[i];
	}
}

SZ_CLONES
void sz_add_scalar(float *restrict o, const float *restrict a, float v, size_t n) {
	for (size_t i = 0; i < n; i++) {
		o[i] = a[i] + v;
	}
}

// szblock bounds how many values a float32 lane sums before its total
// moves into a double, so that long runs (large images) lose no accuracy.
#define SZBLOCK 1024

// sz_run_sum returns the sum of x[0:s]: 32 float32 lanes within a block of
// SZBLOCK values, double across blocks.
static inline __attribute__((always_inline)) double sz_run_sum(const float *x, size_t s) {
	double total = 0;
	for (size_t b = 0; b < s; b += SZBLOCK) {
		size_t e = b + SZBLOCK < s ? b + SZBLOCK : s;
		szv16 a0 = {0}, a1 = {0};
		size_t i = b;
		for (; i + 32 <= e; i += 32) {
			a0 += szload(x + i);
			a1 += szload(x + i + 16);
		}
		for (; i + 16 <= e; i += 16) {
			a0 += szload(x + i);
		}
		float t = 0;
		for (; i < e; i++) {
			t += x[i];
		}
		total += (double)(szhsum(a0 + a1) + t);
	}
	return total;
}

// sz_run_sqdev returns the sum of (x-mu)^2 over x[0:s], blocked likewise.
static inline __attribute__((always_inline)) double sz_run_sqdev(const float *x, size_t s, float mu) {
	double total = 0;
	for (size_t b = 0; b < s; b += SZBLOCK) {
		size_t e = b + SZBLOCK < s ? b + SZBLOCK : s;
		szv16 a0 = {0}, a1 = {0};
		size_t i = b;
		for (; i + 32 <= e; i += 32) {
			szv16 d0 = szload(x + i) - mu, d1 = szload(x + i + 16) - mu;
			a0 += d0 * d0;
			a1 += d1 * d1;
		}
		for (; i + 16 <= e; i += 16) {
			szv16 d = szload(x + i) - mu;
			a0 += d * d;
		}
		float t = 0;
		for (; i < e; i++) {
			float d = x[i] - mu;
			t += d * d;
		}
		total += (double)(szhsum(a0 + a1) + t);
	}
	return total;
}

// sz_bn_stats writes mean[ch] and var[ch] (biased), for ch in [lo, hi), of
// x laid out [n, c, s]: two passes (mean, then squared
// deviations from the float32-rounded mean), as the Go code does.
SZ_CLONES
void sz_bn_stats(const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi, double *mean, double *var) {
	double m = (double)n * (double)s;
	for (size_t ch = lo; ch < hi; ch++) {
		double sum = 0;
		for (size_t i = 0; i < n; i++) {
			sum += sz_run_sum(x + (i * c + ch) * s, s);
		}
		double mu = sum / m;
		float mu32 = (float)mu;
		double v = 0;
		for (size_t i = 0; i < n; i++) {
			v += sz_run_sqdev(x + (i * c + ch) * s, s, mu32);
		}
		mean[ch] = mu;
		var[ch] = v / m;
	}
}

// sz_bn_apply is o = x*scale[ch] + shift[ch] over channels [lo, hi);
// all per-channel arrays here are indexed by channel.
SZ_CLONES
void sz_bn_apply(float *o, const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi, const float *scale, const float *shift) {
	for (size_t i = 0; i < n; i++) {
		for (size_t ch = lo; ch < hi; ch++) {
			size_t off = (i * c + ch) * s;
			const float *restrict xs = x + off;
			float *restrict os = o + off;
			float sc = scale[ch], sh = shift[ch];
			for (size_t j = 0; j < s; j++) {
				os[j] = xs[j] * sc + sh;
			}
		}
	}
}

// sz_bn_dots writes sum(dy) and sum(dy*(x-mean[ch])) per channel.
SZ_CLONES
void sz_bn_dots(const float *dy, const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi, const float *mean, double *sdy, double *sdyx) {
	for (size_t ch = lo; ch < hi; ch++) {
		float mu = mean[ch];
		double a = 0, b = 0;
		for (size_t i = 0; i < n; i++) {
			size_t off = (i * c + ch) * s;
			const float *g = dy + off, *xs = x + off;
			for (size_t bl = 0; bl < s; bl += SZBLOCK) {
				size_t e = bl + SZBLOCK < s ? bl + SZBLOCK : s;
				szv16 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
				size_t j = bl;
				for (; j + 32 <= e; j += 32) {
					szv16 g0 = szload(g + j), g1 = szload(g + j + 16);
					a0 += g0;
					a1 += g1;
					b0 += g0 * (szload(xs + j) - mu);
					b1 += g1 * (szload(xs + j + 16) - mu);
				}
				for (; j + 16 <= e; j += 16) {
					szv16 g0 = szload(g + j);
					a0 += g0;
					b0 += g0 * (szload(xs + j) - mu);
				}
				float ta = 0, tb = 0;
				for (; j < e; j++) {
					ta += g[j];
					tb += g[j] * (xs[j] - mu);
				}
				a += (double)(szhsum(a0 + a1) + ta);
				b += (double)(szhsum(b0 + b1) + tb);
			}
		}
		sdy[ch] = a;
		sdyx[ch] = b;
	}
}

// sz_bn_dx sets (acc=0) or adds to (acc=1) the input gradient of training
// batch norm, k*(dy - meandy - (x-mean)*c2), per channel; with c2 NULL it is
// the eval form k*dy.
SZ_CLONES
void sz_bn_dx(float *gx, const float *dy, const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi,
	const float *k, const float *meandy, const float *c2, const float *mean, int acc) {
	for (size_t i = 0; i < n; i++) {
		for (size_t ch = lo; ch < hi; ch++) {
			size_t off = (i * c + ch) * s;
			float *restrict d = gx + off;
			const float *restrict g = dy + off;
			const float *restrict xs = x + off;
			float kk = k[ch];
			if (c2 == NULL) {
				if (acc) {
					for (size_t j = 0; j < s; j++) d[j] += g[j] * kk;
				} else {
					for (size_t j = 0; j < s; j++) d[j] = g[j] * kk;
				}
				continue;
			}
			float md = meandy[ch], cc = c2[ch], mu = mean[ch];
			if (acc) {
				for (size_t j = 0; j < s; j++) d[j] += kk * (g[j] - md - (xs[j] - mu) * cc);
			} else {
				for (size_t j = 0; j < s; j++) d[j] = kk * (g[j] - md - (xs[j] - mu) * cc);
			}
		}
	}
}

// sz_sgd is torch.optim.SGD's update for one parameter tensor (see
// nn.SGD.Step): weight decay, then momentum (fresh: the buffer starts as the
// first gradient), then nesterov or plain momentum, then w -= lr*d.
SZ_CLONES
void sz_sgd(float *restrict w, const float *restrict g, float *restrict buf, size_t n,
	float lr, float wd, float mom, float damp, int nesterov, int fresh) {
	if (mom == 0) {
		for (size_t j = 0; j < n; j++) {
			float d = g[j];
			if (wd != 0) d += wd * w[j];
			w[j] -= lr * d;
		}
		return;
	}
	for (size_t j = 0; j < n; j++) {
		float d = g[j];
		if (wd != 0) d += wd * w[j];
		float b = fresh ? d : mom * buf[j] + (1 - damp) * d;
		buf[j] = b;
		if (nesterov) {
			d += mom * b;
		} else {
			d = b;
		}
		w[j] -= lr * d;
	}
}

// Without trapping-math GCC may compute both sides of a float select,
// which is what vectorising the selects below needs; Go never unmasks
// floating-point traps, so nothing can observe the difference.
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

// sz_exp32 is autograd's exp32 for x <= 0 (softmax's x - max), operation
// for operation: e^x = 2^k * p(r), flushed to 0 below the smallest normal.
static inline __attribute__((always_inline)) float sz_exp32(float x) {
	const float magic = 12582912.0f;
	float kf = x * 1.442695041f + magic;
	uint32_t kb, mb;
	memcpy(&kb, &kf, 4);
	memcpy(&mb, &magic, 4);
	uint32_t k = kb - mb;
	float fk = kf - magic;
	float r = x - fk * 0.693145751953125f;
	r -= fk * 1.428606765330187e-06f;
	float r2 = r * r;
	float r4 = r2 * r2;
	float p = (1 + r) + (0.5f + 0.16666667f * r) * r2 +
		((0.041666668f + 0.008333334f * r) + (0.0013888889f + 0.0001984127f * r) * r2) * r4;
	uint32_t sb = (k + 127u) << 23;
	float scale;
	memcpy(&scale, &sb, 4);
	float e = p * scale;
	return x < -87.33654f ? 0.0f : e;
}

typedef int32_t szv16i __attribute__((vector_size(64)));

// sz_row_max is the largest of x[0:n], -Inf for none; NaN never wins, as
// in the Go loop's "if v > m". Max is exact, so lane order cannot matter.
static inline __attribute__((always_inline)) float sz_row_max(const float *x, size_t n) {
	const float ninf = -__builtin_inff();
	szv16 mv = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf};
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		szv16 v = szload(x + i);
		szv16i take = (szv16i)(v > mv);
		mv = (szv16)(((szv16i)v & take) | ((szv16i)mv & ~take));
	}
	float lanes[16];
	memcpy(lanes, &mv, sizeof lanes);
	float m = ninf;
	for (int l = 0; l < 16; l++) {
		m = lanes[l] > m ? lanes[l] : m;
	}
	for (; i < n; i++) {
		m = x[i] > m ? x[i] : m;
	}
	return m;
}

// sz_softmax_rows writes the softmax of each of rows contiguous rows of n
// values. The row maximum and the exponentials match autograd's
// softmaxRow; the row sum adds in vector lanes (see sz_run_sum), so the
// result may differ from the Go loop in the last bit.
SZ_CLONES
void sz_softmax_rows(float *restrict o, const float *restrict x, size_t rows, size_t n) {
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * n;
		float *orow = o + r * n;
		float m = sz_row_max(xr, n);
		if (m == -__builtin_inff()) {
			m = 0; // a fully masked row gives NaN, as PyTorch does
		}
		for (size_t i = 0; i < n; i++) {
			orow[i] = sz_exp32(xr[i] - m);
		}
		float inv = (float)(1.0 / sz_run_sum(orow, n));
		for (size_t i = 0; i < n; i++) {
			orow[i] *= inv;
		}
	}
}

// sz_gelu is autograd's gelu32 over n values: tab holds intervals rows of
// 5 polynomial coefficients in u = x - c, c = lo + 0.125 + 0.25*i (the
// table's centres); x >= hi gives x and x <= lo (or NaN) gives 0*x.
SZ_CLONES
void sz_gelu(float *restrict o, const float *restrict x, size_t n, const float *restrict tab,
	int intervals, float lo, float hi) {
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		// Every lane computes the polynomial on a clamped value (so the
		// index is always in the table), then selects; branch-free so
		// that GCC vectorises it with gathers.
		float vc = v < hi ? v : hi;
		vc = vc > lo ? vc : lo; // NaN takes lo here
		int k = (int)((vc - lo) * 4);
		k = k < intervals - 1 ? k : intervals - 1;
		float c0 = tab[5 * k], c1 = tab[5 * k + 1], c2 = tab[5 * k + 2], c3 = tab[5 * k + 3], c4 = tab[5 * k + 4];
		float u = vc - ((float)k * 0.25f + (lo + 0.125f));
		float u2 = u * u;
		float p = (c0 + c1 * u) + (c2 + c3 * u) * u2 + c4 * (u2 * u2);
		float low = 0.0f * v;
		float r = v > lo ? p : low;
		o[i] = v >= hi ? v : r;
	}
}

// sz_gelu_erf is the exact GELU x*Phi(x) for inference, from erfc by the
// Chebyshev fit of Numerical Recipes (2nd ed., section 6.2, erfcc; relative
// error below 1.2e-7): erfc(z) = t*exp(-z^2 + P(t)), t = 1/(1 + z/2), with
// z = |x|/sqrt(2) clamped to 16, past which exp underflows to 0 anyway.
// Branch-free and without a table, so GCC vectorises it with no gathers.
// NaN stays NaN. (The divide is not the bottleneck: a reciprocal by
// Newton steps in its place ran 25% slower.) It alone may fuse
// multiply-adds, a third faster: no Go twin has to match it bit for bit.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
SZ_CLONES
void sz_gelu_erf(float *restrict o, const float *restrict x, size_t n) {
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		float z = __builtin_fabsf(v) * 0.70710678118654752f;
		z = z < 16.0f ? z : 16.0f;
		float t = 1.0f / (1.0f + 0.5f * z);
		float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
			t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
			t * (-0.82215223f + t * 0.17087277f))))))));
		float e = t * sz_exp32(p - z * z); // erfc(z)
		o[i] = v >= 0 ? v * (1.0f - 0.5f * e) : v * (0.5f * e);
	}
}
#pragma GCC pop_options

#pragma GCC pop_options

// sz_layernorm_rows normalises each of rows contiguous rows of d values
// (biased variance, eps inside the square root), then scales by w and
// shifts by b where given (NULL: none). stats, where given, gets each
// row's mean and 1/std. The sums add in vector lanes (sz_run_sum,
// sz_run_sqdev), so results may differ from autograd's float64 loop in
// the last bit.
SZ_CLONES
void sz_layernorm_rows(float *restrict o, const float *restrict x, size_t rows, size_t d,
	const float *restrict w, const float *restrict b, float eps, float *restrict stats) {
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * d;
		float *orow = o + r * d;
		double mean = sz_run_sum(xr, d) / (double)d;
		float m = (float)mean;
		double var = sz_run_sqdev(xr, d, m) / (double)d;
		float rs = (float)(1.0 / sqrt(var + (double)eps));
		if (stats) {
			stats[2 * r] = m;
			stats[2 * r + 1] = rs;
		}
		if (w && b) {
			for (size_t i = 0; i < d; i++) orow[i] = (xr[i] - m) * rs * w[i] + b[i];
		} else if (w) {
			for (size_t i = 0; i < d; i++) orow[i] = (xr[i] - m) * rs * w[i];
		} else if (b) {
			for (size_t i = 0; i < d; i++) orow[i] = (xr[i] - m) * rs + b[i];
		} else {
			for (size_t i = 0; i < d; i++) orow[i] = (xr[i] - m) * rs;
		}
	}
}
