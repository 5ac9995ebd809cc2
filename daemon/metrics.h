/* Process-wide counters, gauges and histograms, written by any thread with relaxed atomics and
 * rendered in the Prometheus text exposition format (version 0.0.4) for GET /metrics. */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_HIST_MAX_BUCKETS 16

typedef struct metrics_histogram {
    const char *name; /* e.g. "vigil_batch_rows" */
    const char *help;
    const double *bounds; /* upper bounds, ascending; +Inf is implicit */
    int n_bounds;
    _Atomic uint64_t buckets[METRICS_HIST_MAX_BUCKETS + 1]; /* non-cumulative; last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_micros; /* sum of observations x 1e6, so it stays an integer */
} metrics_histogram_t;

typedef struct metrics {
    _Atomic uint64_t consumed;      /* vigil_messages_consumed_total: messages taken from Kafka */
    _Atomic uint64_t decoded;       /* vigil_messages_decoded_total */
    _Atomic uint64_t dead_lettered; /* vigil_messages_dead_lettered_total */
    _Atomic uint64_t written;       /* vigil_rows_written_total: result rows committed */
    _Atomic uint64_t batches;       /* vigil_batches_committed_total */
    _Atomic uint64_t fenced;        /* vigil_batches_fenced_total: rolled back, offset moved on */
    _Atomic uint64_t pg_errors;     /* vigil_postgres_errors_total */
    _Atomic uint64_t kafka_errors;  /* vigil_kafka_errors_total */
    _Atomic uint64_t rebalances;    /* vigil_rebalances_total */
    _Atomic int64_t assigned_partitions; /* gauge vigil_assigned_partitions */
    _Atomic int64_t paused_partitions;   /* gauge vigil_paused_partitions */
    _Atomic int64_t pg_up;               /* gauge vigil_postgres_up: last operation succeeded */
    metrics_histogram_t batch_rows;      /* vigil_batch_rows: rows + dead letters per batch */
    metrics_histogram_t write_seconds;   /* vigil_write_seconds: one batch transaction */
} metrics_t;

/* The one instance of the process. metrics_init sets up the histogram bounds; call it once. */
extern metrics_t metrics;
void metrics_init(void);

static inline void metrics_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
void metrics_observe(metrics_histogram_t *h, double value);

/* Renders everything as Prometheus text into a malloc'd buffer (*out, *out_len). Returns 0, or
 * -1 when out of memory. */
int metrics_render(char **out, size_t *out_len);

#endif
