//go:build cgo && linux

package tensor

// oneDNN binding. The library is opened with dlopen at run time, so one
// binary runs with or without it, and the build needs no oneDNN headers:
// the few C types and constants we use are declared below.
//
// Why that is safe: the oneDNN 2.x C API takes every descriptor (memory
// descs, op descs) by pointer, so we never need a struct's layout, only a
// buffer at least as large and as aligned as the real one. The szdn_md and
// szdn_opdesc blobs are deliberately oversized (1 KiB and 8 KiB against
// 696 and 5976 bytes in 2.6.3) and 8-byte aligned, and the library writes
// or reads only its own sizeof. The enum values and the handful of struct
// facts we do rely on (dnnl_exec_arg_t, dnnl_version_t's leading ints,
// ndims/dims at the start of dnnl_memory_desc_t) are checked against the
// real headers by TestDNNLHeaderABI whenever /usr/include/dnnl.h exists,
// and loadDNNL refuses any library whose major version is not 2 (3.x
// replaced the op-descriptor API altogether) or whose memory desc does not
// start the way we expect.
//
// All of a convolution's primitives, reorders and memory objects are built
// once per shape (a "plan", see szdn_conv_plan) and cached: creation costs
// milliseconds, execution of a cached plan is one cgo call.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SZDN_MD_QWORDS 128
#define SZDN_OPDESC_QWORDS 1024
typedef struct { int64_t q[SZDN_MD_QWORDS]; } szdn_md;
typedef struct { int64_t q[SZDN_OPDESC_QWORDS]; } szdn_opdesc;
typedef struct { int arg; void *mem; } szdn_arg;
typedef struct { int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime; } szdn_version;

// Enum values from oneDNN 2.x's dnnl_types.h (checked by TestDNNLHeaderABI).
enum {
	SZDN_SUCCESS = 0,
	SZDN_F32 = 3,
	SZDN_TAG_ANY = 1, SZDN_TAG_X = 2, SZDN_TAG_NCHW = 5, SZDN_TAG_NHWC = 20, SZDN_TAG_OIHW = 5, SZDN_TAG_GOIHW = 7,
	SZDN_FORWARD_TRAINING = 64, SZDN_FORWARD_INFERENCE = 96,
	SZDN_CONV_DIRECT = 1, SZDN_CONV_WINOGRAD = 2,
	SZDN_CPU = 1, SZDN_STREAM_DEFAULT = 1,
	SZDN_Q_IMPL_INFO_STR = 8,
	SZDN_Q_SRC_MD = 129, SZDN_Q_DIFF_SRC_MD = 130, SZDN_Q_WEIGHTS_MD = 131,
	SZDN_Q_DIFF_WEIGHTS_MD = 132, SZDN_Q_DST_MD = 133, SZDN_Q_DIFF_DST_MD = 134,
	SZDN_ARG_SRC = 1, SZDN_ARG_DST = 17, SZDN_ARG_WEIGHTS = 33, SZDN_ARG_BIAS = 41,
	SZDN_ARG_DIFF_SRC = 129, SZDN_ARG_DIFF_DST = 145, SZDN_ARG_DIFF_WEIGHTS = 161,
	SZDN_ARG_DIFF_BIAS = 169, SZDN_ARG_SCRATCHPAD = 80,
	SZDN_Q_SCRATCHPAD_MD = 136, SZDN_SCRATCHPAD_USER = 1,
	SZDN_POOL_MAX = 511, SZDN_POOL_AVG_INCLUDE_PADDING = 767,
	SZDN_Q_WORKSPACE_MD = 135, SZDN_ARG_WORKSPACE = 64,
	SZDN_ELTWISE_RELU = 0x1f,
	SZDN_ELTWISE_GELU_ERF = 0x30,
};

typedef int (*szdn_engine_create_fn)(void **, int, size_t);
typedef int (*szdn_stream_create_fn)(void **, void *, unsigned);
typedef int (*szdn_md_init_by_tag_fn)(szdn_md *, int, const int64_t *, int, int);
typedef int (*szdn_conv_fwd_init_fn)(szdn_opdesc *, int, int, const szdn_md *, const szdn_md *,
	const szdn_md *, const szdn_md *, const int64_t *, const int64_t *, const int64_t *, const int64_t *);
typedef int (*szdn_conv_bwd_data_init_fn)(szdn_opdesc *, int, const szdn_md *, const szdn_md *,
	const szdn_md *, const int64_t *, const int64_t *, const int64_t *, const int64_t *);
typedef int (*szdn_conv_bwd_w_init_fn)(szdn_opdesc *, int, const szdn_md *, const szdn_md *,
	const szdn_md *, const szdn_md *, const int64_t *, const int64_t *, const int64_t *, const int64_t *);
typedef int (*szdn_pool_fwd_init_fn)(szdn_opdesc *, int, int, const szdn_md *, const szdn_md *,
	const int64_t *, const int64_t *, const int64_t *, const int64_t *);
typedef int (*szdn_pool_bwd_init_fn)(szdn_opdesc *, int, const szdn_md *, const szdn_md *,
	const int64_t *, const int64_t *, const int64_t *, const int64_t *);
typedef int (*szdn_pd_create_fn)(void **, const void *, const void *, void *, const void *);
typedef const szdn_md *(*szdn_pd_query_md_fn)(const void *, int, int);
typedef int (*szdn_pd_query_fn)(const void *, int, int, void *);
typedef int (*szdn_prim_create_fn)(void **, const void *);
typedef int (*szdn_mem_create_fn)(void **, const szdn_md *, void *, void *);
typedef int (*szdn_mem_set_handle_fn)(void *, void *);
typedef int (*szdn_execute_fn)(const void *, void *, int, const szdn_arg *);
typedef int (*szdn_stream_wait_fn)(void *);
typedef const szdn_version *(*szdn_version_fn)(void);
typedef int (*szdn_reorder_pd_create_fn)(void **, const szdn_md *, void *, const szdn_md *, void *, const void *);
typedef int (*szdn_md_equal_fn)(const szdn_md *, const szdn_md *);
typedef size_t (*szdn_md_size_fn)(const szdn_md *);
typedef int (*szdn_destroy_fn)(void *);
typedef int (*szdn_attr_create_fn)(void **);
typedef int (*szdn_attr_set_scratchpad_fn)(void *, int);
typedef int (*szdn_post_ops_create_fn)(void **);
typedef int (*szdn_post_ops_append_eltwise_fn)(void *, float, int, float, float);
typedef int (*szdn_post_ops_append_sum_fn)(void *, float);
typedef int (*szdn_attr_set_post_ops_fn)(void *, const void *);

static struct {
	szdn_engine_create_fn engine_create;
	szdn_stream_create_fn stream_create;
	szdn_md_init_by_tag_fn md_init_by_tag;
	szdn_conv_fwd_init_fn conv_fwd_init;
	szdn_conv_bwd_data_init_fn conv_bwd_data_init;
	szdn_conv_bwd_w_init_fn conv_bwd_w_init;
	szdn_pool_fwd_init_fn pool_fwd_init;
	szdn_pool_bwd_init_fn pool_bwd_init;
	szdn_pd_create_fn pd_create;
	szdn_pd_query_md_fn pd_query_md;
	szdn_pd_query_fn pd_query;
	szdn_prim_create_fn prim_create;
	szdn_mem_create_fn mem_create;
	szdn_mem_set_handle_fn mem_set_handle;
	szdn_execute_fn execute;
	szdn_stream_wait_fn stream_wait;
	szdn_version_fn version;
	szdn_reorder_pd_create_fn reorder_pd_create;
	szdn_md_equal_fn md_equal;
	szdn_md_size_fn md_size;
	szdn_destroy_fn pd_destroy, prim_destroy, mem_destroy;
	szdn_attr_create_fn attr_create;
	szdn_attr_set_scratchpad_fn attr_set_scratchpad;
	szdn_post_ops_create_fn post_ops_create;
	szdn_post_ops_append_eltwise_fn post_ops_append_eltwise;
	szdn_post_ops_append_sum_fn post_ops_append_sum;
	szdn_attr_set_post_ops_fn attr_set_post_ops;
	szdn_destroy_fn post_ops_destroy;
	void *engine, *stream;
	void *attr; // user-managed scratchpad, see szdn_add_scratch
	// attr_post[p] is attr plus the post-ops of p (inference convolutions):
	// bit 1 a ReLU, bit 2 a sum into the output's previous contents, bit 4
	// an erf GELU; the sum comes first.
	void *attr_post[8];
	void *arena;
	size_t arena_bytes;
} szdn;

static const char *szdn_sym(void *h, void **dst, const char *name) {
	*dst = dlsym(h, name);
	return *dst ? NULL : name;
}

// szdn_open loads the library and creates the CPU engine and stream. It
// returns NULL on success, else what went wrong.
static const char *szdn_open(const char *lib, int *major, int *minor, int *patch) {
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		return e ? e : "dlopen failed";
	}
	const char *miss = NULL;
#define SZDN_SYM(field, name) if (!miss) miss = szdn_sym(h, (void **)&szdn.field, name)
	SZDN_SYM(version, "dnnl_version");
	SZDN_SYM(engine_create, "dnnl_engine_create");
	SZDN_SYM(stream_create, "dnnl_stream_create");
	SZDN_SYM(md_init_by_tag, "dnnl_memory_desc_init_by_tag");
	SZDN_SYM(conv_fwd_init, "dnnl_dilated_convolution_forward_desc_init");
	SZDN_SYM(conv_bwd_data_init, "dnnl_dilated_convolution_backward_data_desc_init");
	SZDN_SYM(conv_bwd_w_init, "dnnl_dilated_convolution_backward_weights_desc_init");
	SZDN_SYM(pool_fwd_init, "dnnl_pooling_forward_desc_init");
	SZDN_SYM(pool_bwd_init, "dnnl_pooling_backward_desc_init");
	SZDN_SYM(pd_create, "dnnl_primitive_desc_create");
	SZDN_SYM(pd_query_md, "dnnl_primitive_desc_query_md");
	SZDN_SYM(pd_query, "dnnl_primitive_desc_query");
	SZDN_SYM(prim_create, "dnnl_primitive_create");
	SZDN_SYM(mem_create, "dnnl_memory_create");
	SZDN_SYM(mem_set_handle, "dnnl_memory_set_data_handle");
	SZDN_SYM(execute, "dnnl_primitive_execute");
	SZDN_SYM(stream_wait, "dnnl_stream_wait");
	SZDN_SYM(reorder_pd_create, "dnnl_reorder_primitive_desc_create");
	SZDN_SYM(md_equal, "dnnl_memory_desc_equal");
	SZDN_SYM(md_size, "dnnl_memory_desc_get_size");
	SZDN_SYM(pd_destroy, "dnnl_primitive_desc_destroy");
	SZDN_SYM(prim_destroy, "dnnl_primitive_destroy");
	SZDN_SYM(mem_destroy, "dnnl_memory_destroy");
	SZDN_SYM(attr_create, "dnnl_primitive_attr_create");
	SZDN_SYM(attr_set_scratchpad, "dnnl_primitive_attr_set_scratchpad_mode");
	SZDN_SYM(post_ops_create, "dnnl_post_ops_create");
	SZDN_SYM(post_ops_append_eltwise, "dnnl_post_ops_append_eltwise");
	SZDN_SYM(post_ops_append_sum, "dnnl_post_ops_append_sum");
	SZDN_SYM(attr_set_post_ops, "dnnl_primitive_attr_set_post_ops");
	SZDN_SYM(post_ops_destroy, "dnnl_post_ops_destroy");
#undef SZDN_SYM
	if (miss) {
		dlclose(h);
		return miss;
	}
	const szdn_version *v = szdn.version();
	*major = v->major; *minor = v->minor; *patch = v->patch;
	if (v->major != 2) {
		return "unsupported oneDNN major version (need 2.x)";
	}
	// ABI sanity: a 4-D plain desc must start with ndims then dims, and
	// report its dense size.
	szdn_md md;
	memset(&md, 0, sizeof md);
	int64_t dims[4] = {2, 3, 5, 7};
	if (szdn.md_init_by_tag(&md, 4, dims, SZDN_F32, SZDN_TAG_NCHW) != SZDN_SUCCESS ||
		(int)md.q[0] != 4 || md.q[1] != 2 || md.q[4] != 7 || szdn.md_size(&md) != 2*3*5*7*4) {
		return "memory descriptor layout is not the oneDNN 2.x one";
	}
	if (szdn.engine_create(&szdn.engine, SZDN_CPU, 0) != SZDN_SUCCESS) return "dnnl_engine_create failed";
	if (szdn.stream_create(&szdn.stream, szdn.engine, SZDN_STREAM_DEFAULT) != SZDN_SUCCESS) return "dnnl_stream_create failed";
	if (szdn.attr_create(&szdn.attr) != SZDN_SUCCESS ||
		szdn.attr_set_scratchpad(szdn.attr, SZDN_SCRATCHPAD_USER) != SZDN_SUCCESS) return "dnnl_primitive_attr_set_scratchpad_mode failed";
	szdn.attr_post[0] = szdn.attr;
	for (int p = 1; p < 8; p++) {
		void *po = NULL;
		int ok = szdn.attr_create(&szdn.attr_post[p]) == SZDN_SUCCESS &&
			szdn.attr_set_scratchpad(szdn.attr_post[p], SZDN_SCRATCHPAD_USER) == SZDN_SUCCESS &&
			szdn.post_ops_create(&po) == SZDN_SUCCESS &&
			(!(p & 2) || szdn.post_ops_append_sum(po, 1.0f) == SZDN_SUCCESS) &&
			(!(p & 1) || szdn.post_ops_append_eltwise(po, 1.0f, SZDN_ELTWISE_RELU, 0.0f, 0.0f) == SZDN_SUCCESS) &&
			(!(p & 4) || szdn.post_ops_append_eltwise(po, 1.0f, SZDN_ELTWISE_GELU_ERF, 0.0f, 0.0f) == SZDN_SUCCESS) &&
			szdn.attr_set_post_ops(szdn.attr_post[p], po) == SZDN_SUCCESS;
		if (po) szdn.post_ops_destroy(po);
		if (!ok) return "dnnl_primitive_attr_set_post_ops failed";
	}
	return NULL;
}

#define SZDN_MAX_STEPS 8
#define SZDN_MAX_ARGS 6
#define SZDN_MAX_USER 4
#define SZDN_MAX_INT 4

// Primitives get their scratch memory from us (user scratchpad mode), not
// from oneDNN's default global scratchpad. That one lives in thread-local
// storage of the thread that created the primitive, and Go runs cgo calls
// on whichever OS thread is free: a primitive created on one thread and
// executed on another read a scratchpad that was not its own and crashed.

typedef struct { void *prim; int nargs; szdn_arg args[SZDN_MAX_ARGS]; } szdn_step;

// A plan is everything needed to run one convolution pass on one shape.
// User memories get the caller's buffers at run time (in argument order);
// internal memories (blocked layouts) live in the shared arena.
typedef struct {
	int nsteps;
	szdn_step steps[SZDN_MAX_STEPS];
	int nuser;
	void *user[SZDN_MAX_USER];
	int nint;
	void *intmem[SZDN_MAX_INT];
	size_t intoff[SZDN_MAX_INT];
	size_t arena_bytes;
	void *scratch[SZDN_MAX_STEPS]; // scratchpad memory per step, or NULL
	size_t scratch_off, scratch_bytes; // all steps share one region
	void *pds[SZDN_MAX_STEPS + 1];
	int npds;
	char impl[128];
} szdn_plan;

static void szdn_plan_free(szdn_plan *p) {
	if (!p) return;
	for (int i = 0; i < p->nsteps; i++) if (p->steps[i].prim) szdn.prim_destroy(p->steps[i].prim);
	for (int i = 0; i < p->nuser; i++) if (p->user[i]) szdn.mem_destroy(p->user[i]);
	for (int i = 0; i < p->nint; i++) if (p->intmem[i]) szdn.mem_destroy(p->intmem[i]);
	for (int i = 0; i < SZDN_MAX_STEPS; i++) if (p->scratch[i]) szdn.mem_destroy(p->scratch[i]);
	for (int i = 0; i < p->npds; i++) if (p->pds[i]) szdn.pd_destroy(p->pds[i]);
	free(p);
}

static void *szdn_keep_pd(szdn_plan *p, void *pd) {
	if (pd) p->pds[p->npds++] = pd;
	return pd;
}

// szdn_add_scratch gives step s (made from pd) the scratchpad it asks for.
static const char *szdn_add_scratch(szdn_plan *p, int slot, szdn_step *s, const void *pd) {
	const szdn_md *md = szdn.pd_query_md(pd, SZDN_Q_SCRATCHPAD_MD, 0);
	size_t n = md ? szdn.md_size(md) : 0;
	if (n == 0) return NULL;
	if (szdn.mem_create(&p->scratch[slot], md, szdn.engine, NULL) != SZDN_SUCCESS) return "dnnl_memory_create (scratchpad) failed";
	s->args[s->nargs++] = (szdn_arg){SZDN_ARG_SCRATCHPAD, p->scratch[slot]};
	if (n > p->scratch_bytes) p->scratch_bytes = n;
	return NULL;
}

// szdn_bind connects execution argument arg of the main primitive (pd) to a
// user buffer in plain layout umd. When the primitive wants another layout
// it adds a reorder into (input) or out of (output) an arena-backed
// internal memory. pre/post collect the reorder steps.
static const char *szdn_bind(szdn_plan *p, const void *pd, int query, int qidx, const szdn_md *umd,
	int arg, int output, szdn_step *main, szdn_step *pre, int *npre, szdn_step *post, int *npost) {
	void *umem = NULL;
	if (szdn.mem_create(&umem, umd, szdn.engine, NULL) != SZDN_SUCCESS) return "dnnl_memory_create (user) failed";
	p->user[p->nuser++] = umem;
	const szdn_md *pmd = szdn.pd_query_md(pd, query, qidx);
	if (pmd == NULL) return "primitive desc has no such memory";
	if (szdn.md_equal(pmd, umd)) {
		main->args[main->nargs++] = (szdn_arg){arg, umem};
		return NULL;
	}
	void *imem = NULL;
	if (szdn.mem_create(&imem, pmd, szdn.engine, NULL) != SZDN_SUCCESS) return "dnnl_memory_create (internal) failed";
	p->intmem[p->nint] = imem;
	p->intoff[p->nint] = p->arena_bytes;
	p->nint++;
	p->arena_bytes += (szdn.md_size(pmd) + 63) & ~(size_t)63;
	main->args[main->nargs++] = (szdn_arg){arg, imem};
	void *rpd = NULL;
	const szdn_md *from = output ? pmd : umd, *to = output ? umd : pmd;
	if (szdn.reorder_pd_create(&rpd, from, szdn.engine, to, szdn.engine, szdn.attr) != SZDN_SUCCESS) return "dnnl_reorder_primitive_desc_create failed";
	szdn_keep_pd(p, rpd);
	szdn_step *s = output ? &post[(*npost)++] : &pre[(*npre)++];
	if (szdn.prim_create(&s->prim, rpd) != SZDN_SUCCESS) return "dnnl_primitive_create (reorder) failed";
	s->nargs = 2;
	s->args[0] = (szdn_arg){1, output ? imem : umem}; // DNNL_ARG_FROM
	s->args[1] = (szdn_arg){17, output ? umem : imem}; // DNNL_ARG_TO
	// Scratch slots: 0 is the main step, reorders take 1 + their index.
	return szdn_add_scratch(p, 1 + p->nint, s, rpd);
}

// szdn_conv_plan builds the plan for one pass (kind 0 forward, 1 backward
// data, 2 backward weights, 3 inference forward). geom is
// N,C,H,W,O,KH,KW,sh,sw,ph,pw,dh,dw,G,OH,OW.
// With blocked, oneDNN picks its preferred layouts and we reorder to and
// from plain NCHW/OIHW around it; otherwise it must work on plain layouts.
// User buffers are bound in this order: forward src, weights, [bias,] dst;
// backward data diff_dst, weights, diff_src; backward weights src,
// diff_dst, diff_weights[, diff_bias].
//
// Inference (kind 3) takes its weights already in the primitive's layout
// (packed once by szdn_pack_weights), so it has no weight reorder: wfixed
// is that layout, or NULL to let oneDNN choose, and the chosen one is
// copied to wout. postops picks its post-ops (attr_post), and layout its user
// layouts: bit 1 NHWC source, bit 2 NHWC destination (else NCHW). An NHWC
// side is bound as it is, with no reorder, and so is the destination of a
// sum, which must already hold the addend.
static szdn_plan *szdn_conv_plan(int kind, const int64_t *g, int bias, int blocked, int postops, int layout, int wino,
	const szdn_md *wfixed, szdn_md *wout, const char **err) {
	int64_t N = g[0], C = g[1], H = g[2], W = g[3], O = g[4], KH = g[5], KW = g[6];
	int64_t G = g[13], OH = g[14], OW = g[15];
	int64_t strides[2] = {g[7], g[8]}, dil[2] = {g[11] - 1, g[12] - 1};
	int64_t pl[2] = {g[9], g[10]};
	// PyTorch floors the output size; oneDNN wants the right padding that
	// makes its size formula exact, which can be less than the left one.
	int64_t pr[2] = {(OH - 1) * g[7] + (KH - 1) * g[11] + 1 - H - g[9],
		(OW - 1) * g[8] + (KW - 1) * g[12] + 1 - W - g[10]};
	int64_t sdims[4] = {N, C, H, W}, ddims[4] = {N, O, OH, OW}, bdims[1] = {O};
	int64_t wdims[5] = {G, O / G, C / G, KH, KW};
	szdn_md src_u, dst_u, w_u, b_u, src_a, dst_a, w_a;
	*err = NULL;
	if (kind != 3) postops = layout = 0;
	int ok = szdn.md_init_by_tag(&src_u, 4, sdims, SZDN_F32, layout & 1 ? SZDN_TAG_NHWC : SZDN_TAG_NCHW) == SZDN_SUCCESS &&
		szdn.md_init_by_tag(&dst_u, 4, ddims, SZDN_F32, layout & 2 ? SZDN_TAG_NHWC : SZDN_TAG_NCHW) == SZDN_SUCCESS &&
		szdn.md_init_by_tag(&b_u, 1, bdims, SZDN_F32, SZDN_TAG_X) == SZDN_SUCCESS &&
		(G == 1 ? szdn.md_init_by_tag(&w_u, 4, wdims + 1, SZDN_F32, SZDN_TAG_OIHW)
			: szdn.md_init_by_tag(&w_u, 5, wdims, SZDN_F32, SZDN_TAG_GOIHW)) == SZDN_SUCCESS;
	if (ok && blocked) {
		ok = szdn.md_init_by_tag(&src_a, 4, sdims, SZDN_F32, SZDN_TAG_ANY) == SZDN_SUCCESS &&
			szdn.md_init_by_tag(&dst_a, 4, ddims, SZDN_F32, SZDN_TAG_ANY) == SZDN_SUCCESS &&
			(G == 1 ? szdn.md_init_by_tag(&w_a, 4, wdims + 1, SZDN_F32, SZDN_TAG_ANY)
				: szdn.md_init_by_tag(&w_a, 5, wdims, SZDN_F32, SZDN_TAG_ANY)) == SZDN_SUCCESS;
		if (layout & 1) src_a = src_u;
		if ((layout & 2) || (postops & 2)) dst_a = dst_u;
	} else {
		src_a = src_u; dst_a = dst_u; w_a = w_u;
	}
	if (!ok) { *err = "dnnl_memory_desc_init_by_tag failed"; return NULL; }

	szdn_step mainst, pre[SZDN_MAX_ARGS], post[SZDN_MAX_ARGS];
	int npre = 0, npost = 0;
	memset(&mainst, 0, sizeof mainst);
	memset(pre, 0, sizeof pre);
	memset(post, 0, sizeof post);
	szdn_plan *p = calloc(1, sizeof(szdn_plan));
	szdn_opdesc *od = malloc(sizeof(szdn_opdesc));
	if (!p || !od) { free(p); free(od); *err = "out of memory"; return NULL; }
	void *fwd = NULL, *pd = NULL;
	if (kind == 3 && wfixed) w_a = *wfixed;
	// Winograd where asked and oneDNN has it (3x3, stride 1, no dilation or
	// groups, blocked layouts; not for packed inference weights); direct
	// otherwise, and whenever oneDNN refuses Winograd for the shape.
	int alg = wino && kind != 3 && blocked && KH == 3 && KW == 3 && g[7] == 1 && g[8] == 1 &&
		g[11] == 1 && g[12] == 1 && G == 1 ? SZDN_CONV_WINOGRAD : SZDN_CONV_DIRECT;
	for (;; alg = SZDN_CONV_DIRECT) {
		int st = szdn.conv_fwd_init(od, kind == 3 ? SZDN_FORWARD_INFERENCE : SZDN_FORWARD_TRAINING, alg,
			&src_a, &w_a, bias ? &b_u : NULL, &dst_a, strides, dil, pl, pr);
		if (st == SZDN_SUCCESS && szdn.pd_create(&fwd, od, szdn.attr_post[postops & 7], szdn.engine, NULL) == SZDN_SUCCESS) break;
		fwd = NULL;
		if (alg == SZDN_CONV_DIRECT) {
			*err = st != SZDN_SUCCESS ? "dnnl_dilated_convolution_forward_desc_init failed" : "no oneDNN forward convolution for this shape";
			goto fail;
		}
	}
	szdn_keep_pd(p, fwd);
	if (kind == 0 || kind == 3) {
		pd = fwd;
	} else {
		for (;; alg = SZDN_CONV_DIRECT) {
			int st = kind == 1
				? szdn.conv_bwd_data_init(od, alg, &src_a, &w_a, &dst_a, strides, dil, pl, pr)
				: szdn.conv_bwd_w_init(od, alg, &src_a, &w_a, bias ? &b_u : NULL, &dst_a, strides, dil, pl, pr);
			if (st == SZDN_SUCCESS && szdn.pd_create(&pd, od, szdn.attr, szdn.engine, fwd) == SZDN_SUCCESS) break;
			pd = NULL;
			if (alg == SZDN_CONV_DIRECT) {
				*err = st != SZDN_SUCCESS ? "dnnl convolution backward desc init failed" : "no oneDNN backward convolution for this shape";
				goto fail;
			}
		}
		szdn_keep_pd(p, pd);
	}
#define SZDN_BIND(q, qi, md, arg, out) if (!*err) *err = szdn_bind(p, pd, q, qi, md, arg, out, &mainst, pre, &npre, post, &npost)
	switch (kind) {
	case 0:
		SZDN_BIND(SZDN_Q_SRC_MD, 0, &src_u, SZDN_ARG_SRC, 0);
		SZDN_BIND(SZDN_Q_WEIGHTS_MD, 0, &w_u, SZDN_ARG_WEIGHTS, 0);
		if (bias) SZDN_BIND(SZDN_Q_WEIGHTS_MD, 1, &b_u, SZDN_ARG_BIAS, 0);
		SZDN_BIND(SZDN_Q_DST_MD, 0, &dst_u, SZDN_ARG_DST, 1);
		break;
	case 1:
		SZDN_BIND(SZDN_Q_DIFF_DST_MD, 0, &dst_u, SZDN_ARG_DIFF_DST, 0);
		SZDN_BIND(SZDN_Q_WEIGHTS_MD, 0, &w_u, SZDN_ARG_WEIGHTS, 0);
		SZDN_BIND(SZDN_Q_DIFF_SRC_MD, 0, &src_u, SZDN_ARG_DIFF_SRC, 1);
		break;
	case 2:
		SZDN_BIND(SZDN_Q_SRC_MD, 0, &src_u, SZDN_ARG_SRC, 0);
		SZDN_BIND(SZDN_Q_DIFF_DST_MD, 0, &dst_u, SZDN_ARG_DIFF_DST, 0);
		SZDN_BIND(SZDN_Q_DIFF_WEIGHTS_MD, 0, &w_u, SZDN_ARG_DIFF_WEIGHTS, 1);
		if (bias) SZDN_BIND(SZDN_Q_DIFF_WEIGHTS_MD, 1, &b_u, SZDN_ARG_DIFF_BIAS, 1);
		break;
	default: {
		SZDN_BIND(SZDN_Q_SRC_MD, 0, &src_u, SZDN_ARG_SRC, 0);
		// The packed weights are bound as they are: a user memory in the
		// primitive's own layout.
		const szdn_md *wmd = szdn.pd_query_md(pd, SZDN_Q_WEIGHTS_MD, 0);
		void *wmem = NULL;
		if (!*err && (wmd == NULL || szdn.mem_create(&wmem, wmd, szdn.engine, NULL) != SZDN_SUCCESS)) *err = "dnnl_memory_create (packed weights) failed";
		if (!*err) {
			p->user[p->nuser++] = wmem;
			mainst.args[mainst.nargs++] = (szdn_arg){SZDN_ARG_WEIGHTS, wmem};
			*wout = *wmd;
		}
		if (bias) SZDN_BIND(SZDN_Q_WEIGHTS_MD, 1, &b_u, SZDN_ARG_BIAS, 0);
		SZDN_BIND(SZDN_Q_DST_MD, 0, &dst_u, SZDN_ARG_DST, 1);
	}
	}
#undef SZDN_BIND
	if (*err) goto fail;
	if (szdn.prim_create(&mainst.prim, pd) != SZDN_SUCCESS) { *err = "dnnl_primitive_create (convolution) failed"; goto fail; }
	if ((*err = szdn_add_scratch(p, 0, &mainst, pd)) != NULL) goto fail;
	p->scratch_off = p->arena_bytes;
	p->arena_bytes += p->scratch_bytes;
	for (int i = 0; i < npre; i++) p->steps[p->nsteps++] = pre[i];
	p->steps[p->nsteps++] = mainst;
	for (int i = 0; i < npost; i++) p->steps[p->nsteps++] = post[i];
	const char *impl = NULL;
	if (szdn.pd_query(pd, SZDN_Q_IMPL_INFO_STR, 0, &impl) == SZDN_SUCCESS && impl) {
		strncpy(p->impl, impl, sizeof p->impl - 1);
	}
	free(od);
	return p;
fail:
	// Reorder primitives made before the failure sit in pre/post, not yet
	// in the plan.
	for (int i = 0; i < npre; i++) if (pre[i].prim) szdn.prim_destroy(pre[i].prim);
	for (int i = 0; i < npost; i++) if (post[i].prim) szdn.prim_destroy(post[i].prim);
	free(od);
	szdn_plan_free(p);
	return NULL;
}

// szdn_pool_plans builds the forward and backward plans of one pooling
// shape together (the backward reads the forward's workspace, so both must
// come from oneDNN or neither). geom is N,C,H,W,KH,KW,sh,sw,ph,pw,OH,OW.
// Both work on plain NCHW, where oneDNN's pooling is already its AVX-512
// kernel. User buffers: forward src, dst[, workspace]; backward diff_dst,
// diff_src[, workspace]. *ws_bytes is the workspace size (0 for average).
static const char *szdn_pool_plans(int alg, const int64_t *g, szdn_plan **fwd_out, szdn_plan **bwd_out, size_t *ws_bytes) {
	int64_t sdims[4] = {g[0], g[1], g[2], g[3]}, ddims[4] = {g[0], g[1], g[10], g[11]};
	int64_t kernel[2] = {g[4], g[5]}, strides[2] = {g[6], g[7]}, pl[2] = {g[8], g[9]};
	int64_t pr[2] = {(g[10] - 1) * g[6] + g[4] - g[2] - g[8], (g[11] - 1) * g[7] + g[5] - g[3] - g[9]};
	szdn_md src, dst;
	*fwd_out = *bwd_out = NULL;
	*ws_bytes = 0;
	if (szdn.md_init_by_tag(&src, 4, sdims, SZDN_F32, SZDN_TAG_NCHW) != SZDN_SUCCESS ||
		szdn.md_init_by_tag(&dst, 4, ddims, SZDN_F32, SZDN_TAG_NCHW) != SZDN_SUCCESS) return "dnnl_memory_desc_init_by_tag failed";
	szdn_plan *pf = calloc(1, sizeof(szdn_plan)), *pb = calloc(1, sizeof(szdn_plan));
	szdn_opdesc *od = malloc(sizeof(szdn_opdesc));
	const char *err = NULL;
	void *fpd = NULL, *bpd = NULL;
	if (!pf || !pb || !od) { err = "out of memory"; goto fail; }
	if (szdn.pool_fwd_init(od, SZDN_FORWARD_TRAINING, alg, &src, &dst, strides, kernel, pl, pr) != SZDN_SUCCESS) { err = "dnnl_pooling_forward_desc_init failed"; goto fail; }
	if (szdn.pd_create(&fpd, od, szdn.attr, szdn.engine, NULL) != SZDN_SUCCESS) { err = "no oneDNN forward pooling for this shape"; goto fail; }
	szdn_keep_pd(pf, fpd);
	if (szdn.pool_bwd_init(od, alg, &src, &dst, strides, kernel, pl, pr) != SZDN_SUCCESS) { err = "dnnl_pooling_backward_desc_init failed"; goto fail; }
	if (szdn.pd_create(&bpd, od, szdn.attr, szdn.engine, fpd) != SZDN_SUCCESS) { err = "no oneDNN backward pooling for this shape"; goto fail; }
	szdn_keep_pd(pb, bpd);
	const szdn_md *wmd = szdn.pd_query_md(fpd, SZDN_Q_WORKSPACE_MD, 0);
	size_t wsz = wmd ? szdn.md_size(wmd) : 0;
	// Forward: src, dst, [workspace]; backward: diff_dst, diff_src, [workspace].
	const szdn_md *fmds[3] = {&src, &dst, wmd}, *bmds[3] = {&dst, &src, wmd};
	int fargs[3] = {SZDN_ARG_SRC, SZDN_ARG_DST, SZDN_ARG_WORKSPACE};
	int bargs[3] = {SZDN_ARG_DIFF_DST, SZDN_ARG_DIFF_SRC, SZDN_ARG_WORKSPACE};
	int nmem = wsz ? 3 : 2;
	szdn_plan *plans[2] = {pf, pb};
	void *pds[2] = {fpd, bpd};
	for (int k = 0; k < 2 && !err; k++) {
		szdn_plan *p = plans[k];
		szdn_step *st = &p->steps[0];
		p->nsteps = 1;
		if (szdn.prim_create(&st->prim, pds[k]) != SZDN_SUCCESS) { err = "dnnl_primitive_create (pooling) failed"; break; }
		for (int i = 0; i < nmem; i++) {
			void *mem = NULL;
			if (szdn.mem_create(&mem, k == 0 ? fmds[i] : bmds[i], szdn.engine, NULL) != SZDN_SUCCESS) { err = "dnnl_memory_create failed"; break; }
			p->user[p->nuser++] = mem;
			st->args[st->nargs++] = (szdn_arg){k == 0 ? fargs[i] : bargs[i], mem};
		}
		if (!err) err = szdn_add_scratch(p, 0, st, pds[k]);
		p->scratch_off = 0;
		p->arena_bytes = p->scratch_bytes;
		const char *impl = NULL;
		if (szdn.pd_query(pds[k], SZDN_Q_IMPL_INFO_STR, 0, &impl) == SZDN_SUCCESS && impl) strncpy(p->impl, impl, sizeof p->impl - 1);
	}
	if (err) goto fail;
	free(od);
	*fwd_out = pf;
	*bwd_out = pb;
	*ws_bytes = wsz;
	return NULL;
fail:
	free(od);
	szdn_plan_free(pf);
	szdn_plan_free(pb);
	return err;
}

// szdn_pack_weights reorders plain OIHW (or GOIHW) weights w into layout
// to, in out (szdn_md_bytes(to) long). It builds and drops its reorder in
// one call, so the library's own scratchpad is safe to use here.
static int szdn_pack_weights(const int64_t *g, const szdn_md *to, void *w, void *out) {
	int64_t O = g[4], C = g[1], KH = g[5], KW = g[6], G = g[13];
	int64_t wdims[5] = {G, O / G, C / G, KH, KW};
	szdn_md from;
	if ((G == 1 ? szdn.md_init_by_tag(&from, 4, wdims + 1, SZDN_F32, SZDN_TAG_OIHW)
		: szdn.md_init_by_tag(&from, 5, wdims, SZDN_F32, SZDN_TAG_GOIHW)) != SZDN_SUCCESS) return -1;
	void *rpd = NULL, *prim = NULL, *src = NULL, *dst = NULL;
	int st = szdn.reorder_pd_create(&rpd, &from, szdn.engine, to, szdn.engine, NULL);
	if (st == SZDN_SUCCESS) st = szdn.prim_create(&prim, rpd);
	if (st == SZDN_SUCCESS) st = szdn.mem_create(&src, &from, szdn.engine, w);
	if (st == SZDN_SUCCESS) st = szdn.mem_create(&dst, to, szdn.engine, out);
	if (st == SZDN_SUCCESS) {
		szdn_arg args[2] = {{1, src}, {17, dst}}; // DNNL_ARG_FROM, DNNL_ARG_TO
		st = szdn.execute(prim, szdn.stream, 2, args);
	}
	if (st == SZDN_SUCCESS) st = szdn.stream_wait(szdn.stream);
	if (dst) szdn.mem_destroy(dst);
	if (src) szdn.mem_destroy(src);
	if (prim) szdn.prim_destroy(prim);
	if (rpd) szdn.pd_destroy(rpd);
	return st;
}

static size_t szdn_md_bytes(const szdn_md *md) { return szdn.md_size(md); }

// szdn_run executes a plan on the caller's buffers. The Go pointers are
// handed to oneDNN only for the duration of this call and cleared before
// it returns, as cgo's pointer rules require.
static int szdn_run(szdn_plan *p, void *u0, void *u1, void *u2, void *u3) {
	void *u[SZDN_MAX_USER] = {u0, u1, u2, u3};
	if (p->arena_bytes > szdn.arena_bytes) {
		free(szdn.arena);
		szdn.arena = aligned_alloc(64, p->arena_bytes);
		szdn.arena_bytes = szdn.arena ? p->arena_bytes : 0;
		if (!szdn.arena) return -1;
	}
	int st = SZDN_SUCCESS;
	for (int i = 0; i < p->nuser && st == SZDN_SUCCESS; i++) st = szdn.mem_set_handle(p->user[i], u[i]);
	for (int i = 0; i < p->nint && st == SZDN_SUCCESS; i++) st = szdn.mem_set_handle(p->intmem[i], (char *)szdn.arena + p->intoff[i]);
	for (int i = 0; i < SZDN_MAX_STEPS && st == SZDN_SUCCESS; i++) {
		if (p->scratch[i]) st = szdn.mem_set_handle(p->scratch[i], (char *)szdn.arena + p->scratch_off);
	}
	for (int i = 0; i < p->nsteps && st == SZDN_SUCCESS; i++) {
		st = szdn.execute(p->steps[i].prim, szdn.stream, p->steps[i].nargs, p->steps[i].args);
	}
	if (st == SZDN_SUCCESS) st = szdn.stream_wait(szdn.stream);
	for (int i = 0; i < p->nuser; i++) szdn.mem_set_handle(p->user[i], NULL);
	return st;
}
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// dnnlLibName is oneDNN 2.x's soname; 3.x is libdnnl.so.3 and has another API.
const dnnlLibName = "libdnnl.so.2"

// dnnlMDBytes and dnnlOpDescBytes are the sizes of our stand-in blobs,
// checked against the real structs by TestDNNLHeaderABI.
const (
	dnnlMDBytes     = int(C.SZDN_MD_QWORDS) * 8
	dnnlOpDescBytes = int(C.SZDN_OPDESC_QWORDS) * 8
)

// dnnlEnums are the constants the preamble hard-codes, by their header names.
var dnnlEnums = map[string]int{
	"dnnl_success":                      C.SZDN_SUCCESS,
	"dnnl_f32":                          C.SZDN_F32,
	"dnnl_format_tag_any":               C.SZDN_TAG_ANY,
	"dnnl_x":                            C.SZDN_TAG_X,
	"dnnl_nchw":                         C.SZDN_TAG_NCHW,
	"dnnl_nhwc":                         C.SZDN_TAG_NHWC,
	"dnnl_oihw":                         C.SZDN_TAG_OIHW,
	"dnnl_goihw":                        C.SZDN_TAG_GOIHW,
	"dnnl_forward_training":             C.SZDN_FORWARD_TRAINING,
	"dnnl_forward_inference":            C.SZDN_FORWARD_INFERENCE,
	"dnnl_convolution_direct":           C.SZDN_CONV_DIRECT,
	"dnnl_cpu":                          C.SZDN_CPU,
	"dnnl_stream_default_flags":         C.SZDN_STREAM_DEFAULT,
	"dnnl_query_impl_info_str":          C.SZDN_Q_IMPL_INFO_STR,
	"dnnl_query_src_md":                 C.SZDN_Q_SRC_MD,
	"dnnl_query_diff_src_md":            C.SZDN_Q_DIFF_SRC_MD,
	"dnnl_query_weights_md":             C.SZDN_Q_WEIGHTS_MD,
	"dnnl_query_diff_weights_md":        C.SZDN_Q_DIFF_WEIGHTS_MD,
	"dnnl_query_dst_md":                 C.SZDN_Q_DST_MD,
	"dnnl_query_diff_dst_md":            C.SZDN_Q_DIFF_DST_MD,
	"DNNL_ARG_SRC":                      C.SZDN_ARG_SRC,
	"DNNL_ARG_FROM":                     1,
	"DNNL_ARG_DST":                      C.SZDN_ARG_DST,
	"DNNL_ARG_TO":                       17,
	"DNNL_ARG_WEIGHTS":                  C.SZDN_ARG_WEIGHTS,
	"DNNL_ARG_BIAS":                     C.SZDN_ARG_BIAS,
	"DNNL_ARG_DIFF_SRC":                 C.SZDN_ARG_DIFF_SRC,
	"DNNL_ARG_DIFF_DST":                 C.SZDN_ARG_DIFF_DST,
	"DNNL_ARG_DIFF_WEIGHTS":             C.SZDN_ARG_DIFF_WEIGHTS,
	"DNNL_ARG_SCRATCHPAD":               C.SZDN_ARG_SCRATCHPAD,
	"dnnl_query_scratchpad_md":          C.SZDN_Q_SCRATCHPAD_MD,
	"dnnl_scratchpad_mode_user":         C.SZDN_SCRATCHPAD_USER,
	"dnnl_pooling_max":                  C.SZDN_POOL_MAX,
	"dnnl_eltwise_relu":                 C.SZDN_ELTWISE_RELU,
	"dnnl_eltwise_gelu_erf":             C.SZDN_ELTWISE_GELU_ERF,
	"dnnl_pooling_avg_include_padding":  C.SZDN_POOL_AVG_INCLUDE_PADDING,
	"dnnl_query_workspace_md":           C.SZDN_Q_WORKSPACE_MD,
	"DNNL_ARG_WORKSPACE":                C.SZDN_ARG_WORKSPACE,
	"DNNL_ARG_DIFF_BIAS":                C.SZDN_ARG_DIFF_BIAS,
	"sizeof(dnnl_exec_arg_t)":           int(unsafe.Sizeof(C.szdn_arg{})),
	"offsetof(dnnl_exec_arg_t, memory)": int(unsafe.Offsetof(C.szdn_arg{}.mem)),
	"offsetof(dnnl_version_t, hash)":    int(unsafe.Offsetof(C.szdn_version{}.hash)),
}

// ompSpinCount is the GOMP_SPINCOUNT set before libgomp loads with oneDNN,
// unless the user chose a wait policy. libgomp's default (300000 spins,
// milliseconds on this Xeon's slow PAUSE) leaves its idle worker burning a
// core long after the last OpenMP kernel, while the crew's kernels need
// both cores: a pinned ViT-tiny pass at batch 1 ran 29-31 against 18-19
// ms/run, and ResNet-18 at batch 1 went from 0.85 to 0.95 of ORT
// (interleaved). 10000 still keeps the workers hot across back-to-back
// convolutions.
const ompSpinCount = "10000"

func loadDNNL() dnnlInfo {
	if os.Getenv("GOMP_SPINCOUNT") == "" && os.Getenv("OMP_WAIT_POLICY") == "" {
		// libgomp reads its environment once, in its constructor, when
		// the dlopen below pulls it in; cgo's os.Setenv reaches C's.
		os.Setenv("GOMP_SPINCOUNT", ompSpinCount)
	}
	name := C.CString(dnnlLibName)
	defer C.free(unsafe.Pointer(name))
	var major, minor, patch C.int
	if e := C.szdn_open(name, &major, &minor, &patch); e != nil {
		return dnnlInfo{reason: fmt.Sprintf("onednn unavailable: %s: %s", dnnlLibName, C.GoString(e))}
	}
	return dnnlInfo{ok: true, lib: dnnlLibName, version: fmt.Sprintf("%d.%d.%d", major, minor, patch)}
}

// dnnlBlocked selects oneDNN's preferred (blocked) layouts with reorders at
// the boundary, rather than forcing plain NCHW/OIHW on the primitive.
// See BenchmarkConvLayouts for the measurement behind the default.
var dnnlBlocked = true

type dnnlKey struct {
	kind    int
	g       ConvGeom
	bias    bool
	blocked bool
	post    ConvPost   // inference only: the post-ops
	layout  ConvLayout // inference only: NHWC source and destination
	pack    uint64     // inference only: the PackedConv whose layout the plan reads
}

// dnnlMu guards dnnlPlans and every oneDNN call. Execution needs it as
// much as the cache does, for three pieces of state that szdn_run shares
// across calls: a plan's memory objects get the caller's buffers as their
// handles for the length of one call (two goroutines running the same
// shape would overwrite each other's handles), every plan's blocked copies
// and scratchpads live in one global arena, and all plans run on one
// stream. Lifting it means memory objects, an arena and a stream per
// concurrent caller. On two cores that buys little: each call already runs
// on both cores through oneDNN's OpenMP threads, and two calls at once
// would put four threads on them. It would pay for several single-threaded
// Go-engine instances (`sslzoo serve --engine go --instances N --threads 1`).
var dnnlMu sync.Mutex

// dnnlPlans caches plans by shape; a nil plan records a shape oneDNN
// refused, so that it goes straight to the Go kernels next time.
var dnnlPlans = map[dnnlKey]*C.szdn_plan{}

// dnnlMaxPlans bounds the cache. A training run uses a few dozen shapes;
// a server fed many image sizes would otherwise grow it without end.
const dnnlMaxPlans = 512

// dnnlPlanLocked returns the cached plan for k, building it if needed.
// dnnlMu must be held.
func dnnlPlanLocked(k dnnlKey) *C.szdn_plan {
	return dnnlPlanWithLocked(k, nil, nil)
}

// dnnlPlanWithLocked is dnnlPlanLocked for inference plans, which read
// their weights in layout wfixed (nil: oneDNN's choice, written to wout).
func dnnlPlanWithLocked(k dnnlKey, wfixed, wout *C.szdn_md) *C.szdn_plan {
	if p, ok := dnnlPlans[k]; ok {
		return p
	}
	if len(dnnlPlans) >= dnnlMaxPlans {
		for key, p := range dnnlPlans {
			C.szdn_plan_free(p)
			delete(dnnlPlans, key)
		}
	}
	geom := convGeomC(k.g)
	var errStr *C.char
	var scratch C.szdn_md
	if wout == nil {
		wout = &scratch
	}
	p := C.szdn_conv_plan(C.int(k.kind), &geom[0], cbool(k.bias), cbool(k.blocked), C.int(k.post), C.int(k.layout), cbool(k.g.Winograd && winogradAllowed), wfixed, wout, &errStr)
	dnnlPlans[k] = p // nil when refused: remembered, and the Go path runs
	return p
}

// dnnlExec runs the plan for k on the given buffers (nil for unused
// slots). It reports false when oneDNN cannot run this shape.
func dnnlExec(k dnnlKey, bufs ...[]float32) bool {
	if !dnnlState().ok {
		return false // never call through the unresolved function table
	}
	var ptr [4]unsafe.Pointer
	for i, b := range bufs {
		if b != nil {
			ptr[i] = unsafe.Pointer(&b[0])
		}
	}
	dnnlMu.Lock()
	defer dnnlMu.Unlock()
	p := dnnlPlanLocked(k)
	if p == nil {
		return false
	}
	if st := dnnlRun(p, ptr[0], ptr[1], ptr[2], ptr[3]); st != 0 {
		// Execution failures mean memory exhaustion or a library bug;
		// both must not pass silently as wrong numbers.
		panic(fmt.Sprintf("tensor: oneDNN convolution %+v failed with status %d", k.g, int(st)))
	}
	return true
}

// convGeomC is g as the C side's geometry array.
func convGeomC(g ConvGeom) [16]C.int64_t {
	return [16]C.int64_t{C.int64_t(g.N), C.int64_t(g.C), C.int64_t(g.H), C.int64_t(g.W),
		C.int64_t(g.O), C.int64_t(g.KH), C.int64_t(g.KW), C.int64_t(g.StrideH), C.int64_t(g.StrideW),
		C.int64_t(g.PadH), C.int64_t(g.PadW), C.int64_t(g.DilationH), C.int64_t(g.DilationW),
		C.int64_t(g.Groups), C.int64_t(g.OutH()), C.int64_t(g.OutW())}
}

// PackedConv is a convolution's weights reordered, once, into the layout
// oneDNN's inference kernel reads, so that a forward pass does not reorder
// them again: at batch 1 that reorder moved more bytes than the
// convolution itself. Its Forward applies the post-ops it was packed with.
type PackedConv struct {
	id   uint64
	md   C.szdn_md // the packed layout
	w    []float32
	bias bool
	post ConvPost
}

var packIDs atomic.Uint64

// PackConv packs w (OIHW, as ConvForward takes it) for inference
// convolutions shaped like g, with a bias input when bias is set and the
// post-ops post. layout is the one Forward will mostly be called with; the
// weights get the layout oneDNN prefers for it. It returns nil when oneDNN
// is not loaded or refuses the shape; ConvForward then serves.
func PackConv(g ConvGeom, w []float32, bias bool, post ConvPost, layout ConvLayout) *PackedConv {
	g = g.norm()
	if g.Validate() != nil || len(w) < g.WeightLen() || !dnnlState().ok {
		return nil
	}
	pc := &PackedConv{id: packIDs.Add(1), bias: bias, post: post}
	dnnlMu.Lock()
	defer dnnlMu.Unlock()
	k := dnnlKey{kind: 3, g: g, bias: bias, blocked: true, post: post, layout: layout, pack: pc.id}
	if dnnlPlanWithLocked(k, nil, &pc.md) == nil {
		return nil
	}
	pc.w = make([]float32, (int(C.szdn_md_bytes(&pc.md))+3)/4)
	geom := convGeomC(g)
	if C.szdn_pack_weights(&geom[0], &pc.md, unsafe.Pointer(&w[0]), unsafe.Pointer(&pc.w[0])) != 0 {
		return nil
	}
	return pc
}

// Forward computes y = conv(x, w) + b, then the post-ops packed with it,
// for any geometry with the packed weights' shape (batch and image size
// may change), with x and y laid out as layout says. With PostSum, y must
// hold the addend, in y's layout. b must be given exactly when the weights
// were packed with a bias. It reports false when oneDNN cannot run g on
// this layout.
func (pc *PackedConv) Forward(g ConvGeom, x, b, y []float32, layout ConvLayout) bool {
	g = g.norm()
	g.check()
	mustLen("input", x, g.InputLen())
	mustLen("output", y, g.OutputLen())
	if pc.bias != (b != nil) {
		panic("tensor: PackedConv.Forward: bias given or omitted against the packing")
	}
	if pc.bias {
		mustLen("bias", b, g.O)
	}
	k := dnnlKey{kind: 3, g: g, bias: pc.bias, blocked: true, post: pc.post, layout: layout, pack: pc.id}
	ptr := [4]unsafe.Pointer{unsafe.Pointer(&x[0]), unsafe.Pointer(&pc.w[0])}
	if pc.bias {
		ptr[2], ptr[3] = unsafe.Pointer(&b[0]), unsafe.Pointer(&y[0])
	} else {
		ptr[2] = unsafe.Pointer(&y[0])
	}
	dnnlMu.Lock()
	defer dnnlMu.Unlock()
	var out C.szdn_md
	p := dnnlPlanWithLocked(k, &pc.md, &out)
	if p == nil {
		return false
	}
	if st := dnnlRun(p, ptr[0], ptr[1], ptr[2], ptr[3]); st != 0 {
		panic(fmt.Sprintf("tensor: oneDNN inference convolution %+v failed with status %d", g, int(st)))
	}
	return true
}

// dnnlImpl names the oneDNN implementation chosen for a pass, e.g.
// "jit:avx512_core", for diagnostics and benchmarks.
func dnnlImpl(kind int, g ConvGeom, bias bool) string {
	if !dnnlState().ok {
		return ""
	}
	dnnlMu.Lock()
	defer dnnlMu.Unlock()
	p := dnnlPlanLocked(dnnlKey{kind: kind, g: g.norm(), bias: bias, blocked: dnnlBlocked})
	if p == nil {
		return "(refused)"
	}
	return C.GoString(&p.impl[0])
}

func dnnlConvForward(g ConvGeom, x, w, b, y []float32) bool {
	k := dnnlKey{kind: 0, g: g, bias: b != nil, blocked: dnnlBlocked}
	if b != nil {
		return dnnlExec(k, x, w, b, y)
	}
	return dnnlExec(k, x, w, y)
}

func dnnlConvBackwardData(g ConvGeom, dy, w, dx []float32, accumulate bool) bool {
	k := dnnlKey{kind: 1, g: g, blocked: dnnlBlocked}
	if !accumulate {
		return dnnlExec(k, dy, w, dx)
	}
	tmp := convScratch.get(g.InputLen())
	defer convScratch.put(tmp)
	if !dnnlExec(k, dy, w, tmp) {
		return false
	}
	addInto(dx[:len(tmp)], tmp)
	return true
}

func dnnlConvBackwardWeights(g ConvGeom, x, dy, dw, db []float32, accumulate bool) bool {
	k := dnnlKey{kind: 2, g: g, bias: db != nil, blocked: dnnlBlocked}
	if !accumulate {
		if db != nil {
			return dnnlExec(k, x, dy, dw, db)
		}
		return dnnlExec(k, x, dy, dw)
	}
	tw := convScratch.get(g.WeightLen())
	defer convScratch.put(tw)
	var tb []float32
	if db != nil {
		tb = convScratch.get(g.O)
		defer convScratch.put(tb)
	}
	ok := false
	if db != nil {
		ok = dnnlExec(k, x, dy, tw, tb)
	} else {
		ok = dnnlExec(k, x, dy, tw)
	}
	if !ok {
		return false
	}
	addInto(dw[:len(tw)], tw)
	if db != nil {
		addInto(db[:g.O], tb)
	}
	return true
}

// Pooling. oneDNN's AVX-512 pooling runs on plain NCHW and measured 3-10x
// faster than the Go loops on [64,64,32,32] (max 3x3/2: 4.5 ms against
// 40-70 ms forward; average: 9-13 ms against about 40 ms), so it is used
// whenever it loads.

type dnnlPoolKey struct {
	max bool
	g   PoolGeom
}

type dnnlPoolPlans struct {
	fwd, bwd *C.szdn_plan
	wsBytes  int
}

// dnnlPools caches pooling plans (guarded by dnnlMu); nil records a shape
// oneDNN refused.
var dnnlPools = map[dnnlPoolKey]*dnnlPoolPlans{}

func dnnlPoolLocked(k dnnlPoolKey) *dnnlPoolPlans {
	if p, ok := dnnlPools[k]; ok {
		return p
	}
	if len(dnnlPools) >= dnnlMaxPlans {
		for key, p := range dnnlPools {
			if p != nil {
				C.szdn_plan_free(p.fwd)
				C.szdn_plan_free(p.bwd)
			}
			delete(dnnlPools, key)
		}
	}
	g := k.g
	geom := [12]C.int64_t{C.int64_t(g.N), C.int64_t(g.C), C.int64_t(g.H), C.int64_t(g.W),
		C.int64_t(g.KH), C.int64_t(g.KW), C.int64_t(g.StrideH), C.int64_t(g.StrideW),
		C.int64_t(g.PadH), C.int64_t(g.PadW), C.int64_t(g.OutH()), C.int64_t(g.OutW())}
	alg := C.int(C.SZDN_POOL_AVG_INCLUDE_PADDING)
	if k.max {
		alg = C.SZDN_POOL_MAX
	}
	var fwd, bwd *C.szdn_plan
	var ws C.size_t
	var plans *dnnlPoolPlans
	if C.szdn_pool_plans(alg, &geom[0], &fwd, &bwd, &ws) == nil {
		plans = &dnnlPoolPlans{fwd: fwd, bwd: bwd, wsBytes: int(ws)}
	}
	dnnlPools[k] = plans
	return plans
}

// dnnlPoolWorkspace returns the workspace size in bytes oneDNN's max pool
// needs for g, or -1 when oneDNN will not run g.
func dnnlPoolWorkspace(g PoolGeom) int {
	if !dnnlState().ok {
		return -1
	}
	dnnlMu.Lock()
	defer dnnlMu.Unlock()
	p := dnnlPoolLocked(dnnlPoolKey{max: true, g: g})
	if p == nil {
		return -1
	}
	return p.wsBytes
}

// dnnlPool runs the forward (bwd=false: a, b = x, y) or backward (a, b =
// dy, dx) pass of a pool; ws is the max pool's workspace. It reports false
// when oneDNN cannot run this shape.
func dnnlPool(isMax, bwd bool, g PoolGeom, a, b, ws []float32) bool {
	if !dnnlState().ok {
		return false
	}
	dnnlMu.Lock()
	defer dnnlMu.Unlock()
	p := dnnlPoolLocked(dnnlPoolKey{max: isMax, g: g})
	if p == nil {
		return false
	}
	plan := p.fwd
	if bwd {
		plan = p.bwd
	}
	var wsPtr unsafe.Pointer
	if p.wsBytes > 0 {
		if len(ws)*4 < p.wsBytes {
			panic(fmt.Sprintf("tensor: pooling workspace of %d floats, oneDNN needs %d bytes", len(ws), p.wsBytes))
		}
		wsPtr = unsafe.Pointer(&ws[0])
	}
	if st := dnnlRun(plan, unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), wsPtr, nil); st != 0 {
		panic(fmt.Sprintf("tensor: oneDNN pooling %+v failed with status %d", g, int(st)))
	}
	return true
}

// dnnlRun executes a primitive on oneDNN's OpenMP threads, with the
// crew's helpers asleep meanwhile (see crewHushed).
func dnnlRun(p *C.szdn_plan, a, b, c, d unsafe.Pointer) (st C.int) {
	crewHushed(func() { st = C.szdn_run(p, a, b, c, d) })
	return st
}
