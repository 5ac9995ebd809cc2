/* BERT WordPiece: vocabulary hash table, greedy longest-match-first splitting of normalised
 * words, and the [CLS] ... [SEP] [PAD]... framing of model inputs. */
#include "wordpiece.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "text_normalize.h"

/* Cut out of the text before normalisation, in this order (the slow tokenizer's added tokens). */
static const char *const special_names[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
#define N_SPECIALS (sizeof(special_names) / sizeof(special_names[0]))

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

typedef struct {
    uint32_t hash;
    int32_t id;   /* -1: empty slot */
    uint32_t off; /* token bytes in wp->pool */
    uint32_t len;
} slot_t;

struct wordpiece {
    char *pool; /* the vocab file's bytes; tokens point into it */
    slot_t *slots;
    size_t mask; /* slot count - 1 (a power of two) */
    size_t n_tokens;
    /* Longest token in bytes, for word starts and (without the "##") for continuations: longer
     * substrings cannot match, so the greedy search skips them. */
    size_t max_start_len;
    size_t max_cont_len;
    int32_t unk, cls, sep, pad;
    const char *specials[N_SPECIALS]; /* the ones present in the vocab */
    int32_t special_ids[N_SPECIALS];
    size_t n_specials;
};

struct wordpiece_scratch {
    text_normalize_scratch_t *norm;
};

/* Where tokenized ids go during one call. */
typedef struct {
    const wordpiece_t *wp;
    int32_t *ids;
    size_t max_ids;
    size_t n; /* total, including those past max_ids */
} sink_t;

static uint32_t fnv_step(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Id of prefix + bytes (prefix is "" or "##"), or -1. Hashes in two steps so a continuation
 * piece is looked up without copying it next to its "##". */
static int32_t lookup(const wordpiece_t *wp, const char *prefix, size_t plen,
                      const unsigned char *bytes, size_t n)
{
    uint32_t h = fnv_step(fnv_step(FNV_OFFSET, (const unsigned char *)prefix, plen), bytes, n);
    for (size_t i = h & wp->mask;; i = (i + 1) & wp->mask) {
        const slot_t *sl = &wp->slots[i];
        if (sl->id < 0)
            return -1;
        if (sl->hash == h && sl->len == plen + n && memcmp(wp->pool + sl->off, prefix, plen) == 0 &&
            memcmp(wp->pool + sl->off + plen, bytes, n) == 0)
            return sl->id;
    }
}

int32_t wordpiece_token_id(const wordpiece_t *wp, const char *token)
{
    return lookup(wp, "", 0, (const unsigned char *)token, strlen(token));
}

size_t wordpiece_vocab_size(const wordpiece_t *wp)
{
    return wp->n_tokens;
}

static void insert(wordpiece_t *wp, uint32_t off, uint32_t len, int32_t id)
{
    uint32_t h = fnv_step(FNV_OFFSET, (const unsigned char *)wp->pool + off, len);
    for (size_t i = h & wp->mask;; i = (i + 1) & wp->mask) {
        slot_t *sl = &wp->slots[i];
        if (sl->id < 0) {
            *sl = (slot_t){.hash = h, .id = id, .off = off, .len = len};
            return;
        }
        /* A later duplicate line wins, as with Python's dict in load_vocab. */
        if (sl->hash == h && sl->len == len &&
            memcmp(wp->pool + sl->off, wp->pool + off, len) == 0) {
            sl->id = id;
            return;
        }
    }
}

/* Reads the whole file into a NUL-terminated buffer. */
static char *read_file(const char *path, size_t *size, char *err, size_t errlen)
{
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        errbuf_printf(err, errlen, "wordpiece: cannot open vocab %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    buf = malloc(cap);
    if (!buf)
        goto oom;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > (size_t)UINT32_MAX)
                goto toolarge;
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                goto oom;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        errbuf_printf(err, errlen, "wordpiece: cannot read vocab %s", path);
        goto err;
    }
    fclose(f);
    buf[n] = '\0';
    *size = n;
    return buf;
toolarge:
    errbuf_printf(err, errlen, "wordpiece: vocab %s is larger than 4 GiB", path);
    goto err;
oom:
    errbuf_printf(err, errlen, "wordpiece: out of memory reading vocab %s", path);
err:
    free(buf);
    fclose(f);
    return NULL;
}

wordpiece_t *wordpiece_new(const char *vocab_path, char *err, size_t errlen)
{
    wordpiece_t *wp = calloc(1, sizeof(*wp));
    size_t size = 0;
    if (!wp) {
        errbuf_printf(err, errlen, "wordpiece: out of memory");
        return NULL;
    }
    wp->pool = read_file(vocab_path, &size, err, errlen);
    if (!wp->pool)
        goto err;

    /* Lines end at \n, \r\n or \r: Python opens the vocab with universal newlines. */
    size_t lines = 0;
    for (size_t i = 0; i < size; i++) {
        if (wp->pool[i] == '\n' || (wp->pool[i] == '\r' && wp->pool[i + 1] != '\n'))
            lines++;
    }
    lines++;
    size_t slots = 16;
    while (slots < lines * 2)
        slots *= 2;
    wp->slots = malloc(slots * sizeof(slot_t));
    if (!wp->slots) {
        errbuf_printf(err, errlen, "wordpiece: out of memory for %zu vocab slots", slots);
        goto err;
    }
    for (size_t i = 0; i < slots; i++)
        wp->slots[i].id = -1;
    wp->mask = slots - 1;

    size_t start = 0, id = 0;
    while (start < size) {
        size_t end = start;
        while (end < size && wp->pool[end] != '\n' && wp->pool[end] != '\r')
            end++;
        size_t len = end - start;
        if (id > INT32_MAX - 1) {
            errbuf_printf(err, errlen, "wordpiece: vocab %s has too many lines", vocab_path);
            goto err;
        }
        insert(wp, (uint32_t)start, (uint32_t)len, (int32_t)id);
        if (len >= 2 && memcmp(wp->pool + start, "##", 2) == 0) {
            if (len - 2 > wp->max_cont_len)
                wp->max_cont_len = len - 2;
        } else if (len > wp->max_start_len) {
            wp->max_start_len = len;
        }
        id++;
        if (end < size && wp->pool[end] == '\r' && end + 1 < size && wp->pool[end + 1] == '\n')
            end++;
        start = end + 1;
    }
    wp->n_tokens = id;

    wp->unk = wordpiece_token_id(wp, "[UNK]");
    wp->cls = wordpiece_token_id(wp, "[CLS]");
    wp->sep = wordpiece_token_id(wp, "[SEP]");
    wp->pad = wordpiece_token_id(wp, "[PAD]");
    if (wp->unk < 0 || wp->cls < 0 || wp->sep < 0 || wp->pad < 0) {
        errbuf_printf(err, errlen, "wordpiece: vocab %s lacks one of [CLS], [SEP], [UNK], [PAD]",
                      vocab_path);
        goto err;
    }
    for (size_t k = 0; k < N_SPECIALS; k++) {
        int32_t sid = wordpiece_token_id(wp, special_names[k]);
        if (sid < 0)
            continue;
        wp->specials[wp->n_specials] = special_names[k];
        wp->special_ids[wp->n_specials] = sid;
        wp->n_specials++;
    }
    return wp;
err:
    wordpiece_free(wp);
    return NULL;
}

void wordpiece_free(wordpiece_t *wp)
{
    if (!wp)
        return;
    free(wp->slots);
    free(wp->pool);
    free(wp);
}

wordpiece_scratch_t *wordpiece_scratch_new(void)
{
    wordpiece_scratch_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->norm = text_normalize_scratch_new();
    if (!s->norm) {
        free(s);
        return NULL;
    }
    return s;
}

void wordpiece_scratch_free(wordpiece_scratch_t *s)
{
    if (!s)
        return;
    text_normalize_scratch_free(s->norm);
    free(s);
}

static void emit(sink_t *k, int32_t id)
{
    if (k->n < k->max_ids)
        k->ids[k->n] = id;
    k->n++;
}

/* WordpieceTokenizer.tokenize for one word: greedy longest match first, "##" on continuations;
 * if any position has no match the whole word is one [UNK]. */
static int on_word(void *ctx, const uint32_t *cps, size_t n, int special, char *err, size_t errlen)
{
    sink_t *k = ctx;
    const wordpiece_t *wp = k->wp;
    unsigned char bytes[WORDPIECE_MAX_WORD_CHARS * 4];
    size_t off[WORDPIECE_MAX_WORD_CHARS + 1];
    int32_t pieces[WORDPIECE_MAX_WORD_CHARS];
    size_t n_pieces = 0;

    if (special >= 0) {
        emit(k, wp->special_ids[special]);
        return 0;
    }
    if (n > WORDPIECE_MAX_WORD_CHARS) {
        emit(k, wp->unk);
        return 0;
    }
    off[0] = 0;
    for (size_t i = 0; i < n; i++)
        off[i + 1] = off[i] + text_normalize_encode_utf8(cps[i], bytes + off[i]);

    size_t start = 0;
    while (start < n) {
        size_t limit = start > 0 ? wp->max_cont_len : wp->max_start_len;
        int32_t found = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t blen = off[end] - off[start];
            if (blen > limit)
                continue;
            found = start > 0 ? lookup(wp, "##", 2, bytes + off[start], blen)
                              : lookup(wp, "", 0, bytes + off[start], blen);
            if (found >= 0)
                break;
        }
        if (found < 0) {
            emit(k, wp->unk);
            return 0;
        }
        pieces[n_pieces++] = found;
        start = end;
    }
    for (size_t i = 0; i < n_pieces; i++)
        emit(k, pieces[i]);
    return 0;
}

int wordpiece_tokenize(const wordpiece_t *wp, wordpiece_scratch_t *s, const char *text, size_t len,
                       int32_t *ids, size_t max_ids, size_t *n_full, char *err, size_t errlen)
{
    sink_t k = {.wp = wp, .ids = ids, .max_ids = ids ? max_ids : 0, .n = 0};
    if (!wp || !s) {
        errbuf_printf(err, errlen, "wordpiece: missing tokenizer or scratch");
        return -1;
    }
    if (text_normalize_words(text, len, wp->specials, wp->n_specials, s->norm, on_word, &k, err,
                             errlen) < 0)
        return -1;
    *n_full = k.n;
    return 0;
}

int wordpiece_encode(const wordpiece_t *wp, wordpiece_scratch_t *s, const char *text, size_t len,
                     size_t max_len, int32_t *ids, uint8_t *mask, size_t *n_out, size_t *n_full,
                     char *err, size_t errlen)
{
    size_t full = 0;
    if (max_len < 2 || !ids || !mask) {
        errbuf_printf(err, errlen, "wordpiece: max_len must be >= 2 (got %zu) with ids and mask",
                      max_len);
        return -1;
    }
    /* Tokens land right after the [CLS] slot; only max_len-2 of them are kept. */
    if (wordpiece_tokenize(wp, s, text, len, ids + 1, max_len - 2, &full, err, errlen) < 0)
        return -1;
    size_t kept = full < max_len - 2 ? full : max_len - 2;
    ids[0] = wp->cls;
    ids[kept + 1] = wp->sep;
    for (size_t i = 0; i < kept + 2; i++)
        mask[i] = 1;
    for (size_t i = kept + 2; i < max_len; i++) {
        ids[i] = wp->pad;
        mask[i] = 0;
    }
    *n_out = kept + 2;
    *n_full = full;
    return 0;
}
