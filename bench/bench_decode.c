/* Decode throughput of one core: how many records per second ingest_avro_decode turns from
 * Confluent-framed Avro into ingest_record_t. Part of `make bench`; prints BENCH lines.
 *
 * The input is 10,000 distinct records from the same generator `vigil produce` uses (realistic
 * string lengths and optional fields), encoded once; the timed loop decodes them over and over
 * on this thread, so the figure is decode alone: no Kafka, no PostgreSQL. Each of RUNS runs
 * lasts at least SECONDS; the median and the range are printed.
 *
 * Three figures: decode_behavior (BehaviorEvents on the reader schema itself: the direct path),
 * decode_behavior_resolved (the same events on a writer schema with an extra leading field,
 * read through Avro schema resolution: the plan path) and decode_news_article (NewsArticles,
 * with headline, body and tickers, on the direct path). */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest_avro.h"
#include "produce.h"

#define EVENTS 10000
#define MSG_CAP 2048

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

/* Decodes the n messages over and over for `runs` runs; prints the BENCH lines for name. */
static int bench_run(const char *name, ingest_avro_t *dec, const uint8_t *msgs, const long *lens,
                     size_t bytes, int runs, double seconds, double *rates)
{
    ingest_record_t out = {0};
    char err[512];

    for (int r = 0; r < runs; r++) {
        long decoded = 0;
        double t0 = now_s(), t1;
        do {
            for (int i = 0; i < EVENTS; i++) {
                if (ingest_avro_decode(dec, msgs + (size_t)i * MSG_CAP, (size_t)lens[i], &out, err,
                                       sizeof err) != INGEST_AVRO_OK) {
                    fprintf(stderr, "bench_decode: %s: event %d did not decode: %s\n", name, i,
                            err);
                    ingest_record_clear(&out);
                    return -1;
                }
            }
            decoded += EVENTS;
            t1 = now_s();
        } while (t1 - t0 < seconds);
        rates[r] = (double)decoded / (t1 - t0);
        fprintf(stderr, "# %s run %d: %.0f records/s\n", name, r + 1, rates[r]);
    }
    ingest_record_clear(&out);
    qsort(rates, (size_t)runs, sizeof *rates, cmp_double);
    double median = rates[runs / 2];
    printf("BENCH %s_records_per_s %.0f records/s\n", name, median);
    printf("BENCH %s_mb_per_s %.1f MB/s\n", name, median * (double)bytes / EVENTS / 1e6);
    fprintf(stderr,
            "# %s: %d runs of >= %.1f s on one thread, range %.0f-%.0f records/s, mean "
            "message %.0f bytes\n",
            name, runs, seconds, rates[0], rates[runs - 1], (double)bytes / EVENTS);
    return 0;
}

/* Writes a writer schema with one more field than the reader's, in front, as <dir>/2.avsc;
 * fills path. Returns 0 or -1. */
static int write_evolved_schema(const char *reader, const char *dir, char *path, size_t pathlen)
{
    static const char key[] = "\"fields\": [";
    char text[16384];
    FILE *f = fopen(reader, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    char *at;

    if (f)
        fclose(f);
    text[n] = '\0';
    at = strstr(text, key);
    snprintf(path, pathlen, "%s/2.avsc", dir);
    if (!at || !(f = fopen(path, "w")))
        return -1;
    at += strlen(key);
    fwrite(text, 1, (size_t)(at - text), f);
    fputs("{\"name\": \"session_note\", \"type\": \"string\", \"default\": \"\"},", f);
    fputs(at, f);
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *schema_dir = argc > 1 ? argv[1] : "ingest/schemas";
    int runs = getenv("RUNS") ? atoi(getenv("RUNS")) : 5;
    double seconds = getenv("SECONDS_PER_RUN") ? atof(getenv("SECONDS_PER_RUN")) : 2.0;
    char reader[4096], evolved[PATH_MAX], err[512];
    char tmpdir[] = "/tmp/vigil_bench_decode_XXXXXX";
    uint8_t *msgs = malloc((size_t)EVENTS * MSG_CAP);
    uint8_t *msgs2 = malloc((size_t)EVENTS * MSG_CAP);
    uint8_t *msgs3 = malloc((size_t)EVENTS * MSG_CAP);
    long *lens = malloc(EVENTS * sizeof(long));
    long *lens2 = malloc(EVENTS * sizeof(long));
    long *lens3 = malloc(EVENTS * sizeof(long));
    double *rates = calloc((size_t)(runs > 0 ? runs : 1), sizeof(double));
    ingest_record_t ev = {0}, article = {0};
    produce_gen_t *gen = NULL;
    ingest_avro_t *codec = NULL, *enc2 = NULL, *dec2 = NULL, *news = NULL;
    char news_reader[4096];
    size_t bytes = 0, bytes2 = 0, bytes3 = 0;
    int rc = 1, have_tmp = 0;

    evolved[0] = '\0';
    if (!msgs || !msgs2 || !msgs3 || !lens || !lens2 || !lens3 || !rates || runs < 1) {
        fprintf(stderr, "bench_decode: out of memory or RUNS < 1\n");
        goto out;
    }
    snprintf(reader, sizeof reader, "%s/BehaviorEvent.avsc", schema_dir);
    snprintf(news_reader, sizeof news_reader, "%s/NewsArticle.avsc", schema_dir);
    have_tmp = mkdtemp(tmpdir) != NULL;
    if (!have_tmp || write_evolved_schema(reader, tmpdir, evolved, sizeof evolved) != 0) {
        fprintf(stderr, "bench_decode: cannot write an evolved schema under /tmp\n");
        goto out;
    }
    codec = ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, reader, schema_dir, err,
                            sizeof err);
    enc2 = codec ? ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, evolved, tmpdir, err,
                                   sizeof err)
                 : NULL;
    dec2 = enc2 ? ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, reader, tmpdir, err,
                                  sizeof err)
                : NULL;
    news = dec2 ? ingest_avro_new(INGEST_KIND_ARTICLE, INGEST_FORMAT_CONFLUENT, news_reader,
                                  schema_dir, err, sizeof err)
                : NULL;
    gen = news ? produce_gen_new(7, 100000, err, sizeof err) : NULL;
    if (!gen) {
        fprintf(stderr, "bench_decode: %s\n", err);
        goto out;
    }
    for (int i = 0; i < EVENTS; i++) {
        produce_gen_record(gen, INGEST_KIND_EVENT, (uint64_t)i, INT64_C(1763900000000), &ev);
        produce_gen_record(gen, INGEST_KIND_ARTICLE, (uint64_t)i, INT64_C(1763900000000), &article);
        lens3[i] = ingest_avro_encode(news, &article, 2, msgs3 + (size_t)i * MSG_CAP, MSG_CAP, err,
                                      sizeof err);
        if (lens3[i] <= 0) {
            fprintf(stderr, "bench_decode: encoding article %d: %s\n", i, err);
            goto out;
        }
        bytes3 += (size_t)lens3[i];
        lens[i] =
            ingest_avro_encode(codec, &ev, 1, msgs + (size_t)i * MSG_CAP, MSG_CAP, err, sizeof err);
        lens2[i] = lens[i] > 0 ? ingest_avro_encode(enc2, &ev, 2, msgs2 + (size_t)i * MSG_CAP,
                                                    MSG_CAP, err, sizeof err)
                               : -1;
        if (lens[i] <= 0 || lens2[i] <= 0) {
            fprintf(stderr, "bench_decode: encoding event %d: %s\n", i, err);
            goto out;
        }
        bytes += (size_t)lens[i];
        bytes2 += (size_t)lens2[i];
    }
    if (bench_run("decode_behavior", codec, msgs, lens, bytes, runs, seconds, rates) != 0 ||
        bench_run("decode_behavior_resolved", dec2, msgs2, lens2, bytes2, runs, seconds, rates) !=
            0 ||
        bench_run("decode_news_article", news, msgs3, lens3, bytes3, runs, seconds, rates) != 0)
        goto out;
    rc = 0;
out:
    if (evolved[0])
        unlink(evolved);
    if (have_tmp)
        rmdir(tmpdir);
    ingest_avro_free(codec);
    ingest_avro_free(enc2);
    ingest_avro_free(dec2);
    ingest_avro_free(news);
    produce_gen_free(gen);
    free(msgs);
    free(msgs2);
    free(msgs3);
    free(lens);
    free(lens2);
    free(lens3);
    free(rates);
    return rc;
}
