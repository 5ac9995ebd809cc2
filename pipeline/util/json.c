/* The strict RFC 8259 JSON parser into a DOM (see json.h; the writer is json_write.c). Recursive
 * descent with the depth bound, every read checked against the end of the text, which is not
 * NUL-terminated. */
#include "json.h"

#include "errbuf.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Objects with fewer members than this are checked for duplicate keys by a linear scan; larger
 * ones (safetensors headers list thousands of tensors) through a hash set, so parsing stays
 * linear. */
#define JSON_LINEAR_KEYS 8

/* Number tokens up to this length are copied for strtod on the stack. */
#define JSON_NUMBER_BUF 64

typedef struct parser {
    const unsigned char *s;
    size_t len;
    size_t pos;
    char *err;
    size_t errlen;
    int failed; /* the first error is the one reported */
} parser_t;

/* Indices + 1 of an object's keys, open addressing; 0 marks an empty slot. */
typedef struct keyset {
    size_t *slots;
    size_t nslots; /* a power of two, 0 before the first use */
} keyset_t;

static int parse_value(parser_t *p, json_value_t *v, int depth);

static void parser_fail(parser_t *p, size_t at, const char *what)
{
    if (p->failed)
        return;
    p->failed = 1;
    errbuf_printf(p->err, p->errlen, "json: %s at byte %zu", what, at);
}

static void parser_fail_oom(parser_t *p)
{
    if (p->failed)
        return;
    p->failed = 1;
    errbuf_printf(p->err, p->errlen, "json: out of memory");
}

static void parser_skip_ws(parser_t *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

/* Frees what v holds and leaves it a JSON_NULL; v itself is not freed (it lives in its parent's
 * items, or is the caller's). Recursion is bounded by the parse depth. */
void json_clear(json_value_t *v)
{
    if (v->type == JSON_STRING) {
        free(v->string);
    } else if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (size_t i = 0; i < v->n; i++) {
            json_clear(&v->items[i]);
            if (v->keys)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof(*v));
}

/* The length of the well-formed UTF-8 sequence at s (Unicode table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one. n > 0 bytes are readable. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return len;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The four hex digits at s[at..at+4) as a code unit, or -1; the caller checked they are inside
 * the string. */
static long hex4_parse(const unsigned char *s, size_t at)
{
    long v = 0;
    for (size_t i = at; i < at + 4; i++) {
        unsigned char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Parses the string literal at p->pos (its opening quote) into a new NUL-terminated buffer. */
static int parse_string(parser_t *p, char **out, size_t *out_len)
{
    const unsigned char *s = p->s;
    size_t start = p->pos + 1, end = start, n = 0;
    int plain = 1;
    char *buf;

    /* Find the closing quote first: the unescaped text is never longer than the literal, so one
     * allocation of that size is enough. An escape always covers the byte after the backslash.
     * A literal of printable ASCII only (most keys and values) is its own text: one copy. */
    while (end < p->len && s[end] != '"') {
        if (s[end] == '\\') {
            plain = 0;
            end += 2;
        } else {
            plain &= s[end] >= 0x20 && s[end] < 0x80;
            end++;
        }
    }
    if (end >= p->len) {
        parser_fail(p, p->len, "unterminated string");
        return -1;
    }
    buf = malloc(end - start + 1);
    if (!buf) {
        parser_fail_oom(p);
        return -1;
    }
    if (plain) {
        memcpy(buf, s + start, end - start);
        n = end - start;
    }
    for (size_t j = plain ? end : start; j < end;) {
        unsigned char c = s[j];
        if (c < 0x20) {
            parser_fail(p, j, "control character in string");
            goto fail;
        }
        if (c >= 0x80) {
            size_t k = utf8_sequence_len(s + j, end - j);
            if (k == 0) {
                parser_fail(p, j, "invalid UTF-8 in string");
                goto fail;
            }
            memcpy(buf + n, s + j, k);
            n += k;
            j += k;
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            j++;
            continue;
        }
        /* j + 1 < end: the scan above never lets a backslash swallow the closing quote. */
        switch (s[j + 1]) {
        case '"':
        case '\\':
        case '/':
            buf[n++] = (char)s[j + 1];
            break;
        case 'b':
            buf[n++] = '\b';
            break;
        case 'f':
            buf[n++] = '\f';
            break;
        case 'n':
            buf[n++] = '\n';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case 't':
            buf[n++] = '\t';
            break;
        case 'u': {
            long cp = end - j >= 6 ? hex4_parse(s, j + 2) : -1;
            if (cp < 0) {
                parser_fail(p, j, "invalid \\u escape");
                goto fail;
            }
            if (cp == 0) {
                parser_fail(p, j, "\\u0000 in string");
                goto fail;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                parser_fail(p, j, "lone surrogate in \\u escape");
                goto fail;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                long lo = -1;
                if (end - j >= 12 && s[j + 6] == '\\' && s[j + 7] == 'u')
                    lo = hex4_parse(s, j + 8);
                if (lo < 0xdc00 || lo > 0xdfff) {
                    parser_fail(p, j, "lone surrogate in \\u escape");
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                j += 6;
            }
            n += utf8_encode((uint32_t)cp, buf + n);
            j += 6;
            continue;
        }
        default:
            parser_fail(p, j, "invalid escape in string");
            goto fail;
        }
        j += 2;
    }
    buf[n] = '\0';
    p->pos = end + 1;
    *out = buf;
    *out_len = n;
    return 0;
fail:
    free(buf);
    return -1;
}

/* Accumulates the digits s[from..to) into an int64 when they fit, so integers are exact rather
 * than rounded through a double. */
static int integer_parse(const unsigned char *s, size_t from, size_t to, int negative, int64_t *out)
{
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    uint64_t mag = 0;
    for (size_t i = from; i < to; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (mag > (limit - d) / 10)
            return 0;
        mag = mag * 10 + d;
    }
    if (!negative)
        *out = (int64_t)mag;
    else if (mag == (uint64_t)INT64_MAX + 1u)
        *out = INT64_MIN;
    else
        *out = -(int64_t)mag;
    return 1;
}

static int digit_at(const parser_t *p, size_t i)
{
    return i < p->len && p->s[i] >= '0' && p->s[i] <= '9';
}

/* At least one digit at p->pos, consumed; fails on a non-digit or the end of the text. */
static int digits_parse(parser_t *p)
{
    if (p->pos >= p->len) {
        parser_fail(p, p->pos, "unexpected end of input");
        return -1;
    }
    if (!digit_at(p, p->pos)) {
        parser_fail(p, p->pos, "invalid number");
        return -1;
    }
    while (digit_at(p, p->pos))
        p->pos++;
    return 0;
}

static int parse_number(parser_t *p, json_value_t *v)
{
    size_t start = p->pos, int_start, int_end, n;
    int negative = 0, integral = 1;
    char small[JSON_NUMBER_BUF], *buf = small, *stop = NULL;
    const char *point;
    double d;

    if (p->s[p->pos] == '-') {
        negative = 1;
        p->pos++;
    }
    int_start = p->pos;
    if (digit_at(p, p->pos) && p->s[p->pos] == '0') {
        p->pos++;
        if (digit_at(p, p->pos)) {
            parser_fail(p, int_start, "leading zero in number");
            return -1;
        }
    } else if (digits_parse(p) < 0) {
        return -1;
    }
    int_end = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integral = 0;
        p->pos++;
        if (digits_parse(p) < 0)
            return -1;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integral = 0;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (digits_parse(p) < 0)
            return -1;
    }

    /* An integer that fits int64 needs no strtod: converting it rounds to the nearest double, as
     * strtod would (and -0 keeps its sign). */
    if (integral && integer_parse(p->s, int_start, int_end, negative, &v->integer)) {
        v->type = JSON_NUMBER;
        v->is_integer = 1;
        v->number = negative && v->integer == 0 ? -0.0 : (double)v->integer;
        return 0;
    }
    v->integer = 0;

    /* strtod needs a NUL-terminated copy; the grammar above already held, so strtod cannot
     * wander into hex floats or "inf". */
    point = localeconv()->decimal_point;
    n = p->pos - start;
    if (n >= sizeof(small)) {
        buf = malloc(n + 1);
        if (!buf) {
            parser_fail_oom(p);
            return -1;
        }
    }
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    /* strtod follows LC_NUMERIC; a process that set a locale with a decimal comma would
     * otherwise stop at the '.'. */
    if (point && point[0] && point[0] != '.' && point[1] == '\0') {
        char *dot = strchr(buf, '.');
        if (dot)
            *dot = point[0];
    }
    d = strtod(buf, &stop);
    if (stop != buf + n) {
        if (buf != small)
            free(buf);
        parser_fail(p, start, "invalid number");
        return -1;
    }
    if (buf != small)
        free(buf);
    if (isinf(d)) {
        parser_fail(p, start, "number out of range");
        return -1;
    }
    v->type = JSON_NUMBER;
    v->number = d;
    return 0;
}

static int parse_literal(parser_t *p, json_value_t *v)
{
    static const struct {
        const char *word;
        json_type_t type;
        int boolean;
    } literals[] = {{"true", JSON_BOOL, 1}, {"false", JSON_BOOL, 0}, {"null", JSON_NULL, 0}};
    size_t left = p->len - p->pos;
    for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); i++) {
        size_t wn = strlen(literals[i].word);
        if (left >= wn && memcmp(p->s + p->pos, literals[i].word, wn) == 0) {
            v->type = literals[i].type;
            v->boolean = literals[i].boolean;
            p->pos += wn;
            return 0;
        }
        /* A cut-off literal is a truncated document, not a misspelt one. */
        if (left < wn && memcmp(p->s + p->pos, literals[i].word, left) == 0) {
            parser_fail(p, p->len, "unexpected end of input");
            return -1;
        }
    }
    parser_fail(p, p->pos, "expected a value");
    return -1;
}

/* Room for one more item (and key, for objects) in v; cap is the current capacity. */
static int items_reserve(parser_t *p, json_value_t *v, size_t *cap)
{
    size_t ncap;
    if (v->n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 4;
    if (ncap > SIZE_MAX / sizeof(json_value_t)) {
        parser_fail_oom(p);
        return -1;
    }
    json_value_t *items = realloc(v->items, ncap * sizeof(*items));
    if (!items) {
        parser_fail_oom(p);
        return -1;
    }
    v->items = items;
    if (v->type == JSON_OBJECT) {
        char **keys = realloc(v->keys, ncap * sizeof(*keys));
        if (!keys) {
            parser_fail_oom(p);
            return -1;
        }
        v->keys = keys;
    }
    *cap = ncap;
    return 0;
}

static size_t key_hash(const char *key)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a 64 */
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        h ^= *k;
        h *= UINT64_C(1099511628211);
    }
    return (size_t)h;
}

/* Whether key is among keys[0..n): 1 if so, else 0 after recording it as index n; -1 out of
 * memory. */
static int keyset_check(keyset_t *ks, char *const *keys, size_t n, const char *key)
{
    size_t mask, h;
    if (n < JSON_LINEAR_KEYS) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(keys[i], key) == 0)
                return 1;
        }
        return 0;
    }
    if (ks->nslots / 2 < n + 1) {
        /* Grow to keep the load under a half, and re-insert the keys seen so far (they are
         * distinct, so no comparisons). */
        size_t nslots = ks->nslots ? ks->nslots : 4 * JSON_LINEAR_KEYS;
        while (nslots / 2 < n + 1) {
            if (nslots > SIZE_MAX / 2 / sizeof(size_t))
                return -1;
            nslots *= 2;
        }
        size_t *slots = calloc(nslots, sizeof(*slots));
        if (!slots)
            return -1;
        for (size_t i = 0; i < n; i++) {
            h = key_hash(keys[i]) & (nslots - 1);
            while (slots[h])
                h = (h + 1) & (nslots - 1);
            slots[h] = i + 1;
        }
        free(ks->slots);
        ks->slots = slots;
        ks->nslots = nslots;
    }
    mask = ks->nslots - 1;
    h = key_hash(key) & mask;
    while (ks->slots[h]) {
        if (strcmp(keys[ks->slots[h] - 1], key) == 0)
            return 1;
        h = (h + 1) & mask;
    }
    ks->slots[h] = n + 1;
    return 0;
}

/* After a ',' inside a container: a closing bracket here is a trailing comma. */
static int comma_check(parser_t *p, size_t comma_at, unsigned char close)
{
    parser_skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        parser_fail(p, comma_at, "trailing comma");
        return -1;
    }
    return 0;
}

static int parse_array(parser_t *p, json_value_t *v, int depth)
{
    size_t cap = 0;
    if (depth > JSON_DEPTH_MAX) {
        parser_fail(p, p->pos, "nesting deeper than 64");
        return -1;
    }
    v->type = JSON_ARRAY;
    p->pos++;
    parser_skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (items_reserve(p, v, &cap) < 0)
            goto fail;
        memset(&v->items[v->n], 0, sizeof(v->items[0]));
        if (parse_value(p, &v->items[v->n], depth) < 0)
            goto fail;
        v->n++;
        parser_skip_ws(p);
        if (p->pos >= p->len) {
            parser_fail(p, p->pos, "unexpected end of input");
            goto fail;
        }
        if (p->s[p->pos] == ']') {
            p->pos++;
            return 0;
        }
        if (p->s[p->pos] != ',') {
            parser_fail(p, p->pos, "expected ',' or ']'");
            goto fail;
        }
        p->pos++;
        if (comma_check(p, p->pos - 1, ']') < 0)
            goto fail;
    }
fail:
    json_clear(v);
    return -1;
}

static int parse_object(parser_t *p, json_value_t *v, int depth)
{
    size_t cap = 0;
    keyset_t ks = {NULL, 0};
    if (depth > JSON_DEPTH_MAX) {
        parser_fail(p, p->pos, "nesting deeper than 64");
        return -1;
    }
    v->type = JSON_OBJECT;
    p->pos++;
    parser_skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0, key_at;
        int seen;
        if (items_reserve(p, v, &cap) < 0)
            goto fail;
        parser_skip_ws(p);
        if (p->pos >= p->len) {
            parser_fail(p, p->pos, "unexpected end of input");
            goto fail;
        }
        if (p->s[p->pos] != '"') {
            parser_fail(p, p->pos, "expected a string key");
            goto fail;
        }
        key_at = p->pos;
        if (parse_string(p, &key, &key_len) < 0)
            goto fail;
        seen = keyset_check(&ks, v->keys, v->n, key);
        if (seen != 0) {
            free(key);
            if (seen < 0)
                parser_fail_oom(p);
            else
                parser_fail(p, key_at, "duplicate key");
            goto fail;
        }
        /* Stored now so the key set's index n points at it; counted in v->n only once its value
         * is parsed, so until then a failure frees it here. */
        v->keys[v->n] = key;
        parser_skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') {
            free(key);
            if (p->pos >= p->len)
                parser_fail(p, p->pos, "unexpected end of input");
            else
                parser_fail(p, p->pos, "expected ':'");
            goto fail;
        }
        p->pos++;
        memset(&v->items[v->n], 0, sizeof(v->items[0]));
        if (parse_value(p, &v->items[v->n], depth) < 0) {
            free(key);
            goto fail;
        }
        v->n++;
        parser_skip_ws(p);
        if (p->pos >= p->len) {
            parser_fail(p, p->pos, "unexpected end of input");
            goto fail;
        }
        if (p->s[p->pos] == '}') {
            p->pos++;
            free(ks.slots);
            return 0;
        }
        if (p->s[p->pos] != ',') {
            parser_fail(p, p->pos, "expected ',' or '}'");
            goto fail;
        }
        p->pos++;
        if (comma_check(p, p->pos - 1, '}') < 0)
            goto fail;
    }
fail:
    free(ks.slots);
    json_clear(v);
    return -1;
}

/* Parses one value at p->pos into v (zeroed). depth is the nesting of the container holding it.
 * On failure v holds nothing. */
static int parse_value(parser_t *p, json_value_t *v, int depth)
{
    unsigned char c;
    parser_skip_ws(p);
    if (p->pos >= p->len) {
        parser_fail(p, p->pos, "unexpected end of input");
        return -1;
    }
    c = p->s[p->pos];
    if (c == '{')
        return parse_object(p, v, depth + 1);
    if (c == '[')
        return parse_array(p, v, depth + 1);
    if (c == '"') {
        if (parse_string(p, &v->string, &v->string_len) < 0)
            return -1;
        v->type = JSON_STRING;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p, v);
    return parse_literal(p, v);
}

int json_parse_next(const char *text, size_t len, size_t *pos, json_value_t *out, char *err,
                    size_t errlen)
{
    parser_t p = {(const unsigned char *)text, text ? len : 0, *pos, err, errlen, 0};
    memset(out, 0, sizeof(*out));
    if (parse_value(&p, out, 0) < 0)
        return -1;
    *pos = p.pos;
    return 0;
}

json_value_t *json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    parser_t p = {(const unsigned char *)text, text ? len : 0, 0, err, errlen, 0};
    json_value_t *root = calloc(1, sizeof(*root));
    if (!root) {
        parser_fail_oom(&p);
        return NULL;
    }
    if (parse_value(&p, root, 0) < 0) {
        free(root);
        return NULL;
    }
    parser_skip_ws(&p);
    if (p.pos < p.len) {
        parser_fail(&p, p.pos, "unexpected characters after the value");
        json_free(root);
        return NULL;
    }
    return root;
}

void json_free(json_value_t *v)
{
    if (!v)
        return;
    json_clear(v);
    free(v);
}

const json_value_t *json_get(const json_value_t *v, const char *key)
{
    if (!v || v->type != JSON_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->keys[i], key) == 0)
            return &v->items[i];
    }
    return NULL;
}
