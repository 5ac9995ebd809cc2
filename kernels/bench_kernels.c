/* Benchmark of the kernels on the shapes vigil runs: the dense layers of the batch-64 MLP scorer
 * and one MiniLM encoder layer at batch 64 x 64 tokens (4096 rows, hidden 384, FFN 1536, 12
 * heads of 32), plus the row-wise ops on those shapes.
 *
 * Each op is compared with the machine's measured ceiling rather than a datasheet: GEMMs with
 * the best sgemm rate of a 2048^3 product, memory-bound ops with the best rate of a large copy
 * (bytes read + written). Usage: bench_kernels [threads [backend]] (default 1 thread, backend
 * "auto"; "cpu" or "cuda" to pick). Lines to parse:
 *   BENCH kernels_<backend>_t<threads>_<op>_<size> <value> <unit>
 * one with the rate (GFLOP/s or GB/s), one (_us) with the time per call, one (_ratio) with the
 * rate over the ceiling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef int (*bench_fn_t)(kernels_backend_t *be, void *arg, char *err, size_t errlen);

/* Runs reps calls and a sync; the seconds they took, or -1 (with the error printed) when a call
 * fails. A CUDA backend queues ops and returns: the sync makes this time the device's work, not
 * the queueing. */
static double time_reps(kernels_backend_t *be, bench_fn_t fn, void *arg, long reps)
{
    char err[256];
    double t0 = now_s();
    for (long i = 0; i < reps; i++)
        if (fn(be, arg, err, sizeof(err)) < 0) {
            fprintf(stderr, "bench: %s\n", err);
            return -1.0;
        }
    if (kernels_sync(be, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1.0;
    }
    return now_s() - t0;
}

/* Seconds per call: calls are repeated until a round takes 0.1 s, and the best of 5 rounds is
 * kept (the least disturbed by the rest of the machine). -1 when the op fails. */
static double time_op(kernels_backend_t *be, bench_fn_t fn, void *arg)
{
    if (time_reps(be, fn, arg, 1) < 0) /* warm-up, and a check that it runs at all */
        return -1.0;
    long reps = 1;
    for (;;) {
        double t = time_reps(be, fn, arg, reps);
        if (t < 0)
            return -1.0;
        if (t >= 0.1 || reps >= (1L << 24))
            break;
        reps *= 2;
    }
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double t = time_reps(be, fn, arg, reps);
        if (t < 0)
            return -1.0;
        best = t / (double)reps < best ? t / (double)reps : best;
    }
    return best;
}

static float *alloc_fill(kernels_backend_t *be, size_t n)
{
    char err[256];
    float *p = kernels_alloc(be, n, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "bench: %s\n", err);
        return NULL;
    }
    float *h = malloc(n * sizeof(float));
    if (!h) {
        kernels_free(be, p);
        return NULL;
    }
    /* Non-zero, non-denormal values: zeros or denormals could take faster or slower paths. */
    for (size_t i = 0; i < n; i++)
        h[i] = 0.5f + (float)(i % 97) / 97.0f;
    kernels_copy_to_backend(be, p, h, n, err, sizeof(err));
    free(h);
    return p;
}

typedef struct gemm_arg {
    kernels_tensor_t a, b, c;
    int ta, tb;
} gemm_arg_t;

static int run_gemm(kernels_backend_t *be, void *arg, char *err, size_t errlen)
{
    gemm_arg_t *g = arg;
    return kernels_gemm(be, g->ta, g->tb, 1.0f, &g->a, &g->b, 0.0f, &g->c, err, errlen);
}

typedef struct row_arg {
    kernels_tensor_t x, p1, p2, out;
    kernels_act_t act;
    int op; /* 0 bias_act, 1 layernorm, 2 softmax, 3 l2norm, 4 mean_pool, 5 copy, 6 row copy */
} row_arg_t;

static int run_row(kernels_backend_t *be, void *arg, char *err, size_t errlen)
{
    row_arg_t *r = arg;
    switch (r->op) {
    case 0:
        return kernels_bias_act(be, &r->x, &r->p1, r->act, &r->out, err, errlen);
    case 1:
        return kernels_layernorm(be, &r->x, &r->p1, &r->p2, 1e-12f, &r->out, err, errlen);
    case 2:
        return kernels_softmax(be, &r->x, NULL, &r->out, err, errlen);
    case 3:
        return kernels_l2norm(be, &r->x, 1e-12f, &r->out, err, errlen);
    case 4:
        return kernels_mean_pool(be, &r->x, &r->p1, &r->out, err, errlen);
    case 6:
        return kernels_bias_act(be, &r->x, NULL, KERNELS_ACT_NONE, &r->out, err, errlen);
    default:
        return kernels_copy_to_backend(be, r->out.data, r->x.data,
                                       (size_t)(r->x.batch * r->x.rows * r->x.cols), err, errlen);
    }
}

/* "cpu_t2", "cuda_t1": backend and CPU threads, so that runs can share one BENCH stream. */
static char prefix[32];

static void report(const char *name, double t, double rate, const char *unit, double ceiling)
{
    printf("BENCH kernels_%s_%s %.2f %s\n", prefix, name, rate, unit);
    printf("BENCH kernels_%s_%s_us %.2f us\n", prefix, name, t * 1e6);
    printf("BENCH kernels_%s_%s_ratio %.3f of_ceiling\n", prefix, name, rate / ceiling);
}

/* Times C (m x n) = op(A) op(B) over batch products; returns GFLOP/s (0 on failure). */
static double bench_gemm(kernels_backend_t *be, const char *name, int64_t batch, int64_t m,
                         int64_t n, int64_t k, int tb, double peak)
{
    gemm_arg_t g;
    float *a = alloc_fill(be, (size_t)(batch * m * k)),
          *b = alloc_fill(be, (size_t)(batch * k * n));
    float *c = alloc_fill(be, (size_t)(batch * m * n));
    double rate = 0.0;
    if (a && b && c) {
        g.a = kernels_tensor_3d(a, batch, m, k);
        g.b = tb ? kernels_tensor_3d(b, batch, n, k) : kernels_tensor_3d(b, batch, k, n);
        g.c = kernels_tensor_3d(c, batch, m, n);
        g.ta = 0, g.tb = tb;
        double t = time_op(be, run_gemm, &g);
        if (t > 0) {
            rate = 2.0 * (double)(batch * m * n * k) / t * 1e-9;
            if (peak > 0)
                report(name, t, rate, "GFLOP/s", peak);
        }
    }
    kernels_free(be, a), kernels_free(be, b), kernels_free(be, c);
    return rate;
}

typedef struct attn_arg {
    kernels_tensor_t q, k, v, mask, scratch, out;
    int64_t n_seq, heads;
} attn_arg_t;

static int run_attention(kernels_backend_t *be, void *arg, char *err, size_t errlen)
{
    attn_arg_t *t = arg;
    return kernels_attention(be, &t->q, &t->k, &t->v, &t->mask, t->n_seq, t->heads, 0.17677669f,
                             &t->scratch, &t->out, err, errlen);
}

/* Times attention over n_seq sequences of seq_len tokens, heads of head_dim, q/k/v as column
 * blocks of one fused QKV buffer as the encoder lays them out. Rate in GFLOP/s of its two GEMMs. */
static void bench_attention(kernels_backend_t *be, const char *name, int64_t n_seq, int64_t seq_len,
                            int64_t heads, int64_t head_dim, double peak)
{
    int64_t rows = n_seq * seq_len, w = heads * head_dim;
    float *qkv = alloc_fill(be, (size_t)(rows * 3 * w)), *out = alloc_fill(be, (size_t)(rows * w));
    float *scratch = alloc_fill(be, (size_t)(n_seq * heads * seq_len * seq_len));
    float *mask = alloc_fill(be, (size_t)rows); /* all non-zero: every key counts */
    if (qkv && out && scratch && mask) {
        attn_arg_t t;
        t.q = kernels_tensor_2d(qkv, rows, w);
        t.q.ld = 3 * w;
        t.k = t.q, t.v = t.q;
        t.k.data += w, t.v.data += 2 * w;
        t.out = kernels_tensor_2d(out, rows, w);
        t.scratch = kernels_tensor_3d(scratch, n_seq * heads, seq_len, seq_len);
        t.mask = kernels_tensor_2d(mask, n_seq, seq_len);
        t.n_seq = n_seq, t.heads = heads;
        double sec = time_op(be, run_attention, &t);
        if (sec > 0) {
            double flops = 4.0 * (double)(n_seq * heads * seq_len * seq_len * head_dim);
            report(name, sec, flops / sec * 1e-9, "GFLOP/s", peak);
        }
    }
    kernels_free(be, qkv), kernels_free(be, out), kernels_free(be, scratch);
    kernels_free(be, mask);
}

/* Times a row-wise op; bytes is what one call must move (read + write). Returns GB/s. */
static double bench_row(kernels_backend_t *be, const char *name, int op, kernels_act_t act,
                        int64_t batch, int64_t rows, int64_t cols, double bw)
{
    row_arg_t r;
    memset(&r, 0, sizeof(r));
    int64_t n = batch * rows * cols;
    int64_t out_rows = op == 4 ? batch : batch * rows;
    int64_t p_cols = op == 4 ? rows : cols, p_rows = op == 4 ? batch : 1;
    float *x = alloc_fill(be, (size_t)n), *out = alloc_fill(be, (size_t)(out_rows * cols));
    float *p1 = alloc_fill(be, (size_t)(p_rows * p_cols)), *p2 = alloc_fill(be, (size_t)p_cols);
    double rate = 0.0;
    if (x && out && p1 && p2) {
        r.x = kernels_tensor_3d(x, batch, rows, cols);
        r.out = op == 4 ? kernels_tensor_2d(out, batch, cols)
                        : kernels_tensor_3d(out, batch, rows, cols);
        r.p1 = kernels_tensor_2d(p1, p_rows, p_cols);
        r.p2 = kernels_tensor_2d(p2, 1, p_cols);
        r.act = act, r.op = op;
        double t = time_op(be, run_row, &r);
        double bytes = 4.0 * (double)(n + out_rows * cols);
        if (t > 0) {
            rate = bytes / t * 1e-9;
            if (bw > 0)
                report(name, t, rate, "GB/s", bw);
        }
    }
    kernels_free(be, x), kernels_free(be, out), kernels_free(be, p1), kernels_free(be, p2);
    return rate;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    const char *name = argc > 2 ? argv[2] : "auto";
    char err[256];
    kernels_backend_t *be = kernels_backend_new(name, threads > 0 ? threads : 1, err, sizeof(err));
    if (!be) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    snprintf(prefix, sizeof(prefix), "%s_t%d", kernels_backend_name(be), threads);
    printf("# backend %s (%s), %d CPU thread(s)\n", kernels_backend_name(be),
           kernels_backend_reason(be), threads);

    /* Ceilings. */
    double peak = bench_gemm(be, "peak", 1, 2048, 2048, 2048, 0, 0.0);
    /* The copy ceiling: the better of one memmove and the backend's own row-parallel copy
     * (bias_act with no bias and no activation), which uses every thread it was given. */
    double bw = bench_row(be, "copy", 5, KERNELS_ACT_NONE, 1, 8192, 8192, 0.0); /* 256 MiB */
    double bw_rows = bench_row(be, "copy_rows", 6, KERNELS_ACT_NONE, 1, 8192, 8192, 0.0);
    bw = bw_rows > bw ? bw_rows : bw;
    printf("BENCH kernels_%s_ceiling_sgemm_2048 %.2f GFLOP/s\n", prefix, peak);
    printf("BENCH kernels_%s_ceiling_copy_256MiB %.2f GB/s\n", prefix, bw);
    if (peak <= 0 || bw <= 0) {
        kernels_backend_free(be);
        return 1;
    }

    /* MLP scorer, batch 64. */
    bench_gemm(be, "gemm_64x128x256", 1, 64, 256, 128, 0, peak);
    bench_gemm(be, "gemm_64x256x1", 1, 64, 1, 256, 0, peak);
    bench_row(be, "bias_relu_64x256", 0, KERNELS_ACT_RELU, 1, 64, 256, bw);
    /* MiniLM layer, 4096 rows: QKV, attention scores (768 heads x 64 x 64, k 32), FFN. */
    bench_gemm(be, "gemm_4096x384x1152", 1, 4096, 1152, 384, 0, peak);
    bench_gemm(be, "gemm_768x64x64x32_qkT", 768, 64, 64, 32, 1, peak);
    bench_attention(be, "attention_64x64_12x32", 64, 64, 12, 32, peak);
    bench_gemm(be, "gemm_4096x384x1536", 1, 4096, 1536, 384, 0, peak);
    bench_gemm(be, "gemm_4096x1536x384", 1, 4096, 384, 1536, 0, peak);
    bench_row(be, "bias_gelu_4096x1536", 0, KERNELS_ACT_GELU, 1, 4096, 1536, bw);
    bench_row(be, "layernorm_4096x384", 1, KERNELS_ACT_NONE, 1, 4096, 384, bw);
    bench_row(be, "softmax_49152x64", 2, KERNELS_ACT_NONE, 768, 64, 64, bw);
    bench_row(be, "mean_pool_64x64x384", 4, KERNELS_ACT_NONE, 64, 64, 384, bw);
    bench_row(be, "l2norm_64x384", 3, KERNELS_ACT_NONE, 1, 64, 384, bw);

    kernels_backend_free(be);
    return 0;
}
