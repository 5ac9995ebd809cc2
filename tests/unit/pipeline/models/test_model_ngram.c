/* The fallback n-gram encoder: deterministic, unit length, language-agnostic (CJK text has
 * features), and closer for texts that share words than for texts that do not. */
#include <math.h>
#include <string.h>

#include "model_ngram.h"
#include "test.h"

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

int main(void)
{
    char err[256];
    const char *texts[] = {"Shares of Acme surged after record quarterly profit",
                           "Acme shares surged after a record profit in the quarter",
                           "The central bank left interest rates unchanged",
                           "腾讯控股第三季度利润大幅增长",
                           "",
                           "!!!"};
    size_t n = sizeof texts / sizeof texts[0], lens[6], d = MODEL_NGRAM_DIM;
    static float a[6 * MODEL_NGRAM_DIM], b[6 * MODEL_NGRAM_DIM];

    CHECK(model_ngram_new(MODEL_NGRAM_BUCKETS, 100, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "multiple of 64") != NULL);
    model_ngram_t *m = model_ngram_new(MODEL_NGRAM_BUCKETS, d, MODEL_NGRAM_SEED, err, sizeof err);
    model_ngram_t *m2 = model_ngram_new(MODEL_NGRAM_BUCKETS, d, MODEL_NGRAM_SEED, err, sizeof err);
    model_ngram_t *other = model_ngram_new(MODEL_NGRAM_BUCKETS, d, 7, err, sizeof err);
    CHECK(m && m2 && other);
    if (!m || !m2 || !other)
        return TEST_DONE();
    CHECK(model_ngram_dim(m) == d && model_ngram_buckets(m) == MODEL_NGRAM_BUCKETS);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(texts[i]);
    CHECK(model_ngram_encode(m, texts, lens, n, a, err, sizeof err) == 0);
    CHECK(model_ngram_encode(m2, texts, lens, n, b, err, sizeof err) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0); /* same (buckets, dim, seed): same bits */
    for (size_t i = 0; i < 4; i++)
        CHECK_MSG(fabs(dot(a + i * d, a + i * d, d) - 1.0) < 1e-5, "text %zu norm^2 %f", i,
                  dot(a + i * d, a + i * d, d));
    for (size_t j = 0; j < d; j++)
        CHECK(a[4 * d + j] == 0.0f); /* no features: zeros, not NaN */
    double near = dot(a, a + d, d), far = dot(a, a + 2 * d, d);
    CHECK_MSG(near > 0.3 && far < 0.15, "similar %.3f, unrelated %.3f", near, far);
    /* Encoding one text alone gives what it gave in the batch. */
    CHECK(model_ngram_encode(m, &texts[3], &lens[3], 1, b, err, sizeof err) == 0);
    CHECK(memcmp(a + 3 * d, b, d * sizeof(float)) == 0);
    /* Another seed: another projection. */
    CHECK(model_ngram_encode(other, texts, lens, 1, b, err, sizeof err) == 0);
    CHECK(memcmp(a, b, d * sizeof(float)) != 0);
    model_ngram_free(m);
    model_ngram_free(m2);
    model_ngram_free(other);
    return TEST_DONE();
}
