/* Decode throughput of one core: how many BehaviorEvents per second ingest_avro_decode turns
 * from Confluent-framed Avro into ingest_event_t. Part of `make bench`; prints BENCH lines.
 *
 * The input is 10,000 distinct events from the same generator `vigil produce` uses (realistic
 * string lengths and optional fields), encoded once; the timed loop decodes them over and over
 * on this thread, so the figure is decode alone: no Kafka, no PostgreSQL. Each of RUNS runs
 * lasts at least SECONDS; the median and the range are printed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest_avro.h"
#include "produce.h"

#define EVENTS 10000
#define MSG_CAP 1024

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

int main(int argc, char **argv)
{
    const char *schema_dir = argc > 1 ? argv[1] : "ingest/schemas";
    int runs = getenv("RUNS") ? atoi(getenv("RUNS")) : 5;
    double seconds = getenv("SECONDS_PER_RUN") ? atof(getenv("SECONDS_PER_RUN")) : 2.0;
    char reader[4096], err[512];
    uint8_t *msgs = malloc((size_t)EVENTS * MSG_CAP);
    long *lens = malloc(EVENTS * sizeof(long));
    double *rates = calloc((size_t)(runs > 0 ? runs : 1), sizeof(double));
    ingest_event_t ev = {0}, out = {0};
    produce_gen_t *gen = NULL;
    ingest_avro_t *codec = NULL;
    size_t bytes = 0;
    int rc = 1;

    if (!msgs || !lens || !rates || runs < 1) {
        fprintf(stderr, "bench_decode: out of memory or RUNS < 1\n");
        goto out;
    }
    snprintf(reader, sizeof reader, "%s/BehaviorEvent.avsc", schema_dir);
    codec = ingest_avro_new(INGEST_FORMAT_CONFLUENT, reader, schema_dir, err, sizeof err);
    gen = produce_gen_new(7, 100000, err, sizeof err);
    if (!codec || !gen) {
        fprintf(stderr, "bench_decode: %s\n", err);
        goto out;
    }
    for (int i = 0; i < EVENTS; i++) {
        produce_gen_event(gen, (uint64_t)i, INT64_C(1763900000000), &ev);
        lens[i] =
            ingest_avro_encode(codec, &ev, 1, msgs + (size_t)i * MSG_CAP, MSG_CAP, err, sizeof err);
        if (lens[i] <= 0) {
            fprintf(stderr, "bench_decode: encoding event %d: %s\n", i, err);
            goto out;
        }
        bytes += (size_t)lens[i];
    }
    for (int r = 0; r < runs; r++) {
        long decoded = 0;
        double t0 = now_s(), t1;
        do {
            for (int i = 0; i < EVENTS; i++) {
                if (ingest_avro_decode(codec, msgs + (size_t)i * MSG_CAP, (size_t)lens[i], &out,
                                       err, sizeof err) != INGEST_AVRO_OK) {
                    fprintf(stderr, "bench_decode: event %d did not decode: %s\n", i, err);
                    goto out;
                }
            }
            decoded += EVENTS;
            t1 = now_s();
        } while (t1 - t0 < seconds);
        rates[r] = (double)decoded / (t1 - t0);
        fprintf(stderr, "# decode run %d: %.0f events/s\n", r + 1, rates[r]);
    }
    qsort(rates, (size_t)runs, sizeof *rates, cmp_double);
    double median = rates[runs / 2];
    printf("BENCH decode_behavior_events_per_s %.0f events/s\n", median);
    printf("BENCH decode_behavior_mb_per_s %.1f MB/s\n", median * (double)bytes / EVENTS / 1e6);
    fprintf(stderr,
            "# decode: %d runs of >= %.1f s on one thread, range %.0f-%.0f events/s, mean message "
            "%.0f bytes\n",
            runs, seconds, rates[0], rates[runs - 1], (double)bytes / EVENTS);
    rc = 0;
out:
    ingest_event_clear(&out);
    ingest_avro_free(codec);
    produce_gen_free(gen);
    free(msgs);
    free(lens);
    free(rates);
    return rc;
}
