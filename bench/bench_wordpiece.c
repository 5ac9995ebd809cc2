/* WordPiece tokenizer throughput on one core: MB/s of UTF-8 input and tokens/s, over a text file
 * with one text per line (bench/tokenizer.sh builds one from the shared data sets). Each of RUNS
 * runs tokenizes every line once; the median and the range are printed as BENCH lines.
 *
 * Usage: bench_wordpiece VOCAB TEXTS [RUNS]
 * Measures wordpiece_tokenize (full ids, no truncation), the same work as the Rust tokenizer's
 * encode in bench/tokenizer.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wordpiece.h"

#define MAX_IDS 65536
#define MAX_RUNS 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        *size = (size_t)n;
out:
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    char err[256];
    int rc = 1;
    size_t size = 0;
    int32_t *ids = NULL;
    char *data = NULL;
    wordpiece_t *wp = NULL;
    wordpiece_scratch_t *s = NULL;
    if (argc < 3) {
        fprintf(stderr, "usage: %s VOCAB TEXTS [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (runs < 1 || runs > MAX_RUNS)
        runs = 5;
    wp = wordpiece_new(argv[1], err, sizeof(err));
    s = wordpiece_scratch_new();
    data = read_all(argv[2], &size);
    ids = malloc(MAX_IDS * sizeof(int32_t));
    if (!wp || !s || !data || !ids) {
        fprintf(stderr, "bench_wordpiece: %s\n", wp ? "cannot read texts or out of memory" : err);
        goto out;
    }

    double mbps[MAX_RUNS], tokps[MAX_RUNS];
    size_t tokens = 0, texts = 0;
    for (int r = 0; r < runs; r++) {
        tokens = 0;
        texts = 0;
        double t0 = now_s();
        for (char *line = data; line < data + size;) {
            char *nl = memchr(line, '\n', (size_t)(data + size - line));
            char *end = nl ? nl : data + size;
            size_t n = 0;
            if (wordpiece_tokenize(wp, s, line, (size_t)(end - line), ids, MAX_IDS, &n, err,
                                   sizeof(err)) < 0) {
                fprintf(stderr, "bench_wordpiece: %s\n", err);
                goto out;
            }
            tokens += n;
            texts++;
            line = end + 1;
        }
        double dt = now_s() - t0;
        mbps[r] = (double)size / 1e6 / dt;
        tokps[r] = (double)tokens / dt;
    }
    qsort(mbps, (size_t)runs, sizeof(double), cmp_double);
    qsort(tokps, (size_t)runs, sizeof(double), cmp_double);
    printf("# %zu texts, %zu bytes, %zu tokens per run, %d runs (median, min..max)\n", texts, size,
           tokens, runs);
    printf("BENCH tokenizer_c_mb_per_s %.2f MB/s (range %.2f..%.2f)\n", mbps[runs / 2], mbps[0],
           mbps[runs - 1]);
    printf("BENCH tokenizer_c_tokens_per_s %.0f tokens/s (range %.0f..%.0f)\n", tokps[runs / 2],
           tokps[0], tokps[runs - 1]);
    rc = 0;
out:
    free(ids);
    free(data);
    wordpiece_scratch_free(s);
    wordpiece_free(wp);
    return rc;
}
