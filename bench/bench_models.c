/* Model throughput: the risk MLP's scored events/s and the BERT encoder's articles/s, on one
 * kernels backend. Measures and asserts nothing; prints BENCH lines.
 *
 *   bench_models THREADS BACKEND [MODEL_DIR]
 *
 * Risk: a [70, 64, 32, 1] MLP (the built-in spec's width, the default hidden layers) with
 * random weights, scoring batches of 4096 vectors (normalisation included). Encoder: batches of
 * 1, 16 and 64 sequences of exactly 64 tokens ([CLS], 62 random word ids, [SEP]), the same shape
 * bench/encoder_torch.py gives PyTorch. Each figure: repeated for about 3 s after a warm-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels.h"
#include "model_bert.h"
#include "model_risk.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_risk(kernels_backend_t *be, int threads, const char *backend)
{
    char err[512], path[] = "/tmp/vigil-bench-risk.XXXXXX";
    size_t dims[4] = {70, 64, 32, 1}, n = 4096;
    const char *cols[70];
    model_risk_weights_t w;
    int fd = mkstemp(path);
    if (fd < 0 || model_risk_weights_alloc(&w, dims, 3) != 0)
        return -1;
    srand(1);
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; i < dims[l] * dims[l + 1]; i++)
            w.w[l][i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < 70; i++)
        cols[i] = "c";
    model_risk_info_t info = {"bench", "spec", "0000000000000000", cols, NULL};
    if (model_risk_save(path, &w, &info, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "bench_models: %s\n", err);
        return -1;
    }
    model_risk_weights_free(&w);
    model_risk_t *m = model_risk_load(be, path, err, sizeof err);
    unlink(path);
    float *x = malloc(n * 70 * sizeof *x), *s = malloc(n * sizeof *s);
    if (!m || !x || !s) {
        fprintf(stderr, "bench_models: %s\n", m ? "out of memory" : err);
        return -1;
    }
    for (size_t i = 0; i < n * 70; i++)
        x[i] = (float)rand() / RAND_MAX;
    if (model_risk_score(m, x, n, s, err, sizeof err) != 0) {
        fprintf(stderr, "bench_models: %s\n", err);
        return -1;
    }
    size_t runs = 0;
    double t0 = now_s(), t;
    do {
        if (model_risk_score(m, x, n, s, err, sizeof err) != 0) {
            fprintf(stderr, "bench_models: %s\n", err);
            return -1;
        }
        runs++;
    } while ((t = now_s() - t0) < 3.0);
    printf("BENCH risk_mlp_%s_t%d_b%zu events_per_s=%.0f us_per_batch=%.1f runs=%zu\n", backend,
           threads, n, (double)(runs * n) / t, t / (double)runs * 1e6, runs);
    model_risk_free(m);
    free(x);
    free(s);
    return 0;
}

static int bench_encoder(kernels_backend_t *be, int threads, const char *backend, const char *dir)
{
    char err[512];
    const size_t len = 64, batches[3] = {1, 16, 64};
    model_bert_t *m = model_bert_load(be, dir, 256, err, sizeof err);
    if (!m) {
        fprintf(stderr, "bench_models: %s\n", err);
        return -1;
    }
    size_t h = model_bert_dim(m);
    int32_t *ids = malloc(64 * len * sizeof *ids);
    uint8_t *mask = malloc(64 * len);
    float *out = malloc(64 * h * sizeof *out);
    if (!ids || !mask || !out)
        return -1;
    for (size_t s = 0; s < 64; s++)
        for (size_t p = 0; p < len; p++) {
            /* [CLS] 101, [SEP] 102, words from the ordinary part of the vocabulary. */
            ids[s * len + p] = p == 0 ? 101 : p == len - 1 ? 102 : 2000 + rand() % 20000;
            mask[s * len + p] = 1;
        }
    for (size_t b = 0; b < 3; b++) {
        size_t nb = batches[b], runs = 0;
        if (model_bert_encode_ids(m, ids, mask, nb, len, 1, out, err, sizeof err) != 0) {
            fprintf(stderr, "bench_models: %s\n", err);
            return -1;
        }
        double t0 = now_s(), t;
        do {
            if (model_bert_encode_ids(m, ids, mask, nb, len, 1, out, err, sizeof err) != 0) {
                fprintf(stderr, "bench_models: %s\n", err);
                return -1;
            }
            runs++;
        } while ((t = now_s() - t0) < 3.0);
        printf("BENCH encoder_vigil_%s_t%d_b%zu articles_per_s=%.1f ms_per_batch=%.2f runs=%zu\n",
               backend, threads, nb, (double)(runs * nb) / t, t / (double)runs * 1e3, runs);
    }
    model_bert_free(m);
    free(ids);
    free(mask);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    const char *backend = argc > 2 ? argv[2] : "cpu";
    const char *dir = argc > 3 ? argv[3] : ".cache/models/all-MiniLM-L6-v2";
    char err[512];
    kernels_backend_t *be = kernels_backend_new(backend, threads, err, sizeof err);
    if (!be) {
        fprintf(stderr, "bench_models: %s\n", err);
        return 1;
    }
    int rc = bench_risk(be, threads, backend) == 0 && bench_encoder(be, threads, backend, dir) == 0;
    kernels_backend_free(be);
    return rc ? 0 : 1;
}
