/* Hashed n-gram featuriser over BERT-normalised words (see ngram.h for the exact definition). */
#include "ngram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "text_normalize.h"

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

struct ngram {
    uint32_t n_buckets;
    text_normalize_scratch_t *norm;
    uint32_t *hits; /* bucket of every feature occurrence in the current text */
    size_t n_hits, cap_hits;
    unsigned char *prev; /* previous word as UTF-8, for bigrams */
    size_t prev_len, cap_prev;
    uint32_t prev_cjk; /* the previous word if it was one CJK character, else 0 */
};

uint32_t ngram_fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Continues an FNV-1a hash, so a feature is hashed piece by piece without building it. */
static uint32_t fnv_more(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

ngram_t *ngram_new(uint32_t n_buckets, char *err, size_t errlen)
{
    ngram_t *ng = NULL;
    if (n_buckets == 0) {
        errbuf_printf(err, errlen, "ngram: n_buckets must be > 0");
        return NULL;
    }
    ng = calloc(1, sizeof(*ng));
    if (!ng)
        goto oom;
    ng->n_buckets = n_buckets;
    ng->norm = text_normalize_scratch_new();
    if (!ng->norm)
        goto oom;
    return ng;
oom:
    errbuf_printf(err, errlen, "ngram: out of memory");
    ngram_free(ng);
    return NULL;
}

void ngram_free(ngram_t *ng)
{
    if (!ng)
        return;
    text_normalize_scratch_free(ng->norm);
    free(ng->hits);
    free(ng->prev);
    free(ng);
}

static int hit(ngram_t *ng, uint32_t h, char *err, size_t errlen)
{
    if (ng->n_hits == ng->cap_hits) {
        size_t cap = ng->cap_hits ? ng->cap_hits * 2 : 1024;
        uint32_t *nh = realloc(ng->hits, cap * sizeof(uint32_t));
        if (!nh) {
            errbuf_printf(err, errlen, "ngram: out of memory for %zu features", cap);
            return -1;
        }
        ng->hits = nh;
        ng->cap_hits = cap;
    }
    ng->hits[ng->n_hits++] = h % ng->n_buckets;
    return 0;
}

static int on_word(void *ctx, const uint32_t *cps, size_t n, int special, char *err, size_t errlen)
{
    ngram_t *ng = ctx;
    unsigned char u[4];
    /* Worst case 4 bytes per code point; grow the previous-word buffer to hold this word. */
    if (n * 4 > ng->cap_prev / 2) {
        size_t cap = n * 8 + 64;
        unsigned char *np = realloc(ng->prev, cap);
        if (!np) {
            errbuf_printf(err, errlen, "ngram: out of memory for a %zu-character word", n);
            return -1;
        }
        ng->prev = np;
        ng->cap_prev = cap;
    }
    /* The word's UTF-8 goes after the previous word in the same buffer. */
    unsigned char *word = ng->prev + ng->cap_prev / 2;
    size_t wlen = 0;
    for (size_t i = 0; i < n; i++)
        wlen += text_normalize_encode_utf8(cps[i], word + wlen);

    if (hit(ng, fnv_more(ngram_fnv1a("U:", 2), word, wlen), err, errlen) < 0)
        return -1;
    if (ng->prev_len > 0) {
        uint32_t h = fnv_more(ngram_fnv1a("B:", 2), ng->prev, ng->prev_len);
        h = fnv_more(h, (const unsigned char *)" ", 1);
        if (hit(ng, fnv_more(h, word, wlen), err, errlen) < 0)
            return -1;
    }
    /* Character 3-grams over "<" word ">": position i covers padded chars i..i+2. */
    for (size_t i = 0; i + 3 <= n + 2; i++) {
        uint32_t h = ngram_fnv1a("C:", 2);
        for (size_t k = i; k < i + 3; k++) {
            uint32_t cp = k == 0 ? '<' : (k == n + 1 ? '>' : cps[k - 1]);
            h = fnv_more(h, u, text_normalize_encode_utf8(cp, u));
        }
        if (hit(ng, h, err, errlen) < 0)
            return -1;
    }
    uint32_t cjk = (n == 1 && text_normalize_is_cjk(cps[0])) ? cps[0] : 0;
    if (cjk && ng->prev_cjk) {
        uint32_t h = ngram_fnv1a("K:", 2);
        h = fnv_more(h, u, text_normalize_encode_utf8(ng->prev_cjk, u));
        h = fnv_more(h, u, text_normalize_encode_utf8(cjk, u));
        if (hit(ng, h, err, errlen) < 0)
            return -1;
    }
    memmove(ng->prev, word, wlen);
    ng->prev_len = wlen;
    ng->prev_cjk = cjk;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int ngram_features(ngram_t *ng, const char *text, size_t len, ngram_feature_t *out, size_t max_out,
                   size_t *n_total, char *err, size_t errlen)
{
    ng->n_hits = 0;
    ng->prev_len = 0;
    ng->prev_cjk = 0;
    /* No specials: "[CLS]" in a headline is just text to this model. */
    if (text_normalize_words(text, len, NULL, 0, ng->norm, on_word, ng, err, errlen) < 0)
        return -1;
    if (ng->n_hits > 1)
        qsort(ng->hits, ng->n_hits, sizeof(uint32_t), cmp_u32);
    size_t distinct = 0;
    for (size_t i = 0; i < ng->n_hits;) {
        size_t j = i;
        while (j < ng->n_hits && ng->hits[j] == ng->hits[i])
            j++;
        if (distinct < max_out && out) {
            out[distinct].bucket = ng->hits[i];
            out[distinct].weight = (float)(j - i);
        }
        distinct++;
        i = j;
    }
    *n_total = distinct;
    return 0;
}
