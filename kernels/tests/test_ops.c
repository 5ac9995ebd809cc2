/* Tests of a backend (argument: cpu or cuda): every op against the float64 reference (ref.c) on
 * fixed-seed random inputs, over several shapes (odd sizes, padded rows, strided batches,
 * transposes). The seed is fixed, so both backends see exactly the same inputs and their worst
 * errors can be compared line by line. Without a usable CUDA device (or without the CUDA backend
 * in this build) the cuda run prints why and exits 77, which ctest reports as skipped.
 *
 * Each output buffer is poisoned before the op: its elements with NaN, so an element the op fails
 * to write fails the comparison, and the padding between rows and matrices with a sentinel that
 * must survive, so an op writing outside its view fails too.
 *
 * Error measure: err = max_i |got_i - ref_i| / max_i |ref_i| over the whole output (relative to
 * the output's scale, so that near-zero elements do not dominate). Each op states its bound; all
 * are far below 1e-3 and well above float32 rounding (6e-8) times the op's length. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ref.h"

#define SENTINEL 777.25f

static int failures;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* xorshift64*: fixed seed, so a failure reproduces. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [-scale, scale], never 0, already rounded to float so the reference sees exactly
 * the inputs the backend sees. */
static double rnd(double scale)
{
    double u = (double)(rng_next() >> 11) / 9007199254740992.0; /* [0, 1) */
    double v = (2.0 * u - 1.0) * scale;
    if (v == 0.0)
        v = scale * 0.5;
    return (double)(float)v;
}

static double *rnd_array(int64_t n, double scale)
{
    double *a = malloc((size_t)n * sizeof(double));
    if (!a) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    for (int64_t i = 0; i < n; i++)
        a[i] = rnd(scale);
    return a;
}

/* A tensor on the backend together with its layout; padding (ld > cols, stride > rows * ld)
 * exercises the view arithmetic. */
typedef struct tbuf {
    kernels_tensor_t t;
    int64_t n; /* floats allocated */
} tbuf_t;

static void must(int rc, const char *what, const char *err)
{
    if (rc < 0) {
        fprintf(stderr, "FAIL %s: %s\n", what, err);
        failures++;
    }
}

static tbuf_t tbuf_make(kernels_backend_t *be, int64_t batch, int64_t rows, int64_t cols,
                        int64_t pad)
{
    tbuf_t b;
    char err[256];
    b.t.rows = rows, b.t.cols = cols, b.t.batch = batch;
    b.t.ld = cols + pad;
    b.t.stride = rows * b.t.ld + pad * 3; /* a gap between matrices too */
    b.n = batch * b.t.stride;
    b.t.data = kernels_alloc(be, (size_t)b.n, err, sizeof(err));
    if (!b.t.data) {
        fprintf(stderr, "alloc: %s\n", err);
        abort();
    }
    return b;
}

/* Writes vals (dense, batch * rows x cols) into the tensor; padding gets SENTINEL; vals NULL
 * means poison (NaN). */
static void tbuf_set(kernels_backend_t *be, tbuf_t *b, const double *vals)
{
    char err[256];
    float *h = malloc((size_t)b->n * sizeof(float));
    if (!h)
        abort();
    for (int64_t i = 0; i < b->n; i++)
        h[i] = SENTINEL;
    for (int64_t r = 0; r < b->t.batch * b->t.rows; r++)
        for (int64_t j = 0; j < b->t.cols; j++) {
            int64_t at = (r / b->t.rows) * b->t.stride + (r % b->t.rows) * b->t.ld + j;
            h[at] = vals ? (float)vals[r * b->t.cols + j] : NAN;
        }
    must(kernels_copy_to_backend(be, b->t.data, h, (size_t)b->n, err, sizeof(err)), "copy", err);
    free(h);
}

/* Compares the tensor with ref (dense); returns the error measure, max |got - ref| over scale
 * (0: max |ref|, the usual measure), or INFINITY when an element is not finite where ref is, or
 * padding changed. */
static double tbuf_err_scaled(kernels_backend_t *be, const tbuf_t *b, const double *ref,
                              double scale)
{
    char err[256];
    float *h = malloc((size_t)b->n * sizeof(float));
    if (!h)
        abort();
    must(kernels_copy_to_host(be, h, b->t.data, (size_t)b->n, err, sizeof(err)), "copy", err);
    int64_t rows = b->t.batch * b->t.rows, cols = b->t.cols;
    char *inside = calloc((size_t)b->n, 1);
    if (!inside)
        abort();
    double maxdiff = 0.0, maxref = 0.0;
    int bad = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            int64_t at = (r / b->t.rows) * b->t.stride + (r % b->t.rows) * b->t.ld + j;
            inside[at] = 1;
            double g = h[at], want = ref[r * cols + j];
            if (!isfinite(g))
                bad = 1;
            double d = fabs(g - want);
            maxdiff = d > maxdiff ? d : maxdiff;
            maxref = fabs(want) > maxref ? fabs(want) : maxref;
        }
    for (int64_t i = 0; i < b->n; i++)
        if (!inside[i] && h[i] != SENTINEL)
            bad = 1;
    free(inside);
    free(h);
    if (bad)
        return INFINITY;
    if (scale > 0.0)
        return maxdiff / scale;
    return maxdiff / (maxref > 0.0 ? maxref : 1.0);
}

static double tbuf_err(kernels_backend_t *be, const tbuf_t *b, const double *ref)
{
    return tbuf_err_scaled(be, b, ref, 0.0);
}

/* Records one comparison; op_worst keeps the worst error of an op for its summary line. */
static void expect(const char *op, const char *shape, double e, double bound, double *op_worst)
{
    if (!(e <= bound)) {
        fprintf(stderr, "FAIL %s %s: error %.3g > bound %.1g\n", op, shape, e, bound);
        failures++;
    }
    if (!(e <= *op_worst))
        *op_worst = e;
}

static void summary(const char *op, int cases, double worst, double bound)
{
    printf("%-20s %3d cases  worst error %.2e  bound %.0e  %s\n", op, cases, worst, bound,
           worst <= bound ? "ok" : "FAILED");
}

/* GEMM: bound 1e-5. Each element is a k-term dot product; float32 accumulation in any order
 * errs by about k * 6e-8 relative to sum |a||b| (~1e-5 at k = 300 in the worst case, far less
 * in practice for random signs). */
static void test_gemm(kernels_backend_t *be)
{
    static const struct {
        int64_t m, n, k, batch, batch_a, batch_b, pad;
        int ta, tb;
        double alpha, beta;
    } cases[] = {
        {1, 1, 1, 1, 1, 1, 0, 0, 0, 1.0, 0.0},    {7, 5, 3, 1, 1, 1, 0, 0, 0, 1.0, 0.0},
        {7, 5, 3, 1, 1, 1, 2, 1, 0, 1.0, 0.0},    {7, 5, 3, 1, 1, 1, 1, 0, 1, 1.0, 0.0},
        {33, 17, 65, 1, 1, 1, 3, 1, 1, 0.5, 0.0}, {64, 256, 128, 1, 1, 1, 0, 0, 0, 1.0, 0.0},
        {64, 1, 256, 1, 1, 1, 0, 0, 0, 1.0, 0.0}, {31, 29, 300, 1, 1, 1, 1, 0, 1, 1.0, -1.5},
        {9, 11, 13, 3, 3, 3, 2, 0, 0, 1.0, 0.0},  {9, 11, 13, 4, 4, 1, 1, 0, 1, 2.0, 0.5},
        {16, 16, 8, 5, 1, 5, 0, 1, 0, 1.0, 0.0},  {12, 12, 32, 6, 6, 6, 4, 0, 1, 0.125, 0.0},
    };
    const double bound = 1e-5;
    double worst = 0.0;
    int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
    for (int c = 0; c < n_cases; c++) {
        int64_t m = cases[c].m, n = cases[c].n, k = cases[c].k, batch = cases[c].batch;
        int ta = cases[c].ta, tb = cases[c].tb;
        int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
        tbuf_t a = tbuf_make(be, cases[c].batch_a, ar, ac, cases[c].pad);
        tbuf_t b = tbuf_make(be, cases[c].batch_b, br, bc, cases[c].pad);
        tbuf_t cc = tbuf_make(be, batch, m, n, cases[c].pad);
        double *ha = rnd_array(cases[c].batch_a * ar * ac, 1.0);
        double *hb = rnd_array(cases[c].batch_b * br * bc, 1.0);
        double *hc = rnd_array(batch * m * n, 1.0);
        tbuf_set(be, &a, ha);
        tbuf_set(be, &b, hb);
        /* beta == 0: C poisoned (must not be read); otherwise C holds values. */
        tbuf_set(be, &cc, cases[c].beta == 0.0 ? NULL : hc);
        char err[256] = "";
        must(kernels_gemm(be, ta, tb, (float)cases[c].alpha, &a.t, &b.t, (float)cases[c].beta,
                          &cc.t, err, sizeof(err)),
             "kernels_gemm", err);
        for (int64_t i = 0; i < batch; i++)
            ref_gemm(ta, tb, m, n, k, cases[c].alpha, ha + (cases[c].batch_a > 1 ? i : 0) * ar * ac,
                     hb + (cases[c].batch_b > 1 ? i : 0) * br * bc, cases[c].beta, hc + i * m * n);
        char shape[128];
        snprintf(shape, sizeof(shape), "%lldx%lldx%lld batch %lld ta %d tb %d", (long long)m,
                 (long long)n, (long long)k, (long long)batch, ta, tb);
        expect("gemm", shape, tbuf_err(be, &cc, hc), bound, &worst);
        free(ha), free(hb), free(hc);
        kernels_free(be, a.t.data), kernels_free(be, b.t.data), kernels_free(be, cc.t.data);
    }
    summary("gemm", n_cases, worst, bound);
}

/* Row-op shapes: batch x rows x cols, with padding. */
static const struct {
    int64_t batch, rows, cols, pad;
} row_shapes[] = {
    {1, 1, 1, 0}, {1, 7, 3, 0}, {1, 5, 384, 3}, {3, 9, 17, 2}, {2, 64, 128, 0}, {1, 33, 1536, 1},
};
#define N_ROW_SHAPES ((int)(sizeof(row_shapes) / sizeof(row_shapes[0])))

static void row_shape_name(int s, char *buf, size_t len)
{
    snprintf(buf, len, "%lldx%lldx%lld pad %lld", (long long)row_shapes[s].batch,
             (long long)row_shapes[s].rows, (long long)row_shapes[s].cols,
             (long long)row_shapes[s].pad);
}

/* Bias + activation: bound 2e-6. One add and one libm call per element (erff, tanhf, expf are
 * within a few ulp). Inputs span [-4, 4] to reach the saturating parts. Each activation runs
 * with and without bias, and once in place (out == x). */
static void test_bias_act(kernels_backend_t *be)
{
    static const char *names[] = {"bias_act/none", "bias_act/relu", "bias_act/gelu",
                                  "bias_act/tanh", "bias_act/sigmoid"};
    const double bound = 2e-6;
    for (int act = KERNELS_ACT_NONE; act <= KERNELS_ACT_SIGMOID; act++) {
        double worst = 0.0;
        int n_cases = 0;
        for (int s = 0; s < N_ROW_SHAPES; s++) {
            for (int variant = 0; variant < 3; variant++) { /* bias, no bias, in place */
                int64_t batch = row_shapes[s].batch, rows = row_shapes[s].rows;
                int64_t cols = row_shapes[s].cols, total = batch * rows;
                tbuf_t x = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
                tbuf_t out = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
                tbuf_t bias = tbuf_make(be, 1, 1, cols, 0);
                double *hx = rnd_array(total * cols, 4.0), *hb = rnd_array(cols, 1.0);
                double *want = rnd_array(total * cols, 1.0);
                tbuf_set(be, &x, hx);
                tbuf_set(be, &out, NULL);
                tbuf_set(be, &bias, hb);
                int use_bias = variant != 1;
                tbuf_t *dst = variant == 2 ? &x : &out;
                char err[256] = "";
                must(kernels_bias_act(be, &x.t, use_bias ? &bias.t : NULL, (kernels_act_t)act,
                                      &dst->t, err, sizeof(err)),
                     "kernels_bias_act", err);
                ref_bias_act(total, cols, hx, use_bias ? hb : NULL, (kernels_act_t)act, want);
                char shape[128];
                row_shape_name(s, shape, sizeof(shape));
                expect(names[act], shape, tbuf_err(be, dst, want), bound, &worst);
                n_cases++;
                free(hx), free(hb), free(want);
                kernels_free(be, x.t.data), kernels_free(be, out.t.data);
                kernels_free(be, bias.t.data);
            }
        }
        summary(names[act], n_cases, worst, bound);
    }
}

/* Layer norm: bound 1e-5. Moments in double; the float part is a subtract, two multiplies and
 * an add per element, but the output's scale (gamma) can be small next to single elements. The
 * inputs carry an offset (mean 3) so a naive one-pass variance would fail. */
static void test_layernorm(kernels_backend_t *be)
{
    const double bound = 1e-5;
    double worst = 0.0;
    int n_cases = 0;
    for (int s = 0; s < N_ROW_SHAPES; s++) {
        int64_t batch = row_shapes[s].batch, rows = row_shapes[s].rows;
        int64_t cols = row_shapes[s].cols, total = batch * rows;
        if (cols < 2)
            continue; /* a 1-wide row normalises to beta exactly; covered by the others */
        tbuf_t x = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
        tbuf_t out = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
        tbuf_t g = tbuf_make(be, 1, 1, cols, 0), b = tbuf_make(be, 1, 1, cols, 0);
        double *hx = rnd_array(total * cols, 2.0), *hg = rnd_array(cols, 1.5);
        double *hb = rnd_array(cols, 0.5), *want = rnd_array(total * cols, 1.0);
        for (int64_t i = 0; i < total * cols; i++)
            hx[i] = (double)(float)(hx[i] + 3.0);
        tbuf_set(be, &x, hx), tbuf_set(be, &out, NULL), tbuf_set(be, &g, hg);
        tbuf_set(be, &b, hb);
        char err[256] = "";
        must(kernels_layernorm(be, &x.t, &g.t, &b.t, 1e-12f, &out.t, err, sizeof(err)),
             "kernels_layernorm", err);
        ref_layernorm(total, cols, hx, hg, hb, (double)1e-12f, want);
        char shape[128];
        row_shape_name(s, shape, sizeof(shape));
        expect("layernorm", shape, tbuf_err(be, &out, want), bound, &worst);
        n_cases++;
        free(hx), free(hg), free(hb), free(want);
        kernels_free(be, x.t.data), kernels_free(be, out.t.data);
        kernels_free(be, g.t.data), kernels_free(be, b.t.data);
    }
    summary("layernorm", n_cases, worst, bound);
}

/* Softmax with mask: bound 2e-6 (one expf and a normalisation per element; sums in double).
 * Variants: no mask, one broadcast mask row, one mask row per row; masks hold random values
 * and -INFINITY at some positions, and one row fully masked (must come out zeros). */
static void test_softmax(kernels_backend_t *be)
{
    const double bound = 2e-6;
    double worst = 0.0;
    int n_cases = 0;
    for (int s = 0; s < N_ROW_SHAPES; s++) {
        for (int variant = 0; variant < 3; variant++) {
            int64_t batch = row_shapes[s].batch, rows = row_shapes[s].rows;
            int64_t cols = row_shapes[s].cols, total = batch * rows;
            int64_t mrows = variant == 2 ? total : 1;
            tbuf_t x = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
            tbuf_t out = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
            tbuf_t mask = tbuf_make(be, 1, mrows, cols, 0);
            double *hx = rnd_array(total * cols, 8.0), *hm = rnd_array(mrows * cols, 2.0);
            double *want = rnd_array(total * cols, 1.0);
            for (int64_t i = 0; i < mrows * cols; i++)
                if (i % 5 == 3 && i % cols != 0) /* keep column 0 so most rows stay live */
                    hm[i] = -INFINITY;
            if (variant == 2 && total > 1)
                for (int64_t j = 0; j < cols; j++)
                    hm[1 * cols + j] = -INFINITY; /* row 1 fully masked */
            tbuf_set(be, &x, hx), tbuf_set(be, &out, NULL), tbuf_set(be, &mask, hm);
            char err[256] = "";
            must(kernels_softmax(be, &x.t, variant ? &mask.t : NULL, &out.t, err, sizeof(err)),
                 "kernels_softmax", err);
            ref_softmax(total, cols, hx, variant ? hm : NULL, mrows, want);
            char shape[128];
            row_shape_name(s, shape, sizeof(shape));
            expect("softmax", shape, tbuf_err(be, &out, want), bound, &worst);
            n_cases++;
            free(hx), free(hm), free(want);
            kernels_free(be, x.t.data), kernels_free(be, out.t.data);
            kernels_free(be, mask.t.data);
        }
    }
    summary("softmax", n_cases, worst, bound);
}

/* Attention: bound 1e-5 (two float GEMMs of length head_dim and seq_len around a softmax).
 * Cases cover one token, odd sizes, padded ld, q/k/v as column blocks of one fused QKV buffer
 * (as the encoder calls it), MiniLM's shape, padding masks of random length, and a sequence
 * whose tokens are all masked (its output must be zeros). */
static void test_attention(kernels_backend_t *be)
{
    static const struct {
        int64_t n_seq, seq_len, heads, head_dim, pad;
        int fused, use_mask;
    } cases[] = {{1, 1, 1, 1, 0, 0, 0},    {2, 5, 2, 3, 1, 0, 1}, {3, 17, 4, 8, 0, 1, 1},
                 {4, 64, 12, 32, 0, 1, 1}, {2, 9, 3, 5, 2, 0, 0}, {3, 33, 2, 16, 0, 0, 1}};
    const double bound = 1e-5;
    double worst = 0.0;
    int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
    for (int c = 0; c < n_cases; c++) {
        int64_t ns = cases[c].n_seq, sl = cases[c].seq_len, nh = cases[c].heads;
        int64_t hd = cases[c].head_dim, w = nh * hd, rows = ns * sl;
        double scale = 1.0 / sqrt((double)hd);
        /* fused: one rows x 3w buffer whose column blocks are q, k and v. */
        tbuf_t qkv = tbuf_make(be, 1, rows, 3 * w, cases[c].pad);
        tbuf_t q = tbuf_make(be, 1, rows, w, cases[c].pad), k = tbuf_make(be, 1, rows, w, 0);
        tbuf_t v = tbuf_make(be, 1, rows, w, cases[c].pad + 1);
        tbuf_t out = tbuf_make(be, 1, rows, w, cases[c].pad);
        tbuf_t scratch = tbuf_make(be, ns * nh, sl, sl, cases[c].pad);
        tbuf_t mask = tbuf_make(be, 1, ns, sl, 0);
        double *hq = rnd_array(rows * w, 2.0), *hk = rnd_array(rows * w, 2.0);
        double *hv = rnd_array(rows * w, 1.0), *hm = rnd_array(ns * sl, 1.0);
        double *hqkv = rnd_array(rows * 3 * w, 1.0), *want = rnd_array(rows * w, 1.0);
        for (int64_t s = 0; s < ns; s++) {
            int64_t len = 1 + (int64_t)(rng_next() % (uint64_t)sl);
            for (int64_t p = 0; p < sl; p++)
                hm[s * sl + p] = p < len && !(s == 1 && ns > 2) ? 1.0 : 0.0;
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < w; j++) {
                hqkv[r * 3 * w + j] = hq[r * w + j];
                hqkv[r * 3 * w + w + j] = hk[r * w + j];
                hqkv[r * 3 * w + 2 * w + j] = hv[r * w + j];
            }
        kernels_tensor_t tq = q.t, tk = k.t, tv = v.t;
        if (cases[c].fused) {
            tbuf_set(be, &qkv, hqkv);
            tq = tk = tv = qkv.t;
            tq.cols = tk.cols = tv.cols = w;
            tk.data += w, tv.data += 2 * w;
        } else {
            tbuf_set(be, &q, hq), tbuf_set(be, &k, hk), tbuf_set(be, &v, hv);
        }
        tbuf_set(be, &mask, hm), tbuf_set(be, &out, NULL), tbuf_set(be, &scratch, NULL);
        const double *ref_mask = cases[c].use_mask ? hm : NULL;
        char err[256] = "";
        must(kernels_attention(be, &tq, &tk, &tv, cases[c].use_mask ? &mask.t : NULL, ns, nh,
                               (float)scale, &scratch.t, &out.t, err, sizeof(err)),
             "kernels_attention", err);
        ref_attention(ns, sl, nh, hd, (double)(float)scale, hq, hk, hv, ref_mask, want);
        char shape[128];
        snprintf(shape, sizeof(shape), "%lld seqs x %lld, %lld heads of %lld%s%s", (long long)ns,
                 (long long)sl, (long long)nh, (long long)hd, cases[c].fused ? " fused" : "",
                 cases[c].use_mask ? " masked" : "");
        expect("attention", shape, tbuf_err(be, &out, want), bound, &worst);
        if (cases[c].use_mask && ns > 2) { /* the fully masked sequence is exactly zero */
            float *h = malloc((size_t)out.n * sizeof(float));
            if (!h)
                abort();
            must(kernels_copy_to_host(be, h, out.t.data, (size_t)out.n, err, sizeof(err)), "copy",
                 err);
            for (int64_t r = sl; r < 2 * sl; r++)
                for (int64_t j = 0; j < w; j++)
                    if (h[r * out.t.ld + j] != 0.0f) {
                        fprintf(stderr, "FAIL attention %s: masked sequence row %lld not zero\n",
                                shape, (long long)r);
                        failures++;
                        r = 2 * sl;
                        break;
                    }
            free(h);
        }
        free(hq), free(hk), free(hv), free(hm), free(hqkv), free(want);
        kernels_free(be, qkv.t.data), kernels_free(be, q.t.data), kernels_free(be, k.t.data);
        kernels_free(be, v.t.data), kernels_free(be, out.t.data);
        kernels_free(be, scratch.t.data), kernels_free(be, mask.t.data);
    }
    summary("attention", n_cases, worst, bound);
}

/* Embedding: bound 1e-6 (two float adds per element). */
static void test_embed(kernels_backend_t *be)
{
    static const struct {
        int64_t n_seq, seq_len, dim, vocab, n_pos, n_type;
        int use_types;
    } cases[] = {{1, 1, 1, 1, 1, 1, 0},
                 {3, 7, 5, 11, 9, 2, 1},
                 {4, 64, 384, 1000, 128, 2, 1},
                 {2, 13, 33, 50, 13, 3, 0}};
    const double bound = 1e-6;
    double worst = 0.0;
    int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
    for (int c = 0; c < n_cases; c++) {
        int64_t ns = cases[c].n_seq, sl = cases[c].seq_len, dim = cases[c].dim;
        int64_t n = ns * sl;
        tbuf_t tok = tbuf_make(be, 1, cases[c].vocab, dim, 0);
        tbuf_t pos = tbuf_make(be, 1, cases[c].n_pos, dim, 0);
        tbuf_t type = tbuf_make(be, 1, cases[c].n_type, dim, 0);
        tbuf_t out = tbuf_make(be, 1, n, dim, 2);
        double *ht = rnd_array(cases[c].vocab * dim, 1.0);
        double *hp = rnd_array(cases[c].n_pos * dim, 1.0);
        double *hy = rnd_array(cases[c].n_type * dim, 1.0);
        double *want = rnd_array(n * dim, 1.0);
        int32_t *ids = malloc((size_t)n * sizeof(int32_t));
        int32_t *types = malloc((size_t)n * sizeof(int32_t));
        if (!ids || !types)
            abort();
        for (int64_t i = 0; i < n; i++) {
            ids[i] = (int32_t)(rng_next() % (uint64_t)cases[c].vocab);
            types[i] = (int32_t)(rng_next() % (uint64_t)cases[c].n_type);
        }
        tbuf_set(be, &tok, ht), tbuf_set(be, &pos, hp), tbuf_set(be, &type, hy);
        tbuf_set(be, &out, NULL);
        const int32_t *ty = cases[c].use_types ? types : NULL;
        char err[256] = "";
        must(kernels_embed(be, ids, ty, ns, sl, &tok.t, &pos.t, &type.t, &out.t, err, sizeof(err)),
             "kernels_embed", err);
        ref_embed(ids, ty, ns, sl, dim, ht, hp, hy, want);
        char shape[128];
        snprintf(shape, sizeof(shape), "%lld seqs x %lld x %lld", (long long)ns, (long long)sl,
                 (long long)dim);
        expect("embed", shape, tbuf_err(be, &out, want), bound, &worst);
        free(ht), free(hp), free(hy), free(want), free(ids), free(types);
        kernels_free(be, tok.t.data), kernels_free(be, pos.t.data);
        kernels_free(be, type.t.data), kernels_free(be, out.t.data);
    }
    summary("embed", n_cases, worst, bound);
}

/* Masked mean pooling: bound 1e-5 (a float sum over up to seq_len rows). Masks are 0/1 with
 * some padding, plus fractional weights, and one sequence entirely masked (zeros). */
static void test_mean_pool(kernels_backend_t *be)
{
    static const struct {
        int64_t n_seq, seq_len, dim, pad;
    } cases[] = {{1, 1, 1, 0}, {3, 7, 5, 1}, {64, 64, 384, 0}, {5, 13, 33, 2}};
    const double bound = 1e-5;
    double worst = 0.0;
    int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
    for (int c = 0; c < n_cases; c++) {
        int64_t ns = cases[c].n_seq, sl = cases[c].seq_len, dim = cases[c].dim;
        tbuf_t x = tbuf_make(be, ns, sl, dim, cases[c].pad);
        tbuf_t mask = tbuf_make(be, 1, ns, sl, 0);
        tbuf_t out = tbuf_make(be, 1, ns, dim, cases[c].pad);
        double *hx = rnd_array(ns * sl * dim, 1.0), *hm = rnd_array(ns * sl, 1.0);
        double *want = rnd_array(ns * dim, 1.0);
        for (int64_t s = 0; s < ns; s++) {
            int64_t len = 1 + (int64_t)(rng_next() % (uint64_t)sl); /* real tokens */
            for (int64_t p = 0; p < sl; p++) {
                double w = p < len ? 1.0 : 0.0;
                if (s == 2 && p < len)
                    w = fabs(hm[s * sl + p]); /* fractional weights */
                if (s == 1 && ns > 2)
                    w = 0.0; /* fully masked sequence */
                hm[s * sl + p] = w;
            }
        }
        tbuf_set(be, &x, hx), tbuf_set(be, &mask, hm), tbuf_set(be, &out, NULL);
        char err[256] = "";
        must(kernels_mean_pool(be, &x.t, &mask.t, &out.t, err, sizeof(err)), "kernels_mean_pool",
             err);
        ref_mean_pool(ns, sl, dim, hx, hm, want);
        char shape[128];
        snprintf(shape, sizeof(shape), "%lld seqs x %lld x %lld", (long long)ns, (long long)sl,
                 (long long)dim);
        expect("mean_pool", shape, tbuf_err(be, &out, want), bound, &worst);
        free(hx), free(hm), free(want);
        kernels_free(be, x.t.data), kernels_free(be, mask.t.data), kernels_free(be, out.t.data);
    }
    summary("mean_pool", n_cases, worst, bound);
}

/* L2 normalisation: bound 1e-6 (norm in double, one multiply per element). One row is made
 * tiny so that eps takes over. */
static void test_l2norm(kernels_backend_t *be)
{
    const double bound = 1e-6;
    double worst = 0.0;
    int n_cases = 0;
    for (int s = 0; s < N_ROW_SHAPES; s++) {
        int64_t batch = row_shapes[s].batch, rows = row_shapes[s].rows;
        int64_t cols = row_shapes[s].cols, total = batch * rows;
        tbuf_t x = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
        tbuf_t out = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
        double *hx = rnd_array(total * cols, 3.0), *want = rnd_array(total * cols, 1.0);
        if (total > 1)
            for (int64_t j = 0; j < cols; j++)
                hx[cols + j] = (double)(float)(hx[cols + j] * 1e-9);
        tbuf_set(be, &x, hx), tbuf_set(be, &out, NULL);
        char err[256] = "";
        must(kernels_l2norm(be, &x.t, 1e-6f, &out.t, err, sizeof(err)), "kernels_l2norm", err);
        ref_l2norm(total, cols, hx, (double)1e-6f, want);
        char shape[128];
        row_shape_name(s, shape, sizeof(shape));
        expect("l2norm", shape, tbuf_err(be, &out, want), bound, &worst);
        n_cases++;
        free(hx), free(want);
        kernels_free(be, x.t.data), kernels_free(be, out.t.data);
    }
    summary("l2norm", n_cases, worst, bound);
}

/* Finite differences on the float64 reference: the analytic gradient grad of loss(ctx) with
 * respect to var[0..n) against central differences (h = 1e-6 * max(1, |v|); truncation error
 * ~h^2, rounding ~1e-16 / h; observed ~5e-8, so 1e-6 relative to the gradient's scale is safe, and
 * a wrong gradient is off by O(1)). */
typedef double (*loss_fn_t)(void *ctx);

static double fd_err(void *ctx, loss_fn_t loss, double *var, int64_t n, const double *grad)
{
    double maxdiff = 0.0, maxg = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double keep = var[i], h = 1e-6 * (fabs(keep) > 1.0 ? fabs(keep) : 1.0);
        var[i] = keep + h;
        double up = loss(ctx);
        var[i] = keep - h;
        double down = loss(ctx);
        var[i] = keep;
        double fd = (up - down) / (2.0 * h), d = fabs(fd - grad[i]);
        maxdiff = d > maxdiff ? d : maxdiff;
        maxg = fabs(grad[i]) > maxg ? fabs(grad[i]) : maxg;
    }
    return maxdiff / (maxg > 0.0 ? maxg : 1.0);
}

#define FD_BOUND 1e-6

typedef struct loss_ctx {
    int64_t rows, cols;
    double *z, *y;
    int32_t *labels;
    double *x, *w, *b, *r; /* dense: y = x w + b, loss = sum(r * y) */
    int64_t in;
} loss_ctx_t;

static double bce_loss(void *ctx)
{
    loss_ctx_t *c = ctx;
    return ref_bce_logits(c->rows * c->cols, c->z, c->y, NULL);
}

static double xent_loss(void *ctx)
{
    loss_ctx_t *c = ctx;
    return ref_softmax_xent(c->rows, c->cols, c->z, c->labels, NULL);
}

/* Compares a host loss value: |got - want| / max(|want|, 1e-30). */
static double loss_err(float got, double want)
{
    if (!isfinite(got))
        return INFINITY;
    return fabs((double)got - want) / (fabs(want) > 1e-30 ? fabs(want) : 1e-30);
}

/* BCE with logits: loss bound 1e-6 (sum in double, per-element float terms), dz bound 2e-6
 * (one expf per element). Logits span [-12, 12] to reach saturation; targets are soft labels
 * in [0, 1] with some exact 0 and 1. dz is also computed in place (dz == z). */
static void test_bce(kernels_backend_t *be)
{
    static const struct {
        int64_t batch, rows, cols, pad;
    } cases[] = {{1, 1, 1, 0}, {1, 64, 1, 0}, {1, 7, 5, 2}, {3, 11, 4, 1}};
    const double bound_loss = 1e-6, bound_dz = 2e-6;
    double worst = 0.0, worst_fd = 0.0;
    int n_cases = 0;
    for (int c = 0; c < (int)(sizeof(cases) / sizeof(cases[0])); c++) {
        for (int in_place = 0; in_place < 2; in_place++) {
            int64_t total = cases[c].batch * cases[c].rows, n = total * cases[c].cols;
            tbuf_t z = tbuf_make(be, cases[c].batch, cases[c].rows, cases[c].cols, cases[c].pad);
            tbuf_t y = tbuf_make(be, cases[c].batch, cases[c].rows, cases[c].cols, cases[c].pad);
            tbuf_t dz = tbuf_make(be, cases[c].batch, cases[c].rows, cases[c].cols, cases[c].pad);
            double *hz = rnd_array(n, 12.0), *hy = rnd_array(n, 1.0), *want = rnd_array(n, 1.0);
            for (int64_t i = 0; i < n; i++)
                hy[i] = i % 3 == 0 ? (double)(i % 2) : fabs(hy[i]);
            tbuf_set(be, &z, hz), tbuf_set(be, &y, hy), tbuf_set(be, &dz, NULL);
            tbuf_t *dst = in_place ? &z : &dz;
            float loss = NAN;
            char err[256] = "";
            must(kernels_bce_logits(be, &z.t, &y.t, &loss, &dst->t, err, sizeof(err)),
                 "kernels_bce_logits", err);
            double want_loss = ref_bce_logits(n, hz, hy, want);
            char shape[128];
            snprintf(shape, sizeof(shape), "%lld x %lld%s", (long long)total,
                     (long long)cases[c].cols, in_place ? " in place" : "");
            double e = loss_err(loss, want_loss);
            expect("bce_logits loss", shape, e, bound_loss, &worst);
            expect("bce_logits dz", shape, tbuf_err(be, dst, want), bound_dz, &worst);
            loss_ctx_t ctx = {.rows = total, .cols = cases[c].cols, .z = hz, .y = hy};
            expect("bce_logits fd", shape, fd_err(&ctx, bce_loss, hz, n, want), FD_BOUND,
                   &worst_fd);
            n_cases++;
            free(hz), free(hy), free(want);
            kernels_free(be, z.t.data), kernels_free(be, y.t.data), kernels_free(be, dz.t.data);
        }
    }
    summary("bce_logits", n_cases, worst, bound_dz);
    summary("bce_logits fd(ref)", n_cases, worst_fd, FD_BOUND);
}

/* Softmax cross-entropy: loss bound 1e-6, dz bound 2e-6 (as softmax), dz's error measured
 * against 1 / R, the scale of its terms (probabilities over R rows): a confident row's p - 1 is
 * far smaller than the rounding of p itself, and max |dz| of a one-row, two-class case can be
 * 1e-3 or less, which would make float rounding look like a 1e-4 error. */
static void test_softmax_xent(kernels_backend_t *be)
{
    static const struct {
        int64_t batch, rows, cols, pad;
    } cases[] = {{1, 1, 2, 0}, {1, 7, 3, 1}, {2, 32, 10, 0}, {1, 64, 1000, 3}};
    const double bound_loss = 1e-6, bound_dz = 2e-6;
    double worst = 0.0, worst_fd = 0.0;
    int n_cases = 0;
    for (int c = 0; c < (int)(sizeof(cases) / sizeof(cases[0])); c++) {
        for (int in_place = 0; in_place < 2; in_place++) {
            int64_t total = cases[c].batch * cases[c].rows, cols = cases[c].cols;
            int64_t n = total * cols;
            tbuf_t z = tbuf_make(be, cases[c].batch, cases[c].rows, cols, cases[c].pad);
            tbuf_t dz = tbuf_make(be, cases[c].batch, cases[c].rows, cols, cases[c].pad);
            double *hz = rnd_array(n, 6.0), *want = rnd_array(n, 1.0);
            int32_t *labels = malloc((size_t)total * sizeof(int32_t));
            if (!labels)
                abort();
            for (int64_t r = 0; r < total; r++)
                labels[r] = (int32_t)(rng_next() % (uint64_t)cols);
            tbuf_set(be, &z, hz), tbuf_set(be, &dz, NULL);
            tbuf_t *dst = in_place ? &z : &dz;
            float loss = NAN;
            char err[256] = "";
            must(kernels_softmax_xent(be, &z.t, labels, &loss, &dst->t, err, sizeof(err)),
                 "kernels_softmax_xent", err);
            double want_loss = ref_softmax_xent(total, cols, hz, labels, want);
            char shape[128];
            snprintf(shape, sizeof(shape), "%lld x %lld%s", (long long)total, (long long)cols,
                     in_place ? " in place" : "");
            expect("softmax_xent loss", shape, loss_err(loss, want_loss), bound_loss, &worst);
            expect("softmax_xent dz", shape, tbuf_err_scaled(be, dst, want, 1.0 / (double)total),
                   bound_dz, &worst);
            if (n <= 4096) { /* the FD check is O(n^2) in the reference */
                loss_ctx_t ctx = {.rows = total, .cols = cols, .z = hz, .labels = labels};
                expect("softmax_xent fd", shape, fd_err(&ctx, xent_loss, hz, n, want), FD_BOUND,
                       &worst_fd);
            }
            n_cases++;
            free(hz), free(want), free(labels);
            kernels_free(be, z.t.data), kernels_free(be, dz.t.data);
        }
    }
    summary("softmax_xent", n_cases, worst, bound_dz);
    summary("softmax_xent fd(ref)", n_cases, worst_fd, FD_BOUND);
}

static double dense_loss(void *ctx)
{
    loss_ctx_t *c = ctx;
    double *y = malloc((size_t)(c->rows * c->cols) * sizeof(double));
    if (!y)
        abort();
    ref_dense_forward(c->rows, c->in, c->cols, c->x, c->w, c->b, y);
    double s = 0.0;
    for (int64_t i = 0; i < c->rows * c->cols; i++)
        s += c->r[i] * y[i];
    free(y);
    return s;
}

/* Dense backward: bound 1e-5 (as GEMM; db sums in double). The reference gradients are checked
 * by finite differences of loss = sum(dy * (x w + b)), whose gradient is exactly (dx, dw, db). */
static void test_dense_backward(kernels_backend_t *be)
{
    static const struct {
        int64_t n, in, out, pad;
    } cases[] = {{1, 1, 1, 0}, {7, 5, 3, 1}, {64, 128, 256, 0}, {64, 256, 1, 0}, {33, 17, 300, 2}};
    const double bound = 1e-5;
    double worst = 0.0, worst_fd = 0.0;
    int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
    for (int c = 0; c < n_cases; c++) {
        int64_t n = cases[c].n, in = cases[c].in, out = cases[c].out, pad = cases[c].pad;
        tbuf_t x = tbuf_make(be, 1, n, in, pad), w = tbuf_make(be, 1, in, out, pad);
        tbuf_t dy = tbuf_make(be, 1, n, out, pad), dx = tbuf_make(be, 1, n, in, pad);
        tbuf_t dw = tbuf_make(be, 1, in, out, pad), db = tbuf_make(be, 1, 1, out, pad);
        double *hx = rnd_array(n * in, 1.0), *hw = rnd_array(in * out, 1.0);
        double *hb = rnd_array(out, 1.0), *hdy = rnd_array(n * out, 1.0);
        double *wdx = rnd_array(n * in, 1.0), *wdw = rnd_array(in * out, 1.0);
        double *wdb = rnd_array(out, 1.0);
        tbuf_set(be, &x, hx), tbuf_set(be, &w, hw), tbuf_set(be, &dy, hdy);
        tbuf_set(be, &dx, NULL), tbuf_set(be, &dw, NULL), tbuf_set(be, &db, NULL);
        char err[256] = "";
        must(kernels_dense_backward(be, &x.t, &w.t, &dy.t, &dx.t, &dw.t, &db.t, err, sizeof(err)),
             "kernels_dense_backward", err);
        ref_dense_backward(n, in, out, hx, hw, hdy, wdx, wdw, wdb);
        char shape[128];
        snprintf(shape, sizeof(shape), "%lldx%lld->%lld", (long long)n, (long long)in,
                 (long long)out);
        expect("dense_backward dx", shape, tbuf_err(be, &dx, wdx), bound, &worst);
        expect("dense_backward dw", shape, tbuf_err(be, &dw, wdw), bound, &worst);
        expect("dense_backward db", shape, tbuf_err(be, &db, wdb), bound, &worst);
        if (n * in * out <= 20000) { /* FD costs a forward pass per variable */
            loss_ctx_t ctx = {
                .rows = n, .cols = out, .in = in, .x = hx, .w = hw, .b = hb, .r = hdy};
            expect("dense fd dx", shape, fd_err(&ctx, dense_loss, hx, n * in, wdx), FD_BOUND,
                   &worst_fd);
            expect("dense fd dw", shape, fd_err(&ctx, dense_loss, hw, in * out, wdw), FD_BOUND,
                   &worst_fd);
            expect("dense fd db", shape, fd_err(&ctx, dense_loss, hb, out, wdb), FD_BOUND,
                   &worst_fd);
        }
        free(hx), free(hw), free(hb), free(hdy), free(wdx), free(wdw), free(wdb);
        kernels_free(be, x.t.data), kernels_free(be, w.t.data), kernels_free(be, dy.t.data);
        kernels_free(be, dx.t.data), kernels_free(be, dw.t.data), kernels_free(be, db.t.data);
    }
    summary("dense_backward", n_cases, worst, bound);
    summary("dense_backward fd", n_cases, worst_fd, FD_BOUND);
}

static double relu_loss(void *ctx)
{
    loss_ctx_t *c = ctx;
    double s = 0.0;
    for (int64_t i = 0; i < c->rows * c->cols; i++)
        s += c->r[i] * (c->x[i] > 0.0 ? c->x[i] : 0.0);
    return s;
}

/* ReLU backward: exact (bound 0), a select. y has exact zeros (no gradient there) and dy holds
 * NaN at some places where y <= 0, which must not leak through; dx is also computed in place
 * (dx == dy). The reference gradient is checked by finite differences of loss = sum(dy *
 * relu(x)) at inputs without the zeros (a kink there). */
static void test_relu_backward(kernels_backend_t *be)
{
    double worst = 0.0, worst_fd = 0.0;
    int n_cases = 0;
    for (int s = 0; s < N_ROW_SHAPES; s++) {
        for (int in_place = 0; in_place < 2; in_place++) {
            int64_t batch = row_shapes[s].batch, rows = row_shapes[s].rows;
            int64_t cols = row_shapes[s].cols, total = batch * rows, n = total * cols;
            tbuf_t y = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
            tbuf_t dy = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
            tbuf_t dx = tbuf_make(be, batch, rows, cols, row_shapes[s].pad);
            double *hy = rnd_array(n, 1.0), *hdy = rnd_array(n, 1.0), *want = rnd_array(n, 1.0);
            for (int64_t i = 0; i < n; i++) {
                if (i % 4 == 1)
                    hy[i] = 0.0;
                if (i % 7 == 2 && hy[i] <= 0.0)
                    hdy[i] = NAN;
            }
            tbuf_set(be, &y, hy), tbuf_set(be, &dy, hdy), tbuf_set(be, &dx, NULL);
            tbuf_t *dst = in_place ? &dy : &dx;
            char err[256] = "";
            must(kernels_relu_backward(be, &y.t, &dy.t, &dst->t, err, sizeof(err)),
                 "kernels_relu_backward", err);
            ref_relu_backward(n, hy, hdy, want);
            char shape[128];
            row_shape_name(s, shape, sizeof(shape));
            if (in_place)
                strncat(shape, " in place", sizeof(shape) - strlen(shape) - 1);
            expect("relu_backward", shape, tbuf_err(be, dst, want), 0.0, &worst);
            if (!in_place && n <= 4096) {
                double *hx = rnd_array(n, 1.0), *r = rnd_array(n, 1.0), *g = rnd_array(n, 1.0);
                ref_relu_backward(n, hx, r, g);
                loss_ctx_t ctx = {.rows = total, .cols = cols, .x = hx, .r = r};
                expect("relu_backward fd", shape, fd_err(&ctx, relu_loss, hx, n, g), FD_BOUND,
                       &worst_fd);
                free(hx), free(r), free(g);
            }
            n_cases++;
            free(hy), free(hdy), free(want);
            kernels_free(be, y.t.data), kernels_free(be, dy.t.data), kernels_free(be, dx.t.data);
        }
    }
    summary("relu_backward", n_cases, worst, 0.0);
    summary("relu_backward fd(ref)", n_cases, worst_fd, FD_BOUND);
}

/* AdamW: three steps from m = v = 0, with and without weight decay. m, v and param are compared
 * after every step (bound 1e-6, a handful of float operations per element); the step itself
 * (param after - param before) is compared too, bound 1e-5, because with lr small the update
 * would hide under the parameter's own scale. */
static void test_adamw(kernels_backend_t *be)
{
    const double bound = 1e-6, bound_step = 1e-5;
    double worst = 0.0;
    int n_cases = 0;
    for (int wdc = 0; wdc < 2; wdc++) {
        int64_t batch = 2, rows = 5, cols = 37, n = batch * rows * cols;
        kernels_adam_t opt = {0.05f, 0.9f, 0.999f, 1e-8f, wdc ? 0.01f : 0.0f, 0};
        tbuf_t p = tbuf_make(be, batch, rows, cols, 1), g = tbuf_make(be, batch, rows, cols, 1);
        tbuf_t m = tbuf_make(be, batch, rows, cols, 1), v = tbuf_make(be, batch, rows, cols, 1);
        double *hp = rnd_array(n, 1.0), *hm = calloc((size_t)n, sizeof(double));
        double *hv = calloc((size_t)n, sizeof(double)), *before = malloc((size_t)n * 8);
        double *step_want = malloc((size_t)n * 8), *step_got = malloc((size_t)n * 8);
        float *host = malloc((size_t)p.n * sizeof(float));
        if (!hm || !hv || !before || !step_want || !step_got || !host)
            abort();
        tbuf_set(be, &p, hp), tbuf_set(be, &m, hm), tbuf_set(be, &v, hv);
        for (int s = 1; s <= 3; s++) {
            double *hg = rnd_array(n, 0.5);
            tbuf_set(be, &g, hg);
            memcpy(before, hp, (size_t)n * sizeof(double));
            /* Float parameters before the step, as the backend holds them. */
            char err[256] = "";
            must(kernels_copy_to_host(be, host, p.t.data, (size_t)p.n, err, sizeof(err)), "copy",
                 err);
            opt.step = s;
            must(kernels_adamw(be, &opt, &p.t, &g.t, &m.t, &v.t, err, sizeof(err)), "kernels_adamw",
                 err);
            float *after = malloc((size_t)p.n * sizeof(float));
            if (!after)
                abort();
            must(kernels_copy_to_host(be, after, p.t.data, (size_t)p.n, err, sizeof(err)), "copy",
                 err);
            ref_adamw(n, &opt, hp, hg, hm, hv);
            for (int64_t i = 0; i < n; i++) {
                int64_t r = i / cols, at = (r / rows) * p.t.stride + (r % rows) * p.t.ld + i % cols;
                step_got[i] = (double)after[at] - (double)host[at];
                step_want[i] = hp[i] - before[i];
            }
            double dmax = 0.0, wmax = 0.0;
            for (int64_t i = 0; i < n; i++) {
                double d = fabs(step_got[i] - step_want[i]);
                dmax = d > dmax || !isfinite(d) ? d : dmax;
                wmax = fabs(step_want[i]) > wmax ? fabs(step_want[i]) : wmax;
            }
            char shape[64];
            snprintf(shape, sizeof(shape), "step %d wd %g", s, (double)opt.weight_decay);
            expect("adamw param", shape, tbuf_err(be, &p, hp), bound, &worst);
            expect("adamw m", shape, tbuf_err(be, &m, hm), bound, &worst);
            expect("adamw v", shape, tbuf_err(be, &v, hv), bound, &worst);
            double se = dmax / wmax;
            if (!(se <= bound_step)) {
                fprintf(stderr, "FAIL adamw step %s: error %.3g > bound %.1g\n", shape, se,
                        bound_step);
                failures++;
            }
            n_cases++;
            free(after), free(hg);
        }
        free(hp), free(hm), free(hv), free(before), free(step_want), free(step_got), free(host);
        kernels_free(be, p.t.data), kernels_free(be, g.t.data), kernels_free(be, m.t.data);
        kernels_free(be, v.t.data);
    }
    summary("adamw", n_cases, worst, bound);
}

/* Argument checking: mismatched shapes and bad names are refused with a message, and the
 * output is left alone. */
static void test_errors(kernels_backend_t *be)
{
    char err[256];
    int n = 0, ok = 0;
    err[0] = 0;
    n++, ok += kernels_backend_new("tpu", 1, err, sizeof(err)) == NULL && err[0];
    tbuf_t a = tbuf_make(be, 1, 4, 3, 0), b = tbuf_make(be, 1, 4, 5, 0);
    tbuf_t c = tbuf_make(be, 1, 4, 5, 0);
    double *v = rnd_array(20, 1.0);
    tbuf_set(be, &a, v), tbuf_set(be, &b, v), tbuf_set(be, &c, v);
    err[0] = 0;
    n++, ok += kernels_gemm(be, 0, 0, 1.0f, &a.t, &b.t, 0.0f, &c.t, err, sizeof(err)) < 0 &&
               strstr(err, "kernels_gemm") != NULL;
    n++, ok += tbuf_err(be, &c, v) == 0.0; /* untouched */
    err[0] = 0;
    n++, ok +=
         kernels_bias_act(be, &a.t, NULL, KERNELS_ACT_RELU, &c.t, err, sizeof(err)) < 0 && err[0];
    err[0] = 0;
    n++, ok += kernels_layernorm(be, &c.t, &a.t, &a.t, 1e-5f, &c.t, err, sizeof(err)) < 0 && err[0];
    int32_t ids[4] = {0, 1, 9, 2}; /* 9 is past the 4-row table */
    err[0] = 0;
    n++, ok += kernels_embed(be, ids, NULL, 1, 4, &c.t, &c.t, &c.t, &b.t, err, sizeof(err)) < 0 &&
               strstr(err, "out of range") != NULL;
    err[0] = 0;
    n++, ok += kernels_relu_backward(be, &a.t, &b.t, &c.t, err, sizeof(err)) < 0 &&
               strstr(err, "kernels_relu_backward") != NULL;
    n++, ok += tbuf_err(be, &c, v) == 0.0; /* untouched */
    kernels_tensor_t bad = c.t;
    bad.ld = 2;
    err[0] = 0;
    n++, ok += kernels_l2norm(be, &bad, 1e-6f, &c.t, err, sizeof(err)) < 0 && err[0];
    free(v);
    kernels_free(be, a.t.data), kernels_free(be, b.t.data), kernels_free(be, c.t.data);
    if (ok != n) {
        fprintf(stderr, "FAIL errors: %d of %d checks passed\n", ok, n);
        failures++;
    }
    printf("%-20s %3d cases  %s\n", "errors", n, ok == n ? "ok" : "FAILED");
}

/* Copies: a round trip of 5,000,003 floats (20 MB: several chunks of a staging buffer, and an odd
 * tail) must come back bit for bit. */
static void test_copies(kernels_backend_t *be)
{
    const size_t n = 5000003;
    char err[256] = "";
    float *h = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    float *d = kernels_alloc(be, n, err, sizeof(err));
    if (!h || !back || !d) {
        fprintf(stderr, "FAIL copies: %s\n", d ? "out of memory" : err);
        failures++;
        free(h), free(back), kernels_free(be, d);
        return;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = (float)rnd(1e6), back[i] = NAN;
    must(kernels_copy_to_backend(be, d, h, n, err, sizeof(err)), "copy_to_backend", err);
    must(kernels_copy_to_host(be, back, d, n, err, sizeof(err)), "copy_to_host", err);
    int ok = memcmp(h, back, n * sizeof(float)) == 0;
    /* A view past 2^31 - 1 rows is refused before any backend sees it. */
    kernels_tensor_t huge = kernels_tensor_3d(d, 3, 1000000000, 1);
    ok = ok && kernels_l2norm(be, &huge, 1e-6f, &huge, err, sizeof(err)) < 0 &&
         strstr(err, "2^31") != NULL;
    if (!ok) {
        fprintf(stderr, "FAIL copies\n");
        failures++;
    }
    printf("%-20s %3d cases  %s\n", "copies", 2, ok ? "ok" : "FAILED");
    free(h), free(back), kernels_free(be, d);
}

/* Backend choice: "auto" names the backend it took and says why. */
static void test_choice(void)
{
    char err[256];
    kernels_backend_t *be = kernels_backend_new("auto", 1, err, sizeof(err));
    int ok = be != NULL && strlen(kernels_backend_reason(be)) > 0 &&
             strncmp(kernels_backend_reason(be), kernels_backend_name(be),
                     strlen(kernels_backend_name(be))) == 0;
    if (be)
        printf("auto: %s\n", kernels_backend_reason(be));
    kernels_backend_free(be);
    /* Asking for a backend this process cannot have fails with the reason. */
    char why[256] = "";
    if (!kernels_backend_available("cuda", why, sizeof(why))) {
        err[0] = 0;
        kernels_backend_t *none = kernels_backend_new("cuda", 1, err, sizeof(err));
        ok = ok && none == NULL && strstr(err, "cuda") != NULL;
        kernels_backend_free(none);
    }
    ok = ok && !kernels_backend_available("cuda:x", why, sizeof(why));
    if (!ok) {
        fprintf(stderr, "FAIL backend choice\n");
        failures++;
    }
    printf("%-20s %3d cases  %s\n", "backend choice", 3, ok ? "ok" : "FAILED");
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "cpu";
    char err[256], why[256];
    if (!kernels_backend_available(name, why, sizeof(why))) {
        printf("SKIP backend %s: %s\n", name, why);
        return 77;
    }
    kernels_backend_t *be = kernels_backend_new(name, 2, err, sizeof(err));
    if (!be) {
        fprintf(stderr, "FAIL backend: %s\n", err);
        return 1;
    }
    printf("backend %s (%s)\n", kernels_backend_name(be), kernels_backend_reason(be));
    test_gemm(be);
    test_bias_act(be);
    test_layernorm(be);
    test_softmax(be);
    test_attention(be);
    test_embed(be);
    test_mean_pool(be);
    test_l2norm(be);
    test_bce(be);
    test_softmax_xent(be);
    test_dense_backward(be);
    test_relu_backward(be);
    test_adamw(be);
    test_errors(be);
    test_copies(be);
    test_choice();
    kernels_backend_free(be);
    if (failures) {
        printf("%d FAILURES\n", failures);
        return 1;
    }
    printf("all passed\n");
    return 0;
}
