/* Tests the strict JSON parser: good documents and their DOM, exact integers at the int64 limits,
 * one test per kind of refusal with the byte offset in the message, json_get, json_parse_next
 * (a value out of a larger text), and a deterministic fuzz loop (every prefix and thousands of
 * mutations of the good documents) that must never crash or read outside the text; run under
 * ASan it catches over-reads, because every text is parsed from an allocation of exactly its
 * length. And the writer: json_escape's escapes, every byte value, non-ASCII, numbers and the
 * growable buffer, each checked by a round trip through the parser. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "json.h"
#include "test.h"

/* Parses s (strlen) from an exact-size heap copy, so ASan sees any read past the end. */
static json_value_t *parse_exact(const char *s, size_t len, char *err, size_t errlen)
{
    char *copy = malloc(len ? len : 1);
    json_value_t *v;
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    err[0] = '\0';
    v = json_parse(copy, len, err, errlen);
    free(copy);
    return v;
}

static json_value_t *parse_str(const char *s, char *err, size_t errlen)
{
    return parse_exact(s, strlen(s), err, errlen);
}

/* Checks text is refused with exactly the message want. */
static void check_refused(const char *text, size_t len, const char *want)
{
    char err[256];
    json_value_t *v = parse_exact(text, len, err, sizeof(err));
    CHECK_MSG(v == NULL, "\"%s\" was accepted", text);
    CHECK_MSG(strcmp(err, want) == 0, "\"%s\": got \"%s\", want \"%s\"", text, err, want);
    json_free(v);
}

static void refused(const char *text, const char *want)
{
    check_refused(text, strlen(text), want);
}

static const char *const good_docs[] = {
    "{\"__metadata__\":{\"a\":\"b\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,"
    "24]}}",
    " { \"a\" : [ 1 , -2.5e3 , true , false , null , { } , [ ] , \"x\" ] , \"b\" : { \"c\" : { "
    "\"d\" : [ [ [ 0 ] ] ] } } } \n",
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac "
    "\xf0\x9f\x98\x80\"",
    "[9223372036854775807,-9223372036854775808,9223372036854775808,-0,0.5,1E+3,1e-400,"
    "123456789012345678901234567890]",
    "{\"architectures\":[\"BertModel\"],\"hidden_size\":768,\"layer_norm_eps\":1e-12,"
    "\"vocab_size\":30522,\"torch_dtype\":\"float32\",\"use_cache\":true,\"pad_token_id\":0}",
    "true",
    "null",
    "-0.0e-0",
};
#define N_GOOD (sizeof(good_docs) / sizeof(good_docs[0]))

static void test_good_docs(void)
{
    char err[256];
    for (size_t i = 0; i < N_GOOD; i++) {
        json_value_t *v = parse_str(good_docs[i], err, sizeof(err));
        CHECK_MSG(v != NULL, "document %zu: %s", i, err);
        json_free(v);
    }
}

static void test_safetensors_header(void)
{
    char err[256];
    json_value_t *v = parse_str(good_docs[0], err, sizeof(err));
    CHECK(v && v->type == JSON_OBJECT && v->n == 2);
    const json_value_t *meta = json_get(v, "__metadata__");
    CHECK(meta && meta->type == JSON_OBJECT && meta->n == 1);
    const json_value_t *a = json_get(meta, "a");
    CHECK(a && a->type == JSON_STRING && a->string_len == 1);
    CHECK_STR(a ? a->string : NULL, "b");
    const json_value_t *w = json_get(v, "w");
    CHECK(w && w->type == JSON_OBJECT && w->n == 3);
    const json_value_t *dtype = json_get(w, "dtype");
    CHECK_STR(dtype && dtype->type == JSON_STRING ? dtype->string : NULL, "F32");
    const json_value_t *shape = json_get(w, "shape");
    CHECK(shape && shape->type == JSON_ARRAY && shape->n == 2);
    CHECK(shape && shape->n == 2 && shape->items[0].is_integer && shape->items[0].integer == 2 &&
          shape->items[1].is_integer && shape->items[1].integer == 3);
    const json_value_t *off = json_get(w, "data_offsets");
    CHECK(off && off->type == JSON_ARRAY && off->n == 2 && off->items[0].integer == 0 &&
          off->items[1].integer == 24 && off->items[1].number == 24.0);
    /* Keys keep document order. */
    CHECK(v && v->n == 2 && strcmp(v->keys[0], "__metadata__") == 0 &&
          strcmp(v->keys[1], "w") == 0);
    json_free(v);
}

static void test_nested(void)
{
    char err[256];
    json_value_t *v = parse_str(good_docs[1], err, sizeof(err));
    CHECK(v && v->type == JSON_OBJECT && v->n == 2);
    const json_value_t *a = json_get(v, "a");
    CHECK(a && a->type == JSON_ARRAY && a->n == 8);
    if (a && a->n == 8) {
        CHECK(a->items[0].type == JSON_NUMBER && a->items[0].is_integer &&
              a->items[0].integer == 1);
        CHECK(a->items[1].type == JSON_NUMBER && !a->items[1].is_integer &&
              a->items[1].number == -2500.0);
        CHECK(a->items[2].type == JSON_BOOL && a->items[2].boolean == 1);
        CHECK(a->items[3].type == JSON_BOOL && a->items[3].boolean == 0);
        CHECK(a->items[4].type == JSON_NULL);
        CHECK(a->items[5].type == JSON_OBJECT && a->items[5].n == 0);
        CHECK(a->items[6].type == JSON_ARRAY && a->items[6].n == 0);
        CHECK(a->items[7].type == JSON_STRING && strcmp(a->items[7].string, "x") == 0);
    }
    const json_value_t *d = json_get(json_get(json_get(v, "b"), "c"), "d");
    CHECK(d && d->type == JSON_ARRAY && d->n == 1 && d->items[0].type == JSON_ARRAY &&
          d->items[0].items[0].type == JSON_ARRAY && d->items[0].items[0].items[0].integer == 0);
    json_free(v);
}

static void test_escapes(void)
{
    char err[256];
    json_value_t *v = parse_str(good_docs[2], err, sizeof(err));
    /* Every escape, \u in both cases, a surrogate pair to 4-byte UTF-8, and raw UTF-8 kept. */
    static const char want[] = "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 caf\xc3\xa9 "
                               "\xe2\x82\xac \xf0\x9f\x98\x80";
    CHECK(v && v->type == JSON_STRING);
    CHECK(v && v->string_len == sizeof(want) - 1 && memcmp(v->string, want, sizeof(want)) == 0);
    json_free(v);

    v = parse_str("\"\"", err, sizeof(err));
    CHECK(v && v->type == JSON_STRING && v->string_len == 0 && v->string[0] == '\0');
    json_free(v);
    /* U+10FFFF, the last code point, as a pair. */
    v = parse_str("\"\\uDBFF\\uDFFF\"", err, sizeof(err));
    CHECK(v && v->string_len == 4 && memcmp(v->string, "\xf4\x8f\xbf\xbf", 5) == 0);
    json_free(v);
}

static void test_numbers(void)
{
    char err[256];
    json_value_t *v = parse_str(good_docs[3], err, sizeof(err));
    CHECK(v && v->type == JSON_ARRAY && v->n == 8);
    if (v && v->n == 8) {
        const json_value_t *it = v->items;
        CHECK(it[0].is_integer && it[0].integer == INT64_MAX);
        CHECK(it[1].is_integer && it[1].integer == INT64_MIN);
        /* One past INT64_MAX: a double, not an integer. */
        CHECK(!it[2].is_integer && it[2].number == 9223372036854775808.0);
        CHECK(it[3].is_integer && it[3].integer == 0 && it[3].number == 0.0 &&
              signbit(it[3].number));
        CHECK(!it[4].is_integer && it[4].number == 0.5);
        CHECK(!it[5].is_integer && it[5].number == 1000.0);
        CHECK(!it[6].is_integer && it[6].number == 0.0); /* underflow is accepted as 0 */
        CHECK(!it[7].is_integer && it[7].number == 1.2345678901234568e29);
    }
    json_free(v);

    static const struct {
        const char *text;
        int is_integer;
        int64_t integer;
        double number;
    } cases[] = {
        {"0", 1, 0, 0.0},
        {"1.0", 0, 0, 1.0},
        {"1e3", 0, 0, 1000.0},
        {"-9223372036854775809", 0, 0, -9223372036854775808.0},
        {"-1.5e-3", 0, 0, -0.0015},
        {"3.141592653589793", 0, 0, 3.141592653589793},
        {"9007199254740993", 1, 9007199254740993, 9007199254740992.0}, /* 2^53 + 1: exact */
        {"  42  ", 1, 42, 42.0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        v = parse_str(cases[i].text, err, sizeof(err));
        CHECK_MSG(v && v->type == JSON_NUMBER && v->is_integer == cases[i].is_integer &&
                      v->integer == cases[i].integer && v->number == cases[i].number,
                  "\"%s\": %s", cases[i].text, v ? "wrong value" : err);
        json_free(v);
    }
}

static void test_refusals(void)
{
    /* Empty and truncated input. */
    refused("", "json: unexpected end of input at byte 0");
    refused(" \n\t", "json: unexpected end of input at byte 3");
    refused("[1,2", "json: unexpected end of input at byte 4");
    refused("{\"a\":1", "json: unexpected end of input at byte 6");
    refused("{\"a\"", "json: unexpected end of input at byte 4");
    refused("\"abc", "json: unterminated string at byte 4");
    refused("\"abc\\\"", "json: unterminated string at byte 6");
    refused("tru", "json: unexpected end of input at byte 3");
    refused("1.", "json: unexpected end of input at byte 2");
    refused("-", "json: unexpected end of input at byte 1");
    refused("[1e", "json: unexpected end of input at byte 3");
    /* Trailing commas. */
    refused("[1,2,]", "json: trailing comma at byte 4");
    refused("{\"a\":1, }", "json: trailing comma at byte 6");
    refused("[,1]", "json: expected a value at byte 1");
    refused("[1 2]", "json: expected ',' or ']' at byte 3");
    refused("{\"a\":1 \"b\":2}", "json: expected ',' or '}' at byte 7");
    refused("{\"a\" 1}", "json: expected ':' at byte 5");
    refused("{a:1}", "json: expected a string key at byte 1");
    /* Numbers. */
    refused("01", "json: leading zero in number at byte 0");
    refused("[1, -012]", "json: leading zero in number at byte 5");
    refused("1.e5", "json: invalid number at byte 2");
    refused("-a", "json: invalid number at byte 1");
    refused("+1", "json: expected a value at byte 0");
    refused(".5", "json: expected a value at byte 0");
    refused("NaN", "json: expected a value at byte 0");
    refused("[Infinity]", "json: expected a value at byte 1");
    refused("-Infinity", "json: invalid number at byte 1");
    refused("1e999", "json: number out of range at byte 0");
    refused("[-1e400]", "json: number out of range at byte 1");
    /* Escapes and surrogates. */
    refused("\"a\\x\"", "json: invalid escape in string at byte 2");
    refused("\"\\u12G4\"", "json: invalid \\u escape at byte 1");
    refused("\"\\u12\"", "json: invalid \\u escape at byte 1");
    refused("\"ab\\ud800\"", "json: lone surrogate in \\u escape at byte 3");
    refused("\"\\udc00\"", "json: lone surrogate in \\u escape at byte 1");
    refused("\"\\ud800\\u0041\"", "json: lone surrogate in \\u escape at byte 1");
    refused("\"\\ud800\\ud800\"", "json: lone surrogate in \\u escape at byte 1");
    refused("\"a\\u0000b\"", "json: \\u0000 in string at byte 2");
    /* Control characters, raw. */
    refused("\"a\x01\"", "json: control character in string at byte 2");
    refused("[\"a\nb\"]", "json: control character in string at byte 3");
    check_refused("\"a\0b\"", 5, "json: control character in string at byte 2");
    /* Invalid UTF-8: bad continuation, overlong, encoded surrogate, above U+10FFFF, cut short,
     * a stray continuation byte, and a byte that never starts a sequence. */
    refused("\"\xc3\x28\"", "json: invalid UTF-8 in string at byte 1");
    refused("\"x\xc0\xaf\"", "json: invalid UTF-8 in string at byte 2");
    refused("\"\xe0\x80\xaf\"", "json: invalid UTF-8 in string at byte 1");
    refused("\"\xed\xa0\x80\"", "json: invalid UTF-8 in string at byte 1");
    refused("\"\xf4\x90\x80\x80\"", "json: invalid UTF-8 in string at byte 1");
    refused("\"\xe2\x82\"", "json: invalid UTF-8 in string at byte 1");
    refused("\"\x80\"", "json: invalid UTF-8 in string at byte 1");
    refused("\"\xff\"", "json: invalid UTF-8 in string at byte 1");
    refused("\xef\xbb\xbf{}", "json: expected a value at byte 0"); /* a BOM */
    /* Duplicate keys, also when spelt differently. */
    refused("{\"a\":1,\"a\":2}", "json: duplicate key at byte 7");
    refused("{\"a\":1,\"b\":{\"a\":1},\"\\u0061\":2}", "json: duplicate key at byte 19");
    /* Trailing garbage, comments, other literals. */
    refused("1 2", "json: unexpected characters after the value at byte 2");
    refused("{}}", "json: unexpected characters after the value at byte 2");
    refused("{} x", "json: unexpected characters after the value at byte 3");
    refused("[1] // c", "json: unexpected characters after the value at byte 4");
    refused("/* c */ 1", "json: expected a value at byte 0");
    refused("'a'", "json: expected a value at byte 0");
    refused("trux", "json: expected a value at byte 0");
    refused("nulll", "json: unexpected characters after the value at byte 4");
    refused("\f1", "json: expected a value at byte 0"); /* form feed is not JSON whitespace */
}

/* n nested arrays around 0, or n nested objects {"k": ... 0 ...}. */
static char *nested_make(size_t n, int objects, size_t *len)
{
    size_t open = objects ? 5 : 1, size = n * (open + 1) + 1;
    char *s = malloc(size + 1);
    size_t k = 0;
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        memcpy(s + k, objects ? "{\"k\":" : "[", open);
        k += open;
    }
    s[k++] = '0';
    for (size_t i = 0; i < n; i++)
        s[k++] = objects ? '}' : ']';
    s[k] = '\0';
    *len = k;
    return s;
}

static void test_depth(void)
{
    char err[256], want[128];
    size_t len;
    for (int objects = 0; objects <= 1; objects++) {
        char *s = nested_make(JSON_DEPTH_MAX, objects, &len);
        json_value_t *v = s ? parse_exact(s, len, err, sizeof(err)) : NULL;
        CHECK_MSG(v != NULL, "depth 64: %s", err);
        json_free(v);
        free(s);

        s = nested_make(JSON_DEPTH_MAX + 1, objects, &len);
        snprintf(want, sizeof(want), "json: nesting deeper than 64 at byte %d",
                 JSON_DEPTH_MAX * (objects ? 5 : 1));
        if (s)
            check_refused(s, len, want);
        free(s);
    }
    /* Far deeper than any stack would take if the bound were missing. */
    char *s = nested_make(1000000, 0, &len);
    if (s)
        check_refused(s, len, "json: nesting deeper than 64 at byte 64");
    free(s);
}

static void test_large_object(void)
{
    /* Enough members for the hashed duplicate check; the last key repeats the first. */
    char err[256], want[64];
    size_t cap = 2000 * 16 + 64, k = 0;
    char *s = malloc(cap);
    if (!s) {
        CHECK(0);
        return;
    }
    s[k++] = '{';
    for (int i = 0; i < 2000; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s\"t%d\":%d", i ? "," : "", i, i);
    size_t end = k;
    s[k++] = '}';
    json_value_t *v = parse_exact(s, k, err, sizeof(err));
    CHECK(v && v->n == 2000);
    const json_value_t *last = json_get(v, "t1999");
    CHECK(last && last->is_integer && last->integer == 1999);
    json_free(v);

    snprintf(want, sizeof(want), "json: duplicate key at byte %zu", end + 1);
    k = end + (size_t)snprintf(s + end, cap - end, ",\"t0\":0}");
    check_refused(s, k, want);
    free(s);
}

static void test_get(void)
{
    char err[256];
    json_value_t *v = parse_str("{\"a\":1,\"\":2,\"b\":[3]}", err, sizeof(err));
    CHECK(json_get(v, "a") && json_get(v, "a")->integer == 1);
    CHECK(json_get(v, "") && json_get(v, "")->integer == 2);
    CHECK(json_get(v, "c") == NULL);
    CHECK(json_get(NULL, "a") == NULL);
    CHECK(json_get(json_get(v, "b"), "a") == NULL); /* an array */
    CHECK(json_get(v, NULL) == NULL);
    json_free(v);
    json_free(NULL);
}

static void test_escape(void)
{
    char out[64], err[256];
    const char *s = "a\"b\\c\n\x01\x1f caf\xc3\xa9/";
    const char *want = "\"a\\\"b\\\\c\\n\\u0001\\u001f caf\xc3\xa9/\"";
    size_t n = json_escape(s, out, sizeof(out));
    CHECK(n == strlen(want));
    CHECK_STR(out, want);
    /* Truncated like snprintf: the full length back, cap - 1 bytes and a NUL written. */
    CHECK(json_escape(s, out, 5) == strlen(want));
    CHECK_STR(out, "\"a\\\"");
    CHECK(json_escape(s, NULL, 0) == strlen(want));
    out[0] = 'x';
    CHECK(json_escape("", out, 1) == 2 && out[0] == '\0');
    CHECK(json_escape("", out, 3) == 2);
    CHECK_STR(out, "\"\"");
    /* What json_escape writes parses back to the same bytes. */
    json_value_t *v = parse_str(out, err, sizeof(err));
    CHECK(v && v->type == JSON_STRING && v->string_len == 0);
    json_free(v);
    json_escape(s, out, sizeof(out));
    v = parse_str(out, err, sizeof(err));
    CHECK(v && v->type == JSON_STRING && strcmp(v->string, s) == 0);
    json_free(v);
}

/* Invariants of an accepted DOM: strings NUL-terminated at string_len, keys present, and every
 * string and key surviving json_escape and a parse back. Returns the number of violations. */
static int dom_check(const json_value_t *v)
{
    int bad = 0;
    char buf[512], err[256];
    if (v->type == JSON_STRING) {
        if (!v->string || strlen(v->string) != v->string_len)
            return 1;
        size_t n = json_escape(v->string, buf, sizeof(buf));
        if (n < sizeof(buf)) {
            json_value_t *back = parse_exact(buf, n, err, sizeof(err));
            bad += !back || back->type != JSON_STRING || strcmp(back->string, v->string) != 0;
            json_free(back);
        }
        return bad;
    }
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (size_t i = 0; i < v->n; i++) {
            if (v->type == JSON_OBJECT && !v->keys[i])
                return bad + 1;
            bad += dom_check(&v->items[i]);
        }
    }
    return bad;
}

/* Either a value whose DOM holds together, or NULL with a "json: " message. Returns 1 if so. */
static int fuzz_one(const char *text, size_t len)
{
    char err[256];
    json_value_t *v = parse_exact(text, len, err, sizeof(err));
    int ok;
    if (v) {
        ok = dom_check(v) == 0;
        json_free(v);
    } else {
        ok = strncmp(err, "json: ", 6) == 0 &&
             (strstr(err, " at byte ") != NULL || strcmp(err, "json: out of memory") == 0);
    }
    if (!ok)
        fprintf(stderr, "fuzz: bad outcome for %zu bytes: %.*s\n", len, (int)len, text);
    return ok;
}

static uint64_t rng_next(uint64_t *state)
{
    /* xorshift64*: deterministic, so a failure reproduces. */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

static void test_fuzz(void)
{
    static const char interesting[] =
        "{}[],:\"\\u0123456789-+.eEtfn \n\xc3\xa9\xed\xa0\x80\xf0\x01";
    uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
    int prefixes_ok = 1, mutants_ok = 1, accepted = 0;
    char buf[512];

    for (size_t d = 0; d < N_GOOD; d++) {
        size_t len = strlen(good_docs[d]);
        for (size_t n = 0; n <= len; n++)
            prefixes_ok &= fuzz_one(good_docs[d], n);
    }
    CHECK(prefixes_ok);

    for (int iter = 0; iter < 5000; iter++) {
        const char *src = good_docs[rng_next(&rng) % N_GOOD];
        size_t len = strlen(src);
        memcpy(buf, src, len);
        int edits = 1 + (int)(rng_next(&rng) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = len ? (size_t)(rng_next(&rng) % len) : 0;
            unsigned char c =
                rng_next(&rng) % 2
                    ? (unsigned char)(rng_next(&rng) & 0xff)
                    : (unsigned char)interesting[rng_next(&rng) % (sizeof(interesting) - 1)];
            switch (rng_next(&rng) % 4) {
            case 0: /* overwrite */
                if (len)
                    buf[at] = (char)c;
                break;
            case 1: /* insert */
                if (len + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = (char)c;
                    len++;
                }
                break;
            case 2: /* delete */
                if (len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            default: /* cut */
                len = at;
                break;
            }
        }
        char err[256];
        json_value_t *v = parse_exact(buf, len, err, sizeof(err));
        accepted += v != NULL;
        json_free(v);
        mutants_ok &= fuzz_one(buf, len);
    }
    CHECK(mutants_ok);
    /* Some mutants stay valid JSON (a digit for a digit), so both outcomes were exercised. */
    CHECK_MSG(accepted > 0 && accepted < 5000, "%d of 5000 mutants accepted", accepted);
}

/* json_string_array: what it writes parses back to the same strings, escapes included. */
static void test_string_array(void)
{
    const char *v[] = {"plain", "quote \" backslash \\", "line\nbreak", "", "caf\xc3\xa9"};
    char err[128];
    char *text = json_string_array(v, 5);
    CHECK(text != NULL);
    if (!text)
        return;
    json_value_t *a = json_parse(text, strlen(text), err, sizeof err);
    CHECK_MSG(a && a->type == JSON_ARRAY && a->n == 5, "%s", text);
    for (size_t i = 0; a && i < a->n && i < 5; i++)
        CHECK_STR(a->items[i].string, v[i]);
    json_free(a);
    free(text);
    text = json_string_array(v, 0);
    CHECK(text && strcmp(text, "[]") == 0);
    free(text);
}

/* json_parse_next: values one after another out of one text, each ending where the next
 * begins, error offsets counted from the start of the text, len a hard end. */
static void test_parse_next(void)
{
    const char *text = "  {\"a\":[1,2]} \"x\\ty\"-2.5e1true,1.2.3 [1,]";
    size_t len = strlen(text), pos = 0;
    char err[256];
    json_value_t v;

    CHECK(json_parse_next(text, len, &pos, &v, err, sizeof(err)) == 0);
    CHECK(v.type == JSON_OBJECT && v.n == 1 && pos == 13);
    CHECK(json_get(&v, "a") && json_get(&v, "a")->n == 2);
    json_clear(&v);
    CHECK(v.type == JSON_NULL && v.n == 0 && v.items == NULL);
    CHECK(json_parse_next(text, len, &pos, &v, err, sizeof(err)) == 0);
    CHECK(v.type == JSON_STRING && strcmp(v.string, "x\ty") == 0 && pos == 20);
    json_clear(&v);
    CHECK(json_parse_next(text, len, &pos, &v, err, sizeof(err)) == 0);
    CHECK(v.type == JSON_NUMBER && v.number == -25.0 && pos == 26);
    CHECK(json_parse_next(text, len, &pos, &v, err, sizeof(err)) == 0);
    CHECK(v.type == JSON_BOOL && v.boolean == 1 && pos == 30);
    /* The caller walks the punctuation; a number stops where its grammar does. */
    pos++;
    CHECK(json_parse_next(text, len, &pos, &v, err, sizeof(err)) == 0);
    CHECK(v.type == JSON_NUMBER && v.number == 1.2 && pos == 34);
    /* A failure leaves pos where it was and v a JSON_NULL. */
    CHECK(json_parse_next(text, len, &pos, &v, err, sizeof(err)) == -1);
    CHECK_STR(err, "json: expected a value at byte 34");
    CHECK(pos == 34 && v.type == JSON_NULL);
    pos = 37;
    CHECK(json_parse_next(text, len, &pos, &v, err, sizeof(err)) == -1);
    CHECK_STR(err, "json: trailing comma at byte 39");
    CHECK(pos == 37 && v.type == JSON_NULL);
    json_clear(&v);
    /* len is the end, whatever follows it. */
    pos = 0;
    CHECK(json_parse_next("12345", 3, &pos, &v, err, sizeof(err)) == 0);
    CHECK(v.is_integer && v.integer == 123 && pos == 3);
    pos = 0;
    CHECK(json_parse_next("[\"ab\"]", 4, &pos, &v, err, sizeof(err)) == -1);
    CHECK_STR(err, "json: unterminated string at byte 4");
    pos = 9;
    CHECK(json_parse_next("[1]", 3, &pos, &v, err, sizeof(err)) == -1);
    CHECK_STR(err, "json: unexpected end of input at byte 9");
}

/* Every byte value 1..255 through the writer: control characters escaped (\n, \r, \t short, the
 * rest as \u00XX), '"' and '\\' escaped, everything else copied; and what is written parses back
 * to the same bytes when they are UTF-8. */
static void test_write_escapes(void)
{
    char out[16], err[256];
    for (int c = 1; c < 0x80; c++) {
        char s[2] = {(char)c, '\0'}, want[16];
        if (c == '"' || c == '\\')
            snprintf(want, sizeof(want), "\"\\%c\"", c);
        else if (c == '\n' || c == '\r' || c == '\t')
            snprintf(want, sizeof(want), "\"\\%c\"", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
        else if (c < 0x20)
            snprintf(want, sizeof(want), "\"\\u%04x\"", c);
        else
            snprintf(want, sizeof(want), "\"%c\"", c);
        CHECK_MSG(json_escape(s, out, sizeof(out)) == strlen(want) && strcmp(out, want) == 0,
                  "byte %#x: %s, want %s", c, out, want);
        json_value_t *v = parse_str(out, err, sizeof(err));
        CHECK_MSG(v && v->type == JSON_STRING && strcmp(v->string, s) == 0, "byte %#x: %s", c,
                  v ? "read back wrong" : err);
        json_free(v);
    }
    /* Bytes from 0x80 are copied as they are: UTF-8 is the caller's to give. */
    for (int c = 0x80; c < 0x100; c++) {
        char s[2] = {(char)c, '\0'};
        CHECK(json_escape(s, out, sizeof(out)) == 3 && (unsigned char)out[1] == c);
    }
    CHECK(json_escape(NULL, out, sizeof(out)) == 2 && strcmp(out, "\"\"") == 0);
}

/* A document built in a json_buf_t reads back member by member: escapes, 2- to 4-byte UTF-8, a
 * long string (the buffer grows), numbers from json_buf_printf and json_double_text. */
static void test_write_buf(void)
{
    const char *texts[] = {"", "plain", "quote \" backslash \\ slash /",
                           "lines\n\r\ttabs \b\f \x01\x1f\x7f",
                           "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"};
    char err[256], num[JSON_DOUBLE_MAX], *big = malloc(5001);
    json_buf_t b = {0};

    CHECK(big != NULL);
    if (!big)
        return;
    for (int i = 0; i < 5000; i++)
        big[i] = i % 7 == 0 ? '"' : (char)('a' + i % 26);
    big[5000] = '\0';
    json_buf_puts(&b, "{");
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_buf_printf(&b, "\"s%zu\":", i);
        json_buf_string(&b, texts[i]);
        json_buf_puts(&b, ",");
    }
    json_buf_puts(&b, "\"big\":");
    json_buf_string(&b, big);
    json_buf_printf(&b, ",\"n\":%d,\"x\":%s", -7, json_double_text(0.1, num));
    json_buf_raw(&b, "}garbage", 1);
    CHECK(!b.failed && b.len == strlen(b.p));
    json_value_t *v = b.p ? parse_exact(b.p, b.len, err, sizeof(err)) : NULL;
    CHECK_MSG(v && v->type == JSON_OBJECT, "%s: %s", err, b.p ? b.p : "(null)");
    for (size_t i = 0; v && i < sizeof(texts) / sizeof(texts[0]); i++) {
        char key[8];
        snprintf(key, sizeof(key), "s%zu", i);
        const json_value_t *m = json_get(v, key);
        CHECK_MSG(m && m->type == JSON_STRING && strcmp(m->string, texts[i]) == 0, "%s", key);
    }
    const json_value_t *m = json_get(v, "big");
    CHECK(m && m->type == JSON_STRING && m->string_len == 5000 && strcmp(m->string, big) == 0);
    CHECK(json_get(v, "n") && json_get(v, "n")->integer == -7);
    CHECK(json_get(v, "x") && json_get(v, "x")->number == 0.1);
    json_free(v);
    /* Reset keeps the allocation for the next document; free leaves a zeroed buffer. */
    char *p = b.p;
    json_buf_reset(&b);
    CHECK(b.len == 0 && b.p == p && b.p[0] == '\0' && !b.failed);
    json_buf_puts(&b, "[]");
    CHECK_STR(b.p, "[]");
    json_buf_free(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
    free(big);
}

/* json_double_text: the shortest text that reads back as exactly the same double, for values
 * that need 15, 16 and 17 digits, the extremes and the sign of zero; null for NaN and infinity. */
static void test_write_doubles(void)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "-0"},
        {0.1, "0.1"},
        {0.30000000000000004, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {85.86, "85.86"},
        {-122.2909874140671, "-122.2909874140671"},
        {1767225600000.0, "1767225600000"},
        {1e300, "1e+300"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {5e-324, "4.94065645841247e-324"},
    };
    char buf[JSON_DOUBLE_MAX], err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = json_double_text(cases[i].v, buf);
        CHECK_MSG(t == buf && strcmp(t, cases[i].want) == 0, "%s, want %s", t, cases[i].want);
        json_value_t *v = parse_str(t, err, sizeof(err));
        CHECK_MSG(v && v->type == JSON_NUMBER && v->number == cases[i].v &&
                      signbit(v->number) == signbit(cases[i].v),
                  "%s: %s", t, v ? "reads back as another number" : err);
        json_free(v);
    }
    CHECK_STR(json_double_text(NAN, buf), "null");
    CHECK_STR(json_double_text(INFINITY, buf), "null");
    CHECK_STR(json_double_text(-INFINITY, buf), "null");
}

int main(void)
{
    test_good_docs();
    test_safetensors_header();
    test_nested();
    test_escapes();
    test_numbers();
    test_refusals();
    test_depth();
    test_large_object();
    test_get();
    test_escape();
    test_string_array();
    test_parse_next();
    test_write_escapes();
    test_write_buf();
    test_write_doubles();
    test_fuzz();
    return TEST_DONE();
}
