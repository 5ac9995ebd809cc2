/* Hashed n-gram embeddings by signed random projection (see model_ngram.h). */
#include "model_ngram.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "ngram.h"

/* Distinct buckets kept per text; a text with more (a very long article) keeps the first ones in
 * bucket order, which is an arbitrary but deterministic subset. */
#define NGRAM_FEATURES_MAX 16384

struct model_ngram {
    ngram_t *ng;
    uint32_t buckets;
    size_t dim;
    uint64_t seed;
    ngram_feature_t *feats; /* (NGRAM_FEATURES_MAX) */
    double *acc;            /* (dim) */
};

static uint64_t ngram_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

model_ngram_t *model_ngram_new(uint32_t buckets, size_t dim, uint64_t seed, char *err,
                               size_t errlen)
{
    model_ngram_t *m;
    if (dim < 64 || dim > 4096 || dim % 64 != 0) {
        errbuf_printf(err, errlen, "n-gram encoder dimension %zu: use a multiple of 64 in 64..4096",
                      dim);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        errbuf_printf(err, errlen, "out of memory");
        return NULL;
    }
    m->buckets = buckets;
    m->dim = dim;
    m->seed = seed;
    m->ng = ngram_new(buckets, err, errlen);
    m->feats = malloc(NGRAM_FEATURES_MAX * sizeof *m->feats);
    m->acc = malloc(dim * sizeof *m->acc);
    if (!m->ng || !m->feats || !m->acc) {
        if (m->ng)
            errbuf_printf(err, errlen, "out of memory");
        model_ngram_free(m);
        return NULL;
    }
    return m;
}

void model_ngram_free(model_ngram_t *m)
{
    if (!m)
        return;
    ngram_free(m->ng);
    free(m->feats);
    free(m->acc);
    free(m);
}

size_t model_ngram_dim(const model_ngram_t *m)
{
    return m->dim;
}

uint32_t model_ngram_buckets(const model_ngram_t *m)
{
    return m->buckets;
}

uint64_t model_ngram_seed(const model_ngram_t *m)
{
    return m->seed;
}

int model_ngram_encode(model_ngram_t *m, const char *const *texts, const size_t *lens, size_t n,
                       float *out, char *err, size_t errlen)
{
    for (size_t t = 0; t < n; t++) {
        size_t nf, total;
        double norm = 0;
        float *o = out + t * m->dim;
        if (ngram_features(m->ng, texts[t], lens[t], m->feats, NGRAM_FEATURES_MAX, &total, err,
                           errlen) != 0)
            return -1;
        nf = total < NGRAM_FEATURES_MAX ? total : NGRAM_FEATURES_MAX;
        memset(m->acc, 0, m->dim * sizeof *m->acc);
        for (size_t f = 0; f < nf; f++) {
            double w = 1.0 + log(m->feats[f].weight);
            uint64_t key = m->seed ^ ((uint64_t)m->feats[f].bucket << 20);
            /* 64 signs per hash: bit d of the hash for block b is the sign of dimension 64b + d. */
            for (size_t b = 0; b < m->dim / 64; b++) {
                uint64_t bits = ngram_mix(key + b * 0x9E3779B97F4A7C15ULL);
                double *a = m->acc + b * 64;
                for (int d = 0; d < 64; d++)
                    a[d] += (bits >> d & 1) ? w : -w;
            }
        }
        for (size_t d = 0; d < m->dim; d++)
            norm += m->acc[d] * m->acc[d];
        norm = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
        for (size_t d = 0; d < m->dim; d++)
            o[d] = (float)(m->acc[d] * norm);
    }
    return 0;
}
