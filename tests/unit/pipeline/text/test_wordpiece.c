/* Tests the WordPiece tokenizer against ids from transformers' slow BertTokenizer
 * (tests/fixtures/wordpiece), plus framing, vocab errors and hostile input. Needs the model
 * vocab: run scripts/fetch_model.sh first (or point VIGIL_MODEL_DIR at a copy). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "wordpiece.h"

#define MAX_IDS 200000

static char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *size = (size_t)n;
    }
    return buf;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Parses space-separated ids from [p, end); returns the count. */
static size_t parse_ids(const char *p, const char *end, int32_t *out, size_t max)
{
    size_t n = 0;
    while (p < end) {
        char *next;
        long v = strtol(p, &next, 10);
        if (next == p)
            break;
        if (n < max)
            out[n] = (int32_t)v;
        n++;
        p = next;
    }
    return n;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

static void test_fixture(const wordpiece_t *wp, wordpiece_scratch_t *s, const char *src)
{
    char path[4096], err[256];
    size_t size = 0;
    snprintf(path, sizeof(path), "%s/tests/fixtures/wordpiece/wordpiece_fixture.tsv", src);
    char *data = read_all(path, &size);
    CHECK(data != NULL);
    if (!data)
        return;
    int32_t *want = malloc(MAX_IDS * sizeof(int32_t));
    int32_t *got = malloc(MAX_IDS * sizeof(int32_t));
    int32_t *want_trunc = malloc(128 * sizeof(int32_t));
    int32_t enc[128];
    uint8_t mask[128];
    unsigned char *text = malloc(size / 2 + 1);
    CHECK(want && got && want_trunc && text);
    if (!want || !got || !want_trunc || !text)
        goto out;

    size_t lines = 0, mismatches = 0, fast_disagree = 0;
    char *line = data;
    while (line < data + size) {
        char *nl = memchr(line, '\n', (size_t)(data + size - line));
        char *end = nl ? nl : data + size;
        char *tab1 = memchr(line, '\t', (size_t)(end - line));
        char *tab2 = tab1 ? memchr(tab1 + 1, '\t', (size_t)(end - tab1 - 1)) : NULL;
        char *tab3 = tab2 ? memchr(tab2 + 1, '\t', (size_t)(end - tab2 - 1)) : NULL;
        CHECK(tab3 != NULL);
        if (!tab3)
            break;
        size_t tlen = 0;
        for (char *h = line; h + 1 < tab1; h += 2)
            text[tlen++] = (unsigned char)(hexval(h[0]) * 16 + hexval(h[1]));
        size_t n_want = parse_ids(tab1 + 1, tab2, want, MAX_IDS);
        size_t n_trunc = parse_ids(tab2 + 1, tab3, want_trunc, 128);
        if (tab3[1] == '0')
            fast_disagree++;

        size_t n_got = 0, n_out = 0, n_full = 0;
        int rc = wordpiece_tokenize(wp, s, (const char *)text, tlen, got, MAX_IDS, &n_got, err,
                                    sizeof(err));
        int ok = rc == 0 && n_got == n_want && n_want <= MAX_IDS &&
                 memcmp(got, want, n_want * sizeof(int32_t)) == 0;
        rc = wordpiece_encode(wp, s, (const char *)text, tlen, 128, enc, mask, &n_out, &n_full, err,
                              sizeof(err));
        ok = ok && rc == 0 && n_out == n_trunc && n_full == n_want &&
             memcmp(enc, want_trunc, n_trunc * sizeof(int32_t)) == 0;
        CHECK(ok);
        if (!ok && ++mismatches <= 5) {
            fprintf(stderr, "  fixture line %zu mismatch, text bytes: %.*s\n", lines + 1,
                    (int)(tab1 - line > 300 ? 300 : tab1 - line), line);
            fprintf(stderr, "    as text: %.*s\n", (int)(tlen > 200 ? 200 : tlen), text);
            print_ids("want", want, n_want);
            print_ids("got ", got, n_got);
            print_ids("want trunc", want_trunc, n_trunc);
            print_ids("got trunc ", enc, n_out);
        }
        lines++;
        line = end + 1;
    }
    fprintf(stderr, "fixture: %zu texts, %zu mismatches (Rust tokenizers differs on %zu)\n", lines,
            mismatches, fast_disagree);
    CHECK(lines >= 2000);
out:
    free(text);
    free(want_trunc);
    free(got);
    free(want);
    free(data);
}

static void test_framing(const wordpiece_t *wp, wordpiece_scratch_t *s)
{
    char err[256];
    int32_t ids[16];
    uint8_t mask[16];
    size_t n_out = 0, n_full = 0;
    int32_t cls = wordpiece_token_id(wp, "[CLS]"), sep = wordpiece_token_id(wp, "[SEP]");
    int32_t pad = wordpiece_token_id(wp, "[PAD]"), hello = wordpiece_token_id(wp, "hello");
    CHECK(cls >= 0 && sep >= 0 && pad >= 0 && hello >= 0);

    const char *t = "Hello hello HELLO";
    CHECK(wordpiece_encode(wp, s, t, strlen(t), 8, ids, mask, &n_out, &n_full, err, sizeof(err)) ==
          0);
    CHECK(n_out == 5 && n_full == 3);
    CHECK(ids[0] == cls && ids[1] == hello && ids[2] == hello && ids[3] == hello && ids[4] == sep);
    CHECK(ids[5] == pad && ids[7] == pad);
    CHECK(mask[0] == 1 && mask[4] == 1 && mask[5] == 0 && mask[7] == 0);

    /* Truncation keeps the first max_len-2 tokens and still ends in [SEP]. */
    CHECK(wordpiece_encode(wp, s, t, strlen(t), 3, ids, mask, &n_out, &n_full, err, sizeof(err)) ==
          0);
    CHECK(n_out == 3 && n_full == 3 && ids[0] == cls && ids[1] == hello && ids[2] == sep);
    CHECK(wordpiece_encode(wp, s, t, strlen(t), 2, ids, mask, &n_out, &n_full, err, sizeof(err)) ==
          0);
    CHECK(n_out == 2 && ids[0] == cls && ids[1] == sep);
    CHECK(wordpiece_encode(wp, s, t, strlen(t), 1, ids, mask, &n_out, &n_full, err, sizeof(err)) ==
          -1);

    /* Empty text: just the specials. */
    CHECK(wordpiece_encode(wp, s, "", 0, 4, ids, mask, &n_out, &n_full, err, sizeof(err)) == 0);
    CHECK(n_out == 2 && n_full == 0 && ids[1] == sep && ids[2] == pad && mask[2] == 0);

    /* Special tokens written in the text keep their ids; lower-case ones are plain text. */
    const char *sp = "a[CLS]b";
    CHECK(wordpiece_tokenize(wp, s, sp, strlen(sp), ids, 16, &n_full, err, sizeof(err)) == 0);
    CHECK(n_full == 3 && ids[1] == cls);
    const char *lc = "[cls]";
    CHECK(wordpiece_tokenize(wp, s, lc, strlen(lc), ids, 16, &n_full, err, sizeof(err)) == 0);
    CHECK(n_full > 1 && ids[0] != cls);

    /* A word of 101 letters is one [UNK]; 100 is split normally. */
    char word[102];
    memset(word, 'a', 101);
    word[101] = '\0';
    CHECK(wordpiece_tokenize(wp, s, word, 101, ids, 16, &n_full, err, sizeof(err)) == 0);
    CHECK(n_full == 1 && ids[0] == wordpiece_token_id(wp, "[UNK]"));
    CHECK(wordpiece_tokenize(wp, s, word, 100, ids, 16, &n_full, err, sizeof(err)) == 0);
    CHECK(n_full > 1);
}

static int write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(content, f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void test_bad_vocab(void)
{
    char err[256] = "";
    CHECK(wordpiece_new("/nonexistent/vocab.txt", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/vocab.txt") != NULL);

    char path[] = "/tmp/vigil-test-vocab-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    CHECK(write_file(path, "[PAD]\n[CLS]\n[SEP]\nhello\n") == 0);
    err[0] = '\0';
    CHECK(wordpiece_new(path, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "[UNK]") != NULL);

    /* A tiny vocab, with \r\n line ends: ids follow lines and greedy matching uses ##. */
    CHECK(write_file(path, "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nun\r\n##aff\r\n##able\r\n") == 0);
    wordpiece_t *wp = wordpiece_new(path, err, sizeof(err));
    wordpiece_scratch_t *s = wordpiece_scratch_new();
    CHECK(wp != NULL && s != NULL);
    if (wp && s) {
        int32_t ids[8];
        size_t n = 0;
        CHECK(wordpiece_vocab_size(wp) == 7);
        CHECK(wordpiece_tokenize(wp, s, "Unaffable unx", 13, ids, 8, &n, err, sizeof(err)) == 0);
        CHECK(n == 4 && ids[0] == 4 && ids[1] == 5 && ids[2] == 6 && ids[3] == 1);
    }
    wordpiece_scratch_free(s);
    wordpiece_free(wp);
    unlink(path);
}

/* Pseudo-random bytes from a fixed seed (xorshift), so failures reproduce. */
static uint32_t next_rand(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static void test_hostile(const wordpiece_t *wp, wordpiece_scratch_t *s)
{
    char err[256];
    size_t big = 1 << 20, n_full = 0, n_out = 0;
    int32_t ids[128];
    uint8_t mask[128];
    unsigned char *buf = malloc(big);
    CHECK(buf != NULL);
    if (!buf)
        return;
    uint32_t st = 12345;

    /* 1 MB of random bytes: mostly invalid UTF-8. */
    for (size_t i = 0; i < big; i++)
        buf[i] = (unsigned char)next_rand(&st);
    CHECK(wordpiece_encode(wp, s, (char *)buf, big, 128, ids, mask, &n_out, &n_full, err,
                           sizeof(err)) == 0);
    CHECK(n_out == 128 && n_full > 126);

    /* 1 MB without whitespace (one giant word: [UNK]), then 1 MB of short words. */
    memset(buf, 'x', big);
    CHECK(wordpiece_tokenize(wp, s, (char *)buf, big, ids, 128, &n_full, err, sizeof(err)) == 0);
    CHECK(n_full == 1 && ids[0] == wordpiece_token_id(wp, "[UNK]"));
    for (size_t i = 0; i < big; i++)
        buf[i] = (unsigned char)"abc "[i % 4];
    CHECK(wordpiece_tokenize(wp, s, (char *)buf, big, ids, 128, &n_full, err, sizeof(err)) == 0);
    CHECK(n_full == big / 4 && ids[0] == wordpiece_token_id(wp, "abc"));

    /* Invalid sequences vanish without splitting the word: "ab<bad>cd" == "abcd". */
    static const char *const bad[] = {"\xc3",         "\xe2\x82",        "\xc0\xaf", "\xed\xa0\x80",
                                      "\xf4\x90\x80", "\x80\x80",        "\xff",     "\xf5",
                                      "\xe0\x80\xaf", "\xf0\x80\x80\xaf"};
    int32_t plain[8], with_bad[8];
    size_t n_plain = 0, n_bad = 0;
    CHECK(wordpiece_tokenize(wp, s, "abcd", 4, plain, 8, &n_plain, err, sizeof(err)) == 0);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char t[32];
        int len = snprintf(t, sizeof(t), "ab%scd", bad[k]);
        CHECK(wordpiece_tokenize(wp, s, t, (size_t)len, with_bad, 8, &n_bad, err, sizeof(err)) ==
              0);
        CHECK(n_bad == n_plain && memcmp(plain, with_bad, n_plain * sizeof(int32_t)) == 0);
    }
    /* A truncated sequence at the very end must not read past len. */
    CHECK(wordpiece_tokenize(wp, s, "ab\xf0\x9f", 4, with_bad, 8, &n_bad, err, sizeof(err)) == 0);
    free(buf);
}

int main(void)
{
    char path[4096], err[256];
    const char *model = getenv("VIGIL_MODEL_DIR");
    const char *src = getenv("VIGIL_SOURCE_DIR");
    if (!src)
        src = ".";
    if (model)
        snprintf(path, sizeof(path), "%s/vocab.txt", model);
    else
        snprintf(path, sizeof(path), "%s/.cache/models/all-MiniLM-L6-v2/vocab.txt", src);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "test_wordpiece: %s missing: run scripts/fetch_model.sh first\n", path);
        return 1;
    }
    wordpiece_t *wp = wordpiece_new(path, err, sizeof(err));
    wordpiece_scratch_t *s = wordpiece_scratch_new();
    CHECK(wp != NULL);
    CHECK(s != NULL);
    if (!wp || !s) {
        fprintf(stderr, "test_wordpiece: %s\n", err);
        wordpiece_scratch_free(s);
        wordpiece_free(wp);
        return TEST_DONE();
    }
    CHECK(wordpiece_vocab_size(wp) == 30522);
    test_fixture(wp, s, src);
    test_framing(wp, s);
    test_bad_vocab();
    test_hostile(wp, s);
    wordpiece_scratch_free(s);
    wordpiece_free(wp);
    return TEST_DONE();
}
