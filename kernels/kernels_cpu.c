/* The CPU backend: GEMMs through OpenBLAS (cblas_sgemm, threads set with
 * openblas_set_num_threads), every other op a plain C loop over rows that the compiler can
 * vectorise. Backend memory is host memory. The larger row-wise ops, attention and batches of
 * small GEMMs are split over the backend's threads (OpenMP, see run_rows); the rest runs on the
 * calling thread.
 *
 * Reductions (layer norm moments, norms, softmax sums, pooling weights) accumulate in double:
 * they cost nothing next to the memory traffic and keep the float32 error independent of the row
 * length. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_impl.h"

/* Vectorisable exp and erf. libm's expf/erff are calls the compiler cannot vectorise without
 * -ffast-math, and on the MiniLM FFN shape (4096 x 1536) a GELU through erff took longer than the
 * GEMM before it. These are branch-free C the compiler turns into SIMD with the plain SSE2
 * baseline (no -march): conversions, selects and a polynomial. */

/* exp(x): x = n ln2 + r with |r| <= ln2 / 2, exp(r) by Cephes' degree-7 polynomial (about 1 ulp),
 * 2^n built in the exponent bits. Below -87.3 (including -inf) the result is 0; above 88.7 it is
 * clamped (no caller feeds such values: softmax and sigmoid arguments are <= 0 or bounded). */
static inline float kexpf(float x)
{
    float xc = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    float t = xc * 1.44269504088896341f;
    /* Round to nearest by adding and removing 1.5 * 2^23 (exact for |t| < 2^22): no branch or
     * rounding instruction the SSE2 baseline lacks. */
    float fn = (t + 12582912.0f) - 12582912.0f;
    int32_t n = (int32_t)fn;
    float r = xc - fn * 0.693359375f; /* ln2 split in two so fn * hi is exact */
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return x < -87.3f ? 0.0f : p * scale;
}

/* erfc(a) for a >= 0 by Abramowitz & Stegun 7.1.26: t = 1 / (1 + p a), erfc = poly(t) exp(-a^2),
 * absolute error <= 1.5e-7 on erf. Used as erfc, not 1 - erf, so GELU's negative tail keeps its
 * relative precision. */
static inline float kerfcf_pos(float a)
{
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    return p * t * kexpf(-a * a);
}

/* GELU(v) = 0.5 v (1 + erf(v / sqrt 2)) = v (1 - 0.5 erfc(v / sqrt 2)) for v >= 0 and
 * 0.5 v erfc(-v / sqrt 2) for v < 0. */
static inline float kgeluf(float v)
{
    float a = fabsf(v) * 0.70710678118654752f;
    float h = 0.5f * kerfcf_pos(a);
    return v >= 0.0f ? v * (1.0f - h) : v * h;
}

/* tanh(v) = sign(v) (1 - 2 / (exp(2 |v|) + 1)); for |v| < 0.0625 the odd Taylor series to v^7
 * instead, where the first form would lose v's relative precision. */
static inline float ktanhf(float v)
{
    float a = fabsf(v);
    float e = kexpf(-2.0f * a); /* in (0, 1]: no overflow */
    float big = (1.0f - e) / (1.0f + e);
    float v2 = v * v;
    float small = a * (1.0f + v2 * (-1.0f / 3 + v2 * (2.0f / 15 + v2 * (-17.0f / 315))));
    float r = a < 0.0625f ? small : big;
    return v < 0.0f ? -r : r;
}

/* sigmoid(v) = 1 / (1 + exp(-v)), with exp of a non-positive argument only. */
static inline float ksigmoidf(float v)
{
    float e = kexpf(-fabsf(v));
    float s = 1.0f / (1.0f + e);
    return v >= 0.0f ? s : e * s;
}

/* Sum of x[0..n) in double, in 8 interleaved partial sums: independent lanes the compiler can
 * keep in SIMD registers (one ordered double sum cannot be vectorised without -ffast-math). */
static inline double ksum(const float *x, int64_t n)
{
    double acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[j + k];
    double s = 0.0;
    for (; j < n; j++)
        s += x[j];
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* Sum of (x - c)^2 in double, likewise. */
static inline double ksumsq(const float *x, int64_t n, double c)
{
    double acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) {
            double d = x[j + k] - c;
            acc[k] += d * d;
        }
    double s = 0.0;
    for (; j < n; j++) {
        double d = x[j] - c;
        s += d * d;
    }
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* The row-wise loops are compiled three times, for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the
 * SSE2 baseline, and the loader picks the widest the CPU runs (GCC's target_clones, an ifunc).
 * FMA contraction stays off in every clone and no loop is reassociated, so all three give the
 * same bits; only the speed differs. Elsewhere (or with -DKERNELS_NO_CLONES) one baseline build. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(KERNELS_NO_CLONES)
#define KERNELS_WIDE __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KERNELS_WIDE
#endif

static float *cpu_alloc(kernels_backend_t *be, size_t n, char *err, size_t errlen)
{
    (void)be;
    /* 64-byte alignment: whole cache lines, and what AVX-512 loads like. */
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p && err && errlen > 0)
        snprintf(err, errlen, "kernels_alloc: out of memory (%zu floats)", n);
    return p;
}

static void cpu_free(kernels_backend_t *be, float *p)
{
    (void)be;
    free(p);
}

static int cpu_copy(kernels_backend_t *be, float *dst, const float *src, size_t n, char *err,
                    size_t errlen)
{
    (void)be, (void)err, (void)errlen;
    memmove(dst, src, n * sizeof(float));
    return 0;
}

/* ---- Row-parallel ops. Each op's loop body runs on a range of rows (or sequences, or attention
 * heads) and the ranges are split over the backend's threads with OpenMP; results do not depend
 * on the split, since every row is computed by one thread in one fixed order. */

typedef struct cpu_ctx {
    int threads; /* for the row-parallel loops; the BLAS has its own setting */
} cpu_ctx_t;

/* Everything a row range needs; each op reads the fields it documents. */
typedef struct row_job {
    const kernels_tensor_t *x, *p1, *p2, *mask, *k, *v;
    kernels_tensor_t *out, *scratch;
    kernels_act_t act;
    float eps, scale;
    int mask_per_row;
    int64_t heads;
} row_job_t;

typedef void (*row_fn_t)(const row_job_t *job, int64_t r0, int64_t r1);

/* Below this many elements an op runs on the calling thread: waking threads costs more. */
#define CPU_PARALLEL_MIN_ELEMS 32768

static void run_rows(kernels_backend_t *be, int64_t rows, int64_t elems_per_row, row_fn_t fn,
                     const row_job_t *job)
{
    int nt = ((cpu_ctx_t *)be->ctx)->threads;
    if (nt > rows)
        nt = (int)rows;
    if (nt <= 1 || rows * elems_per_row < CPU_PARALLEL_MIN_ELEMS) {
        fn(job, 0, rows);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++)
        fn(job, rows * t / nt, rows * (t + 1) / nt);
}

/* Products of one batched GEMM, [b0, b1). */
typedef struct gemm_job {
    int trans_a, trans_b;
    float alpha, beta;
    const kernels_tensor_t *a, *b;
    kernels_tensor_t *c;
} gemm_job_t;

static void gemm_range(const gemm_job_t *g, int64_t b0, int64_t b1)
{
    const kernels_tensor_t *a = g->a, *b = g->b;
    kernels_tensor_t *c = g->c;
    int m = (int)c->rows, n = (int)c->cols, k = (int)(g->trans_a ? a->rows : a->cols);
    for (int64_t i = b0; i < b1; i++) {
        /* A shared operand (batch 1) stays at its first matrix. */
        const float *pa = a->data + (a->batch > 1 ? i * a->stride : 0);
        const float *pb = b->data + (b->batch > 1 ? i * b->stride : 0);
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                    g->trans_b ? CblasTrans : CblasNoTrans, m, n, k, g->alpha, pa, (int)a->ld, pb,
                    (int)b->ld, g->beta, c->data + i * c->stride, (int)c->ld);
    }
}

/* Products up to this many multiply-adds are too small for OpenBLAS to thread on its own: a batch
 * of them is split over the backend's threads instead, one product per call. */
#define CPU_SMALL_GEMM (128 * 128 * 128)

static int cpu_gemm(kernels_backend_t *be, int trans_a, int trans_b, float alpha,
                    const kernels_tensor_t *a, const kernels_tensor_t *b, float beta,
                    kernels_tensor_t *c, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    gemm_job_t g = {trans_a, trans_b, alpha, beta, a, b, c};
    int64_t mnk = c->rows * c->cols * (trans_a ? a->rows : a->cols);
    int nt = ((cpu_ctx_t *)be->ctx)->threads;
    if (nt > c->batch)
        nt = (int)c->batch;
    if (nt <= 1 || mnk > CPU_SMALL_GEMM) {
        gemm_range(&g, 0, c->batch);
        return 0;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++)
        gemm_range(&g, c->batch * t / nt, c->batch * (t + 1) / nt);
    return 0;
}

/* job: x, p1 (bias or NULL), act, out. */
KERNELS_WIDE
static void bias_act_rows(const row_job_t *job, int64_t r0, int64_t r1)
{
    int64_t n = job->x->cols;
    const float *pb = job->p1 ? job->p1->data : NULL;
    for (int64_t r = r0; r < r1; r++) {
        const float *in = kernels_row(job->x, r);
        float *o = kernels_row(job->out, r);
        /* The bias first, then the activation in place on the output row (still in L1): each
         * loop is then a plain loop over one array, which the compiler vectorises. */
        if (pb)
            for (int64_t j = 0; j < n; j++)
                o[j] = in[j] + pb[j];
        else if (o != in)
            memcpy(o, in, (size_t)n * sizeof(float));
        switch (job->act) {
        case KERNELS_ACT_NONE:
            break;
        case KERNELS_ACT_RELU:
            for (int64_t j = 0; j < n; j++)
                o[j] = o[j] > 0.0f ? o[j] : 0.0f;
            break;
        case KERNELS_ACT_GELU:
            for (int64_t j = 0; j < n; j++)
                o[j] = kgeluf(o[j]);
            break;
        case KERNELS_ACT_TANH:
            for (int64_t j = 0; j < n; j++)
                o[j] = ktanhf(o[j]);
            break;
        case KERNELS_ACT_SIGMOID:
            for (int64_t j = 0; j < n; j++)
                o[j] = ksigmoidf(o[j]);
            break;
        }
    }
}

static int cpu_bias_act(kernels_backend_t *be, const kernels_tensor_t *x,
                        const kernels_tensor_t *bias, kernels_act_t act, kernels_tensor_t *out,
                        char *err, size_t errlen)
{
    (void)err, (void)errlen;
    row_job_t job = {.x = x, .p1 = bias, .out = out, .act = act};
    run_rows(be, x->batch * x->rows, x->cols, bias_act_rows, &job);
    return 0;
}

/* job: x, p1 (gamma), p2 (beta), eps, out. */
KERNELS_WIDE
static void layernorm_rows(const row_job_t *job, int64_t r0, int64_t r1)
{
    int64_t n = job->x->cols;
    const float *g = job->p1->data, *b = job->p2->data;
    for (int64_t r = r0; r < r1; r++) {
        const float *in = kernels_row(job->x, r);
        float *o = kernels_row(job->out, r);
        /* Two passes (mean, then squared deviations): one-pass E[x^2] - E[x]^2 cancels badly
         * when the mean is large next to the spread. */
        double mean = ksum(in, n) / (double)n, ss = ksumsq(in, n, mean);
        float fmean = (float)mean;
        float inv = (float)(1.0 / sqrt(ss / (double)n + (double)job->eps));
        for (int64_t j = 0; j < n; j++)
            o[j] = (in[j] - fmean) * inv * g[j] + b[j];
    }
}

static int cpu_layernorm(kernels_backend_t *be, const kernels_tensor_t *x,
                         const kernels_tensor_t *gamma, const kernels_tensor_t *beta, float eps,
                         kernels_tensor_t *out, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    row_job_t job = {.x = x, .p1 = gamma, .p2 = beta, .eps = eps, .out = out};
    run_rows(be, x->batch * x->rows, x->cols, layernorm_rows, &job);
    return 0;
}

/* Softmax of one row in place; -INFINITY elements are excluded, and a row of nothing but
 * -INFINITY becomes zeros. The maximum is subtracted first to keep exp in range; separate plain
 * loops vectorise. */
KERNELS_WIDE
static void softmax_row(float *o, int64_t n)
{
    float lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                     -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t j0 = 0;
    for (; j0 + 8 <= n; j0 += 8)
        for (int k = 0; k < 8; k++)
            lane[k] = o[j0 + k] > lane[k] ? o[j0 + k] : lane[k];
    float mx = -INFINITY;
    for (; j0 < n; j0++)
        mx = o[j0] > mx ? o[j0] : mx;
    for (int k = 0; k < 8; k++)
        mx = lane[k] > mx ? lane[k] : mx;
    if (mx == -INFINITY) { /* every element masked out */
        for (int64_t j = 0; j < n; j++)
            o[j] = 0.0f;
        return;
    }
    for (int64_t j = 0; j < n; j++)
        o[j] = kexpf(o[j] - mx);
    double sum = ksum(o, n);
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++)
        o[j] *= inv;
}

/* job: x, mask (NULL, one row, or one per row: mask_per_row), out. */
KERNELS_WIDE
static void softmax_rows(const row_job_t *job, int64_t r0, int64_t r1)
{
    int64_t n = job->x->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *in = kernels_row(job->x, r);
        const float *mk = job->mask ? kernels_row(job->mask, job->mask_per_row ? r : 0) : NULL;
        float *o = kernels_row(job->out, r);
        /* The masked row is built in o first, so x is read once even when out == x. */
        if (mk)
            for (int64_t j = 0; j < n; j++)
                o[j] = in[j] + mk[j];
        else if (o != in)
            memcpy(o, in, (size_t)n * sizeof(float));
        softmax_row(o, n);
    }
}

static int cpu_softmax(kernels_backend_t *be, const kernels_tensor_t *x,
                       const kernels_tensor_t *mask, kernels_tensor_t *out, char *err,
                       size_t errlen)
{
    (void)err, (void)errlen;
    row_job_t job = {.x = x, .mask = mask, .out = out};
    job.mask_per_row = mask && mask->batch * mask->rows > 1;
    run_rows(be, x->batch * x->rows, x->cols, softmax_rows, &job);
    return 0;
}

/* Per sequence and head: scores = scale q k^T into scratch (one small GEMM), padding keys set to
 * -INFINITY, row softmax, then out = P v (a second GEMM). The heads are column blocks of q, k, v
 * and out, addressed through ld, so nothing is transposed or copied. */
/* job: x (q), k, v, mask (n_seq x seq_len or NULL), heads, scale, scratch, out; a "row" here is
 * one (sequence, head) pair, b = s * heads + h. For each: scores = scale q k^T into scratch (one
 * small GEMM), padding keys set to -INFINITY, row softmax, then out = P v (a second GEMM). The
 * heads are column blocks of q, k, v and out, addressed through ld: nothing is copied. */
static void attention_rows(const row_job_t *job, int64_t b0, int64_t b1)
{
    const kernels_tensor_t *q = job->x, *k = job->k, *v = job->v;
    kernels_tensor_t *scratch = job->scratch, *out = job->out;
    int64_t heads = job->heads, seq_len = scratch->rows, hd = q->cols / heads;
    int L = (int)seq_len, d = (int)hd;
    for (int64_t b = b0; b < b1; b++) {
        int64_t s = b / heads, h = b % heads, row0 = s * seq_len;
        const float *mk = job->mask ? kernels_row(job->mask, s) : NULL;
        float *p = scratch->data + b * scratch->stride;
        const float *qs = q->data + row0 * q->ld + h * hd;
        const float *ks = k->data + row0 * k->ld + h * hd;
        const float *vs = v->data + row0 * v->ld + h * hd;
        float *os = out->data + row0 * out->ld + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, d, job->scale, qs, (int)q->ld,
                    ks, (int)k->ld, 0.0f, p, (int)scratch->ld);
        for (int64_t i = 0; i < seq_len; i++) {
            float *pr = p + i * scratch->ld;
            if (mk)
                for (int64_t j = 0; j < seq_len; j++)
                    pr[j] = mk[j] == 0.0f ? -INFINITY : pr[j];
            softmax_row(pr, seq_len);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, d, L, 1.0f, p, (int)scratch->ld,
                    vs, (int)v->ld, 0.0f, os, (int)out->ld);
    }
}

static int cpu_attention(kernels_backend_t *be, const kernels_tensor_t *q,
                         const kernels_tensor_t *k, const kernels_tensor_t *v,
                         const kernels_tensor_t *mask, int64_t n_seq, int64_t heads, float scale,
                         kernels_tensor_t *scratch, kernels_tensor_t *out, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    row_job_t job = {.x = q,
                     .k = k,
                     .v = v,
                     .mask = mask,
                     .heads = heads,
                     .scale = scale,
                     .scratch = scratch,
                     .out = out};
    int64_t seq_len = q->rows / n_seq;
    /* Work per pair: two GEMMs of seq_len^2 * head_dim each. */
    run_rows(be, n_seq * heads, 2 * seq_len * q->cols / heads * seq_len, attention_rows, &job);
    return 0;
}

KERNELS_WIDE
static int cpu_embed(kernels_backend_t *be, const int32_t *ids, const int32_t *types, int64_t n_seq,
                     int64_t seq_len, const kernels_tensor_t *tok, const kernels_tensor_t *pos,
                     const kernels_tensor_t *type, kernels_tensor_t *out, char *err, size_t errlen)
{
    (void)be, (void)err, (void)errlen;
    int64_t dim = tok->cols;
    for (int64_t s = 0; s < n_seq; s++) {
        for (int64_t p = 0; p < seq_len; p++) {
            int64_t i = s * seq_len + p;
            const float *t = tok->data + ids[i] * tok->ld;
            const float *q = pos->data + p * pos->ld;
            const float *y = type->data + (types ? types[i] : 0) * type->ld;
            float *o = kernels_row(out, i);
            for (int64_t j = 0; j < dim; j++)
                o[j] = t[j] + q[j] + y[j];
        }
    }
    return 0;
}

/* job: x (n_seq matrices of seq_len x dim), mask, out; a "row" is one sequence. */
KERNELS_WIDE
static void mean_pool_rows(const row_job_t *job, int64_t s0, int64_t s1)
{
    const kernels_tensor_t *x = job->x;
    int64_t dim = x->cols;
    for (int64_t s = s0; s < s1; s++) {
        const float *mk = kernels_row(job->mask, s);
        float *o = kernels_row(job->out, s);
        for (int64_t j = 0; j < dim; j++)
            o[j] = 0.0f;
        double wsum = 0.0;
        for (int64_t p = 0; p < x->rows; p++) {
            float w = mk[p];
            if (w == 0.0f) /* padding: skip the row rather than add zeros */
                continue;
            wsum += w;
            const float *in = x->data + s * x->stride + p * x->ld;
            for (int64_t j = 0; j < dim; j++)
                o[j] += w * in[j];
        }
        if (wsum != 0.0) {
            float inv = (float)(1.0 / wsum);
            for (int64_t j = 0; j < dim; j++)
                o[j] *= inv;
        }
    }
}

static int cpu_mean_pool(kernels_backend_t *be, const kernels_tensor_t *x,
                         const kernels_tensor_t *mask, kernels_tensor_t *out, char *err,
                         size_t errlen)
{
    (void)err, (void)errlen;
    row_job_t job = {.x = x, .mask = mask, .out = out};
    run_rows(be, x->batch, x->rows * x->cols, mean_pool_rows, &job);
    return 0;
}

/* job: x, eps, out. */
KERNELS_WIDE
static void l2norm_rows(const row_job_t *job, int64_t r0, int64_t r1)
{
    int64_t n = job->x->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *in = kernels_row(job->x, r);
        float *o = kernels_row(job->out, r);
        double norm = sqrt(ksumsq(in, n, 0.0));
        float inv = (float)(1.0 / (norm > job->eps ? norm : (double)job->eps));
        for (int64_t j = 0; j < n; j++)
            o[j] = in[j] * inv;
    }
}

static int cpu_l2norm(kernels_backend_t *be, const kernels_tensor_t *x, float eps,
                      kernels_tensor_t *out, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    row_job_t job = {.x = x, .eps = eps, .out = out};
    run_rows(be, x->batch * x->rows, x->cols, l2norm_rows, &job);
    return 0;
}

static int cpu_bce_logits(kernels_backend_t *be, const kernels_tensor_t *z,
                          const kernels_tensor_t *y, float *loss, kernels_tensor_t *dz, char *err,
                          size_t errlen)
{
    (void)be, (void)err, (void)errlen;
    int64_t n = z->cols, rows = z->batch * z->rows;
    float scale = (float)(1.0 / (double)(rows * n));
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *zr = kernels_row(z, r), *yr = kernels_row(y, r);
        float *d = dz ? kernels_row(dz, r) : NULL;
        for (int64_t j = 0; j < n; j++) {
            float v = zr[j], t = yr[j];
            /* The stable form: log(1 + exp(-|z|)) never overflows, and log1pf keeps precision
             * when exp(-|z|) is tiny. */
            sum += (double)((v > 0.0f ? v : 0.0f) - v * t + log1pf(expf(-fabsf(v))));
            if (d)
                d[j] = (1.0f / (1.0f + expf(-v)) - t) * scale;
        }
    }
    if (loss)
        *loss = (float)(sum / (double)(rows * n));
    return 0;
}

static int cpu_softmax_xent(kernels_backend_t *be, const kernels_tensor_t *z, const int32_t *labels,
                            float *loss, kernels_tensor_t *dz, char *err, size_t errlen)
{
    (void)be, (void)err, (void)errlen;
    int64_t n = z->cols, rows = z->batch * z->rows;
    float scale = (float)(1.0 / (double)rows);
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *zr = kernels_row(z, r);
        float mx = zr[0];
        for (int64_t j = 1; j < n; j++)
            mx = zr[j] > mx ? zr[j] : mx;
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++)
            sum += expf(zr[j] - mx);
        /* -log softmax[label] = log(sum exp(z - max)) + max - z[label]. */
        total += log(sum) + (double)mx - (double)zr[labels[r]];
        if (dz) {
            float *d = kernels_row(dz, r), inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < n; j++) /* reads zr[j] before writing d[j]: dz may be z */
                d[j] = (expf(zr[j] - mx) * inv - (j == labels[r] ? 1.0f : 0.0f)) * scale;
        }
    }
    if (loss)
        *loss = (float)(total / (double)rows);
    return 0;
}

#define CPU_DB_CHUNK 256

static int cpu_dense_backward(kernels_backend_t *be, const kernels_tensor_t *x,
                              const kernels_tensor_t *w, const kernels_tensor_t *dy,
                              kernels_tensor_t *dx, kernels_tensor_t *dw, kernels_tensor_t *db,
                              char *err, size_t errlen)
{
    (void)be, (void)err, (void)errlen;
    int n = (int)x->rows, in = (int)x->cols, out = (int)w->cols;
    if (dx) /* dx = dy w^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in, out, 1.0f, dy->data,
                    (int)dy->ld, w->data, (int)w->ld, 0.0f, dx->data, (int)dx->ld);
    if (dw) /* dw = x^T dy */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, n, 1.0f, x->data, (int)x->ld,
                    dy->data, (int)dy->ld, 0.0f, dw->data, (int)dw->ld);
    if (db) {
        /* Column sums in double, a chunk of columns at a time so the accumulator lives on the
         * stack: the batch can be thousands of rows. */
        for (int64_t j0 = 0; j0 < out; j0 += CPU_DB_CHUNK) {
            double acc[CPU_DB_CHUNK];
            int64_t len = out - j0 < CPU_DB_CHUNK ? out - j0 : CPU_DB_CHUNK;
            for (int64_t j = 0; j < len; j++)
                acc[j] = 0.0;
            for (int64_t r = 0; r < n; r++) {
                const float *d = dy->data + r * dy->ld + j0;
                for (int64_t j = 0; j < len; j++)
                    acc[j] += d[j];
            }
            for (int64_t j = 0; j < len; j++)
                db->data[j0 + j] = (float)acc[j];
        }
    }
    return 0;
}

/* job: x (y), p1 (dy), out (dx). */
KERNELS_WIDE
static void relu_backward_rows(const row_job_t *job, int64_t r0, int64_t r1)
{
    int64_t n = job->x->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *y = kernels_row(job->x, r), *dy = kernels_row(job->p1, r);
        float *dx = kernels_row(job->out, r);
        for (int64_t j = 0; j < n; j++) /* a select: dy's value where y <= 0 is dropped */
            dx[j] = y[j] > 0.0f ? dy[j] : 0.0f;
    }
}

static int cpu_relu_backward(kernels_backend_t *be, const kernels_tensor_t *y,
                             const kernels_tensor_t *dy, kernels_tensor_t *dx, char *err,
                             size_t errlen)
{
    (void)err, (void)errlen;
    row_job_t job = {.x = y, .p1 = dy, .out = dx};
    run_rows(be, y->batch * y->rows, y->cols, relu_backward_rows, &job);
    return 0;
}

KERNELS_WIDE
static int cpu_adamw(kernels_backend_t *be, const kernels_adam_t *opt, kernels_tensor_t *param,
                     const kernels_tensor_t *grad, kernels_tensor_t *m, kernels_tensor_t *v,
                     char *err, size_t errlen)
{
    (void)be, (void)err, (void)errlen;
    int64_t n = param->cols, rows = param->batch * param->rows;
    float b1 = opt->beta1, b2 = opt->beta2, lr = opt->lr, eps = opt->eps;
    float wd = opt->weight_decay;
    /* Bias corrections once per step, in double: beta^t underflows gracefully there. */
    float c1 = (float)(1.0 / (1.0 - pow((double)b1, (double)opt->step)));
    float c2 = (float)(1.0 / (1.0 - pow((double)b2, (double)opt->step)));
    for (int64_t r = 0; r < rows; r++) {
        float *p = kernels_row(param, r), *mr = kernels_row(m, r), *vr = kernels_row(v, r);
        const float *g = kernels_row(grad, r);
        for (int64_t j = 0; j < n; j++) {
            mr[j] = b1 * mr[j] + (1.0f - b1) * g[j];
            vr[j] = b2 * vr[j] + (1.0f - b2) * g[j] * g[j];
            float upd = mr[j] * c1 / (sqrtf(vr[j] * c2) + eps);
            p[j] -= lr * (upd + wd * p[j]);
        }
    }
    return 0;
}

static void cpu_destroy(kernels_backend_t *be)
{
    free(be->ctx);
    be->ctx = NULL;
}

/* GCC 12 takes the address of a target_clones function (its ifunc, a global symbol) for the
 * address of a local and warns of a dangling pointer; the warning is wrong and silenced here only.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wdangling-pointer"
int kernels_cpu_init(kernels_backend_t *be, int threads, char *err, size_t errlen)
{
    cpu_ctx_t *ctx = malloc(sizeof(*ctx));
    if (!ctx) {
        if (err && errlen > 0)
            snprintf(err, errlen, "kernels: out of memory");
        return -1;
    }
    /* OpenBLAS's thread count is process-wide: the last backend created sets it. The row loops
     * use as many threads as the BLAS. */
    if (threads > 0)
        openblas_set_num_threads(threads);
    ctx->threads = threads > 0 ? threads : openblas_get_num_threads();
    be->name = "cpu";
    be->ctx = ctx;
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->copy_to_backend = cpu_copy;
    be->copy_to_host = cpu_copy;
    be->gemm = cpu_gemm;
    be->bias_act = cpu_bias_act;
    be->layernorm = cpu_layernorm;
    be->softmax = cpu_softmax;
    be->attention = cpu_attention;
    be->embed = cpu_embed;
    be->mean_pool = cpu_mean_pool;
    be->l2norm = cpu_l2norm;
    be->bce_logits = cpu_bce_logits;
    be->softmax_xent = cpu_softmax_xent;
    be->dense_backward = cpu_dense_backward;
    be->relu_backward = cpu_relu_backward;
    be->adamw = cpu_adamw;
    return 0;
}
#pragma GCC diagnostic pop
