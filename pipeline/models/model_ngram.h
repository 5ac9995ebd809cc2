/* The fallback news encoder, for when no BERT weights are configured: the hashed n-gram counts of
 * a text (ngram.h: word unigrams and bigrams, character 3-grams, CJK bigrams; so it works for
 * Chinese and Japanese text too) projected to `dim` dimensions by a fixed random +-1 matrix, then
 * L2-normalised.
 *
 * The matrix is never stored: the sign for (bucket, dimension) is a bit of a hash of the two and
 * the seed, so the encoder needs no download and no weights file, and two processes with the same
 * (buckets, dim, seed) give the same embedding bit for bit. A count c contributes 1 + ln c
 * (sublinear, so a repeated word does not dominate). News heads trained on these embeddings
 * record the three numbers (model_news.h).
 *
 * A model_ngram_t holds per-thread scratch: one per thread. */
#ifndef VIGIL_MODEL_NGRAM_H
#define VIGIL_MODEL_NGRAM_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_NGRAM_BUCKETS (1u << 20)
#define MODEL_NGRAM_DIM 512
#define MODEL_NGRAM_SEED 20261124u

typedef struct model_ngram model_ngram_t;

/* dim: a multiple of 64, 64..4096. NULL with err. */
model_ngram_t *model_ngram_new(uint32_t buckets, size_t dim, uint64_t seed, char *err,
                               size_t errlen);
void model_ngram_free(model_ngram_t *m);
size_t model_ngram_dim(const model_ngram_t *m);
uint32_t model_ngram_buckets(const model_ngram_t *m);
uint64_t model_ngram_seed(const model_ngram_t *m);

/* Embeddings of n texts into out (n x dim). A text with no features gives zeros. Returns 0 or -1
 * with err (out of memory). */
int model_ngram_encode(model_ngram_t *m, const char *const *texts, const size_t *lens, size_t n,
                       float *out, char *err, size_t errlen);

#endif
