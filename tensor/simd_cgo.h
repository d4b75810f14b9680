// Prototypes of the kernels in simd_cgo.c, shared with simd_cgo.go.
#include <stddef.h>

void sz_hardswish(float *o, const float *x, size_t n);
void sz_relu(float *o, const float *x, size_t n);
void sz_relu_inplace(float *x, size_t n);
void sz_relu_grad(float *gx, const float *g, const float *o, size_t n, int acc);
void sz_add(float *o, const float *a, const float *b, size_t n);
void sz_add_to(float *dst, const float *src, size_t n);
void sz_add_scalar(float *o, const float *a, float v, size_t n);
void sz_bn_stats(const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi, double *mean, double *var);
void sz_bn_apply(float *o, const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi, const float *scale, const float *shift);
void sz_bn_dots(const float *dy, const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi, const float *mean, double *sdy, double *sdyx);
void sz_bn_dx(float *gx, const float *dy, const float *x, size_t n, size_t c, size_t s, size_t lo, size_t hi,
	const float *k, const float *meandy, const float *c2, const float *mean, int acc);
void sz_sgd(float *w, const float *g, float *buf, size_t n, float lr, float wd, float mom, float damp, int nesterov, int fresh);
void sz_softmax_rows(float *o, const float *x, size_t rows, size_t n);
void sz_gelu(float *o, const float *x, size_t n, const float *tab, int intervals, float lo, float hi);
void sz_gelu_erf(float *o, const float *x, size_t n);
void sz_layernorm_rows(float *o, const float *x, size_t rows, size_t d, const float *w, const float *b, float eps, float *stats);
