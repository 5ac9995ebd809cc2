/* Hashed n-gram features for the fallback news model (an embedding bag): word unigrams and
 * bigrams, character 3-grams of each word, and CJK character bigrams, all over the words of the
 * BERT basic tokenizer (text_normalize.h), hashed into n_buckets buckets.
 *
 * Hash: 32-bit FNV-1a (offset basis 2166136261, prime 16777619) of the feature's bytes, then
 * modulo n_buckets. The bytes are a two-byte kind prefix and UTF-8, so kinds never collide:
 *   word unigram   "U:" word
 *   word bigram    "B:" word1 " " word2        (consecutive words; words never contain a space)
 *   char 3-gram    "C:" three code points of "<" word ">"   (a 1-letter word gives "<a>")
 *   CJK bigram     "K:" cjk1 cjk2              (consecutive one-character CJK words)
 * Punctuation marks are words of their own, as in BERT. */
#ifndef VIGIL_NGRAM_H
#define VIGIL_NGRAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t bucket;
    float weight; /* how many times features hashed to this bucket */
} ngram_feature_t;

/* Holds the bucket count and reusable work buffers: one per thread. */
typedef struct ngram ngram_t;

ngram_t *ngram_new(uint32_t n_buckets, char *err, size_t errlen);
void ngram_free(ngram_t *ng);

/* 32-bit FNV-1a of n bytes: the hash above, exposed for tests and offline tooling. */
uint32_t ngram_fnv1a(const void *data, size_t n);

/* Features of text (len bytes of UTF-8; invalid bytes handled as in text_normalize.h), merged per
 * bucket and sorted by bucket ascending. Stores the first max_out into out and sets *n_total to
 * the number of distinct buckets (more than max_out means the rest were dropped). Returns 0 or
 * -1 with err filled (out of memory). */
int ngram_features(ngram_t *ng, const char *text, size_t len, ngram_feature_t *out, size_t max_out,
                   size_t *n_total, char *err, size_t errlen);

#endif
