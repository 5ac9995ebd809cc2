/* Tests the hashed n-gram featuriser: the hash against published FNV-1a vectors, golden bucket
 * lists (computed by an independent Python implementation of docs/text.md's definition), CJK
 * bigrams and normalisation. */
#include <stdint.h>
#include <string.h>

#include "ngram.h"
#include "test.h"

#define NB 1024u

static int has_bucket(const ngram_feature_t *f, size_t n, uint32_t bucket, float weight)
{
    for (size_t i = 0; i < n; i++) {
        if (f[i].bucket == bucket)
            return f[i].weight == weight;
    }
    return 0;
}

static void test_hash(void)
{
    /* Published FNV-1a 32-bit test vectors. */
    CHECK(ngram_fnv1a("", 0) == 0x811c9dc5u);
    CHECK(ngram_fnv1a("a", 1) == 0xe40c292cu);
    CHECK(ngram_fnv1a("foobar", 6) == 0xbf9cf968u);
}

static void test_golden(ngram_t *ng)
{
    char err[256];
    ngram_feature_t f[64], g[64];
    size_t n = 0, m = 0;
    /* Words zoe, muller, cafe: 3 unigrams + 2 bigrams + 5+8+6 trigrams = 24 features here
     * falling into 18 distinct buckets. */
    static const uint32_t want[] = {38,  42,  175, 247, 362, 363, 402, 457, 478,
                                    567, 658, 806, 809, 820, 835, 859, 955, 1012};
    const char *t = "Zo\xc3\xab M\xc3\x9cLLER caf\xc3\xa9";
    CHECK(ngram_features(ng, t, strlen(t), f, 64, &n, err, sizeof(err)) == 0);
    CHECK(n == sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n && i < sizeof(want) / sizeof(want[0]); i++)
        CHECK(f[i].bucket == want[i] && f[i].weight == 1.0f);

    /* Case and accents are normalised away. */
    const char *plain = "zoe muller cafe";
    CHECK(ngram_features(ng, plain, strlen(plain), g, 64, &m, err, sizeof(err)) == 0);
    CHECK(m == n && memcmp(f, g, n * sizeof(f[0])) == 0);

    /* A sentence with repeated buckets: sorted, merged counts. */
    const char *s = "Apple beats Q3 estimates, shares +5%";
    CHECK(ngram_features(ng, s, strlen(s), f, 64, &n, err, sizeof(err)) == 0);
    CHECK(n == 45);
    CHECK(f[0].bucket == 0 && f[n - 1].bucket == 1008);
    CHECK(has_bucket(f, n, 177, 2.0f) && has_bucket(f, n, 319, 2.0f) &&
          has_bucket(f, n, 390, 2.0f) && has_bucket(f, n, 14, 1.0f));
    for (size_t i = 1; i < n; i++)
        CHECK(f[i - 1].bucket < f[i].bucket);

    /* max_out smaller than the distinct count: first buckets kept, total still reported. */
    CHECK(ngram_features(ng, s, strlen(s), g, 4, &m, err, sizeof(err)) == 0);
    CHECK(m == 45 && memcmp(f, g, 4 * sizeof(f[0])) == 0);
}

static void test_cjk(ngram_t *ng)
{
    char err[256];
    ngram_feature_t f[64];
    size_t n = 0;
    const char *t = "\xe8\x8b\xb9\xe6\x9e\x9c\xe5\x85\xac\xe5\x8f\xb8"; /* 苹果公司 */
    CHECK(ngram_features(ng, t, strlen(t), f, 64, &n, err, sizeof(err)) == 0);
    /* Golden from the Python reference: 4 unigrams, 3 bigrams, 4 trigrams, 3 CJK bigrams. */
    CHECK(n == 13 && has_bucket(f, n, 318, 2.0f));
    static const char *const pairs[] = {"K:\xe8\x8b\xb9\xe6\x9e\x9c", "K:\xe6\x9e\x9c\xe5\x85\xac",
                                        "K:\xe5\x85\xac\xe5\x8f\xb8"};
    for (size_t k = 0; k < 3; k++) {
        uint32_t b = ngram_fnv1a(pairs[k], strlen(pairs[k])) % NB;
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found |= f[i].bucket == b;
        CHECK(found);
    }
    /* Latin words get no CJK bigram: "ab" vs "a b" differ only by word features. */
    CHECK(ngram_features(ng, "", 0, f, 64, &n, err, sizeof(err)) == 0);
    CHECK(n == 0);
}

int main(void)
{
    char err[256];
    CHECK(ngram_new(0, err, sizeof(err)) == NULL);
    ngram_t *ng = ngram_new(NB, err, sizeof(err));
    CHECK(ng != NULL);
    if (!ng)
        return TEST_DONE();
    test_hash();
    test_golden(ng);
    test_cjk(ng);
    ngram_free(ng);
    return TEST_DONE();
}
