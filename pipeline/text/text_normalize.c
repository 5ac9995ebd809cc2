/* The BERT basic tokenizer: UTF-8 decoding, cleanup, lower-casing, CJK splitting, accent
 * stripping and punctuation splitting, matching transformers' slow BertTokenizer bit for bit.
 *
 * Why the order of steps looks different from BasicTokenizer.tokenize: the slow tokenizer first
 * lower-cases the text one character at a time (PreTrainedTokenizer.tokenize does it so that
 * special tokens keep their case), so Python's Final_Sigma rule never fires and the later
 * token.lower() has nothing left to do. Its NFC step is skipped here because the result goes
 * through NFD right after and NFC never changes where words split (checked against transformers
 * for every code point in context and 200,000 random strings; see docs/text.md). */
#include "text_normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "unicode_tables.h"

/* Work-buffer entries pack the code point with what the flush step needs, so flushing does not
 * look anything up again: bits 0..20 code point, 21 punctuation, 22 category Mn, 24..31 ccc. */
#define ENTRY_CP_MASK 0x1FFFFFu
#define ENTRY_PUNCT (1u << 21)
#define ENTRY_MN (1u << 22)
#define ENTRY_CCC_SHIFT 24

#define REPLACEMENT_CHAR 0xFFFDu

#define HANGUL_L_BASE 0x1100u
#define HANGUL_V_BASE 0x1161u
#define HANGUL_T_BASE 0x11A7u
#define HANGUL_V_COUNT 21u
#define HANGUL_T_COUNT 28u
#define HANGUL_N_COUNT (HANGUL_V_COUNT * HANGUL_T_COUNT)

struct text_normalize_scratch {
    uint32_t *buf; /* the current whitespace-delimited token, decomposed */
    size_t cap;
};

/* State of one text_normalize_words call. */
typedef struct {
    text_normalize_scratch_t *s;
    size_t n; /* entries in s->buf */
    text_normalize_word_fn fn;
    void *ctx;
    char *err;
    size_t errlen;
} run_t;

text_normalize_scratch_t *text_normalize_scratch_new(void)
{
    text_normalize_scratch_t *s = calloc(1, sizeof(*s));
    return s;
}

void text_normalize_scratch_free(text_normalize_scratch_t *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s);
}

int text_normalize_is_cjk(uint32_t cp)
{
    if (cp > 0x10FFFF)
        return 0;
    return (unicode_tables_lookup(cp)->flags & UNICODE_TABLES_CJK) != 0;
}

static int is_cont(unsigned char b, unsigned char lo, unsigned char hi)
{
    return b >= lo && b <= hi;
}

uint32_t text_normalize_decode_utf8(const unsigned char *t, size_t len, size_t *pos)
{
    size_t i = *pos;
    unsigned char b0 = t[i];
    /* Allowed range of the second byte, per the Unicode well-formed byte sequence table. The
     * tight ranges after E0/ED/F0/F4 are what rejects overlongs, surrogates and > U+10FFFF. */
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;
    uint32_t cp;

    if (b0 < 0x80) {
        *pos = i + 1;
        return b0;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
        cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        cp = b0 & 0x0Fu;
        if (b0 == 0xE0)
            lo = 0xA0;
        else if (b0 == 0xED)
            hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        cp = b0 & 0x07u;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F;
    } else {
        /* 0x80..0xC1 and 0xF5..0xFF never start a sequence: one U+FFFD for this byte. */
        *pos = i + 1;
        return REPLACEMENT_CHAR;
    }
    i++;
    for (size_t k = 0; k < need; k++, i++) {
        /* A byte that does not fit ends the maximal subpart; it is decoded afresh next time. */
        if (i >= len || !is_cont(t[i], k == 0 ? lo : 0x80, k == 0 ? hi : 0xBF)) {
            *pos = i;
            return REPLACEMENT_CHAR;
        }
        cp = (cp << 6) | (t[i] & 0x3Fu);
    }
    *pos = i;
    return cp;
}

size_t text_normalize_encode_utf8(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int reserve(run_t *r, size_t extra)
{
    text_normalize_scratch_t *s = r->s;
    if (r->n + extra <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < r->n + extra) {
        if (cap > SIZE_MAX / 2 / sizeof(uint32_t))
            goto err;
        cap *= 2;
    }
    uint32_t *buf = realloc(s->buf, cap * sizeof(uint32_t));
    if (!buf)
        goto err;
    s->buf = buf;
    s->cap = cap;
    return 0;
err:
    errbuf_printf(r->err, r->errlen, "text_normalize: out of memory for a %zu-character token",
                  r->n + extra);
    return -1;
}

/* Appends one decomposed code point, keeping canonical order: a non-starter moves back past
 * non-starters of a higher class (a stable insertion sort, which is what NFD's reordering is). */
static int push(run_t *r, uint32_t cp)
{
    const unicode_tables_record_t *rec = unicode_tables_lookup(cp);
    uint32_t entry = cp | ((uint32_t)rec->ccc << ENTRY_CCC_SHIFT);
    if (rec->flags & UNICODE_TABLES_PUNCT)
        entry |= ENTRY_PUNCT;
    if (rec->flags & UNICODE_TABLES_MN)
        entry |= ENTRY_MN;
    if (reserve(r, 1) < 0)
        return -1;
    uint32_t *buf = r->s->buf;
    size_t i = r->n;
    if (rec->ccc != 0) {
        while (i > 0 && (buf[i - 1] >> ENTRY_CCC_SHIFT) > rec->ccc) {
            buf[i] = buf[i - 1];
            i--;
        }
    }
    buf[i] = entry;
    r->n++;
    return 0;
}

/* Appends the full canonical decomposition (NFD) of cp. */
static int push_decomposed(run_t *r, uint32_t cp, const unicode_tables_record_t *rec)
{
    if (cp >= UNICODE_TABLES_HANGUL_S_BASE &&
        cp < UNICODE_TABLES_HANGUL_S_BASE + UNICODE_TABLES_HANGUL_S_COUNT) {
        uint32_t s = cp - UNICODE_TABLES_HANGUL_S_BASE;
        uint32_t t = s % HANGUL_T_COUNT;
        if (push(r, HANGUL_L_BASE + s / HANGUL_N_COUNT) < 0)
            return -1;
        if (push(r, HANGUL_V_BASE + (s % HANGUL_N_COUNT) / HANGUL_T_COUNT) < 0)
            return -1;
        if (t != 0 && push(r, HANGUL_T_BASE + t) < 0)
            return -1;
        return 0;
    }
    if (rec->decomp == 0)
        return push(r, cp);
    const uint32_t *seq = &unicode_tables_seq[rec->decomp];
    for (uint32_t k = 1; k <= seq[0]; k++) {
        if (push(r, seq[k]) < 0)
            return -1;
    }
    return 0;
}

/* Ends the current whitespace-delimited token: drops Mn (accent stripping) and cuts the rest at
 * punctuation, handing each piece to the callback. Compacts in place, so no second buffer. */
static int flush(run_t *r)
{
    uint32_t *buf = r->s->buf;
    size_t w = 0, word_start = 0;
    for (size_t i = 0; i < r->n; i++) {
        uint32_t e = buf[i];
        if (e & ENTRY_MN)
            continue;
        uint32_t cp = e & ENTRY_CP_MASK;
        if (e & ENTRY_PUNCT) {
            if (w > word_start &&
                r->fn(r->ctx, buf + word_start, w - word_start, -1, r->err, r->errlen) < 0)
                goto err;
            buf[w] = cp;
            if (r->fn(r->ctx, buf + w, 1, -1, r->err, r->errlen) < 0)
                goto err;
            w++;
            word_start = w;
            continue;
        }
        buf[w++] = cp;
    }
    if (w > word_start &&
        r->fn(r->ctx, buf + word_start, w - word_start, -1, r->err, r->errlen) < 0)
        goto err;
    r->n = 0;
    return 0;
err:
    r->n = 0;
    return -1;
}

/* One lower-cased code point through _clean_text, _tokenize_chinese_chars and the split. */
static int take(run_t *r, uint32_t cp, const unicode_tables_record_t *rec)
{
    if (rec->flags & UNICODE_TABLES_DROP)
        return 0;
    if (rec->flags & UNICODE_TABLES_SPACE)
        return r->n ? flush(r) : 0;
    if (rec->flags & UNICODE_TABLES_CJK) {
        if (r->n && flush(r) < 0)
            return -1;
        if (push_decomposed(r, cp, rec) < 0)
            return -1;
        return flush(r);
    }
    return push_decomposed(r, cp, rec);
}

/* Index of the special token that starts at t[pos], or -1. */
static int match_special(const unsigned char *t, size_t len, size_t pos,
                         const char *const *specials, size_t n_specials)
{
    for (size_t k = 0; k < n_specials; k++) {
        size_t sl = strlen(specials[k]);
        if (sl > 0 && sl <= len - pos && memcmp(t + pos, specials[k], sl) == 0)
            return (int)k;
    }
    return -1;
}

int text_normalize_words(const char *text, size_t len, const char *const *specials,
                         size_t n_specials, text_normalize_scratch_t *s, text_normalize_word_fn fn,
                         void *ctx, char *err, size_t errlen)
{
    const unsigned char *t = (const unsigned char *)text;
    run_t r = {.s = s, .n = 0, .fn = fn, .ctx = ctx, .err = err, .errlen = errlen};
    /* Specials are ASCII and start with a byte that is never part of a multi-byte sequence, so
     * matching them on the raw bytes equals matching them on the decoded text. Only their first
     * bytes are checked per position, to keep the common path cheap. */
    unsigned char first[256] = {0};
    for (size_t k = 0; k < n_specials; k++)
        first[(unsigned char)specials[k][0]] = 1;

    if (!s || !fn || (len > 0 && !text)) {
        errbuf_printf(err, errlen, "text_normalize: missing scratch, callback or text");
        return -1;
    }
    size_t pos = 0;
    while (pos < len) {
        if (n_specials && first[t[pos]]) {
            int k = match_special(t, len, pos, specials, n_specials);
            if (k >= 0) {
                if (r.n && flush(&r) < 0)
                    return -1;
                if (fn(ctx, NULL, 0, k, err, errlen) < 0)
                    return -1;
                pos += strlen(specials[k]);
                continue;
            }
        }
        uint32_t cp = text_normalize_decode_utf8(t, len, &pos);
        const unicode_tables_record_t *rec = unicode_tables_lookup(cp);
        if (rec->lower == 0) {
            if (take(&r, cp, rec) < 0)
                return -1;
            continue;
        }
        const uint32_t *seq = &unicode_tables_seq[rec->lower];
        for (uint32_t k = 1; k <= seq[0]; k++) {
            if (take(&r, seq[k], unicode_tables_lookup(seq[k])) < 0)
                return -1;
        }
    }
    if (r.n && flush(&r) < 0)
        return -1;
    return 0;
}
