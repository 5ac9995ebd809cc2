/* The process's metrics and their Prometheus text rendering (exposition format 0.0.4). Writers on
 * any thread only do relaxed atomic adds; the renderer reads each value once, so a scrape may mix
 * values from slightly different instants but never blocks the hot path. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

metrics_t metrics;

static const double metrics_batch_rows_bounds[] = {1, 10, 50, 100, 500, 1000, 5000, 10000, 50000};
static const double metrics_write_seconds_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,    1,     2.5,  5,     10};

static const double metrics_latency_seconds_bounds[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const char *const metrics_stage_names[METRICS_STAGES] = {
    [METRICS_STAGE_FILL] = "fill",
    [METRICS_STAGE_ENRICH] = "enrich",
    [METRICS_STAGE_QUEUE] = "queue",
    [METRICS_STAGE_WRITE] = "write",
};
static const char *const metrics_model_names[METRICS_MODELS] = {
    [METRICS_MODEL_RISK] = "risk",
    [METRICS_MODEL_NEWS] = "news",
};

static const double metrics_decode_seconds_bounds[] = {1e-6, 2e-6, 5e-6, 1e-5, 2e-5,
                                                       5e-5, 1e-4, 1e-3, 1e-2};
static const char *const metrics_dead_reason_names[METRICS_DEAD_REASONS] = {
    [METRICS_DEAD_EMPTY] = "empty",
    [METRICS_DEAD_TRUNCATED] = "truncated",
    [METRICS_DEAD_BAD_MAGIC] = "bad_magic",
    [METRICS_DEAD_UNKNOWN_SCHEMA] = "unknown_schema",
    [METRICS_DEAD_INCOMPATIBLE_SCHEMA] = "incompatible_schema",
    [METRICS_DEAD_INVALID_FIELD] = "invalid_field",
    [METRICS_DEAD_MALFORMED] = "malformed",
    [METRICS_DEAD_REFUSED] = "refused_by_postgres",
};

_Static_assert(sizeof(metrics_decode_seconds_bounds) / sizeof(double) <= METRICS_HIST_MAX_BUCKETS,
               "vigil_decode_seconds has too many buckets");
_Static_assert(sizeof(metrics_batch_rows_bounds) / sizeof(double) <= METRICS_HIST_MAX_BUCKETS,
               "vigil_batch_rows has too many buckets");
_Static_assert(sizeof(metrics_latency_seconds_bounds) / sizeof(double) <= METRICS_HIST_MAX_BUCKETS,
               "vigil_lane_commit_latency_seconds has too many buckets");
_Static_assert(sizeof(metrics_write_seconds_bounds) / sizeof(double) <= METRICS_HIST_MAX_BUCKETS,
               "vigil_write_seconds has too many buckets");

static void metrics_histogram_init(metrics_histogram_t *h, const char *name, const char *help,
                                   const double *bounds, int n_bounds)
{
    h->name = name;
    h->help = help;
    h->bounds = bounds;
    h->n_bounds = n_bounds;
    for (int i = 0; i <= METRICS_HIST_MAX_BUCKETS; i++)
        atomic_store_explicit(&h->buckets[i], 0, memory_order_relaxed);
    atomic_store_explicit(&h->count, 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum_nanos, 0, memory_order_relaxed);
}

void metrics_init(void)
{
    metrics_histogram_init(&metrics.batch_rows, "vigil_batch_rows",
                           "Rows plus dead letters per committed batch.", metrics_batch_rows_bounds,
                           (int)(sizeof(metrics_batch_rows_bounds) / sizeof(double)));
    metrics_histogram_init(&metrics.write_seconds, "vigil_write_seconds",
                           "Duration of one batch transaction in PostgreSQL, in seconds.",
                           metrics_write_seconds_bounds,
                           (int)(sizeof(metrics_write_seconds_bounds) / sizeof(double)));
    metrics_histogram_init(&metrics.featurize_seconds, "vigil_featurize_seconds",
                           "Time per event to compute feature vectors and update the entity state "
                           "(a partition's batch over its events), in seconds; _sum is the total.",
                           metrics_decode_seconds_bounds,
                           (int)(sizeof(metrics_decode_seconds_bounds) / sizeof(double)));
    metrics_histogram_init(&metrics.infer_seconds, "vigil_infer_seconds",
                           "Time per event to score feature vectors with the risk model (a "
                           "batch's inference over its events), in seconds; _sum is the total.",
                           metrics_decode_seconds_bounds,
                           (int)(sizeof(metrics_decode_seconds_bounds) / sizeof(double)));
    metrics_histogram_init(&metrics.news_infer_seconds, "vigil_news_infer_seconds",
                           "Time per article to encode and classify it with the news model (a "
                           "batch's inference over its articles), in seconds; _sum is the total.",
                           metrics_write_seconds_bounds,
                           (int)(sizeof(metrics_write_seconds_bounds) / sizeof(double)));
    for (int i = 0; i < METRICS_TOPICS_MAX; i++) {
        metrics_topic_t *m = &metrics.topics[i];
        metrics_histogram_init(&m->decode_seconds, "vigil_decode_seconds",
                               "Time to decode and validate one Kafka message, in seconds.",
                               metrics_decode_seconds_bounds,
                               (int)(sizeof(metrics_decode_seconds_bounds) / sizeof(double)));
        for (int p = 0; p < METRICS_PARTITIONS_MAX; p++)
            atomic_store_explicit(&m->consumer_lag[p], -1, memory_order_relaxed);
    }
    for (int i = 0; i < METRICS_LANES_MAX; i++) {
        metrics_lane_t *l = &metrics.lanes[i];
        for (int st = 0; st < METRICS_STAGES; st++)
            metrics_histogram_init(&l->stage_seconds[st], "vigil_lane_stage_seconds",
                                   "Time a batch spends in each stage of its lane (fill: first "
                                   "message polled to closed; enrich: features and model scores; "
                                   "queue: closed to taken by the writer; write: its transaction), "
                                   "in seconds.",
                                   metrics_latency_seconds_bounds,
                                   (int)(sizeof(metrics_latency_seconds_bounds) / sizeof(double)));
        metrics_histogram_init(&l->commit_latency, "vigil_lane_commit_latency_seconds",
                               "Time from a message's poll from Kafka to the commit of its batch, "
                               "per message, in seconds.",
                               metrics_latency_seconds_bounds,
                               (int)(sizeof(metrics_latency_seconds_bounds) / sizeof(double)));
    }
}

metrics_lane_t *metrics_lane(const char *name)
{
    if (!name || !name[0] || strlen(name) >= METRICS_LANE_NAME_MAX)
        return NULL;
    for (int i = 0; i < METRICS_LANES_MAX; i++) {
        metrics_lane_t *l = &metrics.lanes[i];
        if (strcmp(l->name, name) == 0)
            return l;
        if (!l->name[0]) {
            snprintf(l->name, sizeof(l->name), "%s", name);
            return l;
        }
    }
    return NULL;
}

metrics_topic_t *metrics_topic(const char *name)
{
    if (!name || !name[0] || strlen(name) >= METRICS_TOPIC_NAME_MAX)
        return NULL;
    for (int i = 0; i < METRICS_TOPICS_MAX; i++) {
        metrics_topic_t *m = &metrics.topics[i];
        if (strcmp(m->name, name) == 0)
            return m;
        if (!m->name[0]) {
            snprintf(m->name, sizeof(m->name), "%s", name);
            return m;
        }
    }
    return NULL;
}

metrics_totals_t metrics_topics_total(void)
{
    metrics_totals_t t = {0};
    for (int i = 0; i < METRICS_TOPICS_MAX; i++) {
        metrics_topic_t *m = &metrics.topics[i];
        t.consumed += atomic_load_explicit(&m->consumed, memory_order_relaxed);
        t.written += atomic_load_explicit(&m->written, memory_order_relaxed);
        t.dead_lettered += atomic_load_explicit(&m->dead_lettered, memory_order_relaxed);
        t.assigned_partitions +=
            atomic_load_explicit(&m->assigned_partitions, memory_order_relaxed);
    }
    return t;
}

metrics_dead_reason_t metrics_dead_reason_of(const char *reason)
{
    static const struct {
        const char *prefix;
        metrics_dead_reason_t label;
    } map[] = {
        {"empty message", METRICS_DEAD_EMPTY},
        {"truncated", METRICS_DEAD_TRUNCATED},
        {"bad magic byte", METRICS_DEAD_BAD_MAGIC},
        {"unknown schema id", METRICS_DEAD_UNKNOWN_SCHEMA},
        {"schema id", METRICS_DEAD_INCOMPATIBLE_SCHEMA},
        {"incompatible schema", METRICS_DEAD_INCOMPATIBLE_SCHEMA},
        {"invalid field", METRICS_DEAD_INVALID_FIELD},
        {"refused by PostgreSQL", METRICS_DEAD_REFUSED},
    };
    for (size_t i = 0; reason && i < sizeof(map) / sizeof(map[0]); i++)
        if (strncmp(reason, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].label;
    return METRICS_DEAD_MALFORMED;
}

void metrics_observe_n(metrics_histogram_t *h, double value, uint64_t n)
{
    int i = 0;

    if (isnan(value) || n == 0)
        return; /* NaN would land in no bucket and poison _sum */
    /* Prometheus buckets are "less than or equal to" their bound. */
    while (i < h->n_bounds && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, n, memory_order_relaxed);
    if (value > 0)
        atomic_fetch_add_explicit(&h->sum_nanos, (uint64_t)llround(value * 1e9 * (double)n),
                                  memory_order_relaxed);
}

void metrics_observe(metrics_histogram_t *h, double value)
{
    metrics_observe_n(h, value, 1);
}

void metrics_observe_many(metrics_histogram_t *h, const double *values, size_t n)
{
    uint64_t counts[METRICS_HIST_MAX_BUCKETS + 1] = {0}, total = 0;
    double sum = 0;

    for (size_t k = 0; k < n; k++) {
        int i = 0;
        if (isnan(values[k]))
            continue;
        while (i < h->n_bounds && values[k] > h->bounds[i])
            i++;
        counts[i]++;
        total++;
        if (values[k] > 0)
            sum += values[k];
    }
    for (int i = 0; i <= h->n_bounds; i++)
        if (counts[i])
            atomic_fetch_add_explicit(&h->buckets[i], counts[i], memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, total, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_nanos, (uint64_t)llround(sum * 1e9), memory_order_relaxed);
}

/* A growing text buffer; a failed append leaves failed set and the rest become no-ops. */
typedef struct metrics_text {
    char *buf;
    size_t len;
    size_t cap;
    int failed;
} metrics_text_t;

static void metrics_text_printf(metrics_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void metrics_text_printf(metrics_text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    for (;;) {
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t new_cap = t->cap ? t->cap * 2 : 4096;
        while (new_cap - t->len <= (size_t)n)
            new_cap *= 2;
        char *grown = realloc(t->buf, new_cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->buf = grown;
        t->cap = new_cap;
    }
}

static void metrics_render_counter(metrics_text_t *t, const char *name, const char *help,
                                   _Atomic uint64_t *value)
{
    metrics_text_printf(t, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name,
                        name, atomic_load_explicit(value, memory_order_relaxed));
}

static void metrics_render_gauge(metrics_text_t *t, const char *name, const char *help,
                                 _Atomic int64_t *value)
{
    metrics_text_printf(t, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRId64 "\n", name, help, name,
                        name, atomic_load_explicit(value, memory_order_relaxed));
}

/* The series of a histogram; label NULL for one without labels, else the labels as they go
 * inside the braces (`topic="x"`). With header 0 the HELP and TYPE lines are left out (a later
 * series of the same histogram). */
static void metrics_render_histogram(metrics_text_t *t, metrics_histogram_t *h, const char *label,
                                     int header)
{
    uint64_t cumulative = 0;
    /* The label inside a bucket's braces before le=, and the braces after _sum and _count. */
    char in_bucket[METRICS_TOPIC_NAME_MAX + 64] = "", labels[METRICS_TOPIC_NAME_MAX + 64] = "";

    if (!h->name)
        return; /* metrics_init was not called; render the counters rather than crash */
    if (label) {
        snprintf(in_bucket, sizeof(in_bucket), "%s,", label);
        snprintf(labels, sizeof(labels), "{%s}", label);
    }
    if (header)
        metrics_text_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    for (int i = 0; i < h->n_bounds; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        metrics_text_printf(t, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", h->name, in_bucket,
                            h->bounds[i], cumulative);
    }
    cumulative += atomic_load_explicit(&h->buckets[h->n_bounds], memory_order_relaxed);
    /* _count is the +Inf bucket as read here, not h->count read separately, so a scrape racing
     * an observation still satisfies Prometheus's rule that the two are equal. */
    metrics_text_printf(t, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", h->name, in_bucket,
                        cumulative);
    metrics_text_printf(t, "%s_sum%s %.9f\n%s_count%s %" PRIu64 "\n", h->name, labels,
                        (double)atomic_load_explicit(&h->sum_nanos, memory_order_relaxed) / 1e9,
                        h->name, labels, cumulative);
}

/* One series per topic in use of a per-topic counter (is_gauge 0) or gauge, the member at
 * offset of metrics_topic_t. Kafka topic names are [a-zA-Z0-9._-]: nothing to escape. */
static void metrics_render_per_topic(metrics_text_t *t, const char *name, const char *help,
                                     size_t offset, int is_gauge)
{
    metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        is_gauge ? "gauge" : "counter");
    for (int i = 0; i < METRICS_TOPICS_MAX; i++) {
        metrics_topic_t *m = &metrics.topics[i];
        char *field = (char *)m + offset;
        if (!m->name[0])
            continue;
        if (is_gauge)
            metrics_text_printf(
                t, "%s{topic=\"%s\"} %" PRId64 "\n", name, m->name,
                atomic_load_explicit((_Atomic int64_t *)(void *)field, memory_order_relaxed));
        else
            metrics_text_printf(
                t, "%s{topic=\"%s\"} %" PRIu64 "\n", name, m->name,
                atomic_load_explicit((_Atomic uint64_t *)(void *)field, memory_order_relaxed));
    }
}

/* One series per lane in use of a per-lane counter or gauge at offset of metrics_lane_t; extra
 * labels (`queue="open"`) go before the lane's, header 0 leaves out HELP and TYPE. */
static void metrics_render_per_lane(metrics_text_t *t, const char *name, const char *help,
                                    size_t offset, int is_gauge, const char *extra, int header)
{
    if (header)
        metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                            is_gauge ? "gauge" : "counter");
    for (int i = 0; i < METRICS_LANES_MAX; i++) {
        metrics_lane_t *l = &metrics.lanes[i];
        char *field = (char *)l + offset;
        if (!l->name[0])
            continue;
        if (is_gauge)
            metrics_text_printf(
                t, "%s{%slane=\"%s\"} %" PRId64 "\n", name, extra ? extra : "", l->name,
                atomic_load_explicit((_Atomic int64_t *)(void *)field, memory_order_relaxed));
        else
            metrics_text_printf(
                t, "%s{%slane=\"%s\"} %" PRIu64 "\n", name, extra ? extra : "", l->name,
                atomic_load_explicit((_Atomic uint64_t *)(void *)field, memory_order_relaxed));
    }
}

static void metrics_render_lanes(metrics_text_t *t)
{
    int header = 1;
    metrics_render_per_lane(t, "vigil_lane_queue_depth",
                            "What waits in each queue of a lane: messages in the batch being "
                            "filled (queue=open), closed batches waiting for the writer "
                            "(queue=write).",
                            offsetof(metrics_lane_t, open_messages), 1, "queue=\"open\",", 1);
    metrics_render_per_lane(t, "vigil_lane_queue_depth", NULL,
                            offsetof(metrics_lane_t, write_queue), 1, "queue=\"write\",", 0);
    metrics_render_per_lane(t, "vigil_lane_batches_in_flight",
                            "Closed batches of a lane not yet committed and accounted for.",
                            offsetof(metrics_lane_t, in_flight), 1, NULL, 1);
    metrics_render_per_lane(t, "vigil_lane_batches_committed_total",
                            "Batch transactions a lane committed.",
                            offsetof(metrics_lane_t, batches), 0, NULL, 1);
    metrics_render_per_lane(t, "vigil_lane_batches_fenced_total",
                            "Batches of a lane dropped because another consumer owned a "
                            "partition.",
                            offsetof(metrics_lane_t, fenced), 0, NULL, 1);
    for (int st = 0; st < METRICS_STAGES; st++)
        for (int i = 0; i < METRICS_LANES_MAX; i++) {
            metrics_lane_t *l = &metrics.lanes[i];
            char label[METRICS_LANE_NAME_MAX + 32];
            if (!l->name[0])
                continue;
            snprintf(label, sizeof label, "lane=\"%s\",stage=\"%s\"", l->name,
                     metrics_stage_names[st]);
            metrics_render_histogram(t, &l->stage_seconds[st], label, header);
            header = 0;
        }
    header = 1;
    for (int i = 0; i < METRICS_LANES_MAX; i++) {
        metrics_lane_t *l = &metrics.lanes[i];
        char label[METRICS_LANE_NAME_MAX + 16];
        if (!l->name[0])
            continue;
        snprintf(label, sizeof label, "lane=\"%s\"", l->name);
        metrics_render_histogram(t, &l->commit_latency, label, header);
        header = 0;
    }
}

static void metrics_render_models(metrics_text_t *t)
{
    static const struct {
        const char *name, *help, *type;
        size_t offset;
    } series[] = {
        {"vigil_model_queue_depth", "Jobs waiting for a model server (sampled once a second).",
         "gauge", offsetof(metrics_model_server_t, queued)},
        {"vigil_model_busy", "1 while a model server runs a job (sampled once a second).", "gauge",
         offsetof(metrics_model_server_t, busy)},
        {"vigil_model_jobs_total", "Jobs a model server finished.", "counter",
         offsetof(metrics_model_server_t, jobs)},
    };
    for (size_t s = 0; s < sizeof series / sizeof series[0]; s++) {
        metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help,
                            series[s].name, series[s].type);
        for (int i = 0; i < METRICS_MODELS; i++) {
            char *field = (char *)&metrics.models[i] + series[s].offset;
            /* gauges are int64, counters uint64: both print as their value */
            long long v = series[s].type[0] == 'g'
                              ? (long long)atomic_load_explicit((_Atomic int64_t *)(void *)field,
                                                                memory_order_relaxed)
                              : (long long)atomic_load_explicit((_Atomic uint64_t *)(void *)field,
                                                                memory_order_relaxed);
            metrics_text_printf(t, "%s{model=\"%s\"} %lld\n", series[s].name,
                                metrics_model_names[i], v);
        }
    }
    /* Counters kept in nanoseconds, shown in seconds. */
    static const struct {
        const char *name, *help;
        size_t offset;
    } seconds[] = {
        {"vigil_model_busy_seconds_total", "Time a model server spent running jobs.",
         offsetof(metrics_model_server_t, busy_nanos)},
        {"vigil_model_yield_seconds_total",
         "Of the busy time, that a paced model spent stepping aside for threads waiting for a "
         "CPU.",
         offsetof(metrics_model_server_t, yield_nanos)},
    };
    for (size_t s = 0; s < sizeof seconds / sizeof seconds[0]; s++) {
        metrics_text_printf(t, "# HELP %s %s\n# TYPE %s counter\n", seconds[s].name,
                            seconds[s].help, seconds[s].name);
        for (int i = 0; i < METRICS_MODELS; i++) {
            char *field = (char *)&metrics.models[i] + seconds[s].offset;
            uint64_t ns =
                atomic_load_explicit((_Atomic uint64_t *)(void *)field, memory_order_relaxed);
            metrics_text_printf(t, "%s{model=\"%s\"} %.9f\n", seconds[s].name,
                                metrics_model_names[i], (double)ns / 1e9);
        }
    }
}

static void metrics_render_alerts(metrics_text_t *t)
{
    static const char *const kinds[METRICS_ALERT_KINDS] = {"fraud", "sentiment"};
    static const struct {
        const char *name, *help;
        size_t offset;
    } series[] = {
        {"vigil_alerts_raised_total", "Alerts raised by committed batches.",
         offsetof(metrics_alerts_t, raised)},
        {"vigil_alerts_updated_total", "Alerts grown by committed batches (one per batch).",
         offsetof(metrics_alerts_t, updated)},
        {"vigil_alerts_resolved_total", "Alerts this process resolved after their quiet period.",
         offsetof(metrics_alerts_t, resolved)},
    };
    for (size_t s = 0; s < sizeof series / sizeof series[0]; s++) {
        metrics_text_printf(t, "# HELP %s %s\n# TYPE %s counter\n", series[s].name, series[s].help,
                            series[s].name);
        for (int k = 0; k < METRICS_ALERT_KINDS; k++) {
            _Atomic uint64_t *v =
                (_Atomic uint64_t *)(void *)((char *)&metrics.alerts[k] + series[s].offset);
            for (int sev = 0; sev < SINK_ALERT_SEVERITIES; sev++)
                metrics_text_printf(t, "%s{kind=\"%s\",severity=\"%s\"} %" PRIu64 "\n",
                                    series[s].name, kinds[k], sink_alert_severities[sev],
                                    atomic_load_explicit(&v[sev], memory_order_relaxed));
        }
    }
}

const char *const metrics_sink_names[METRICS_SINKS] = {"kafka", "alertmanager"};

static void metrics_render_sinks(metrics_text_t *t)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } series[] = {
        {"vigil_alert_sink_queued", "gauge",
         "Alerts the sink had still to take after its last round.",
         offsetof(metrics_alert_sink_t, queued)},
        {"vigil_alert_sink_delivered_total", "counter", "Alert revisions the sink acknowledged.",
         offsetof(metrics_alert_sink_t, delivered)},
        {"vigil_alert_sink_failed_total", "counter",
         "Deliveries that failed (each is tried again).", offsetof(metrics_alert_sink_t, failed)},
    };
    for (size_t s = 0; s < sizeof series / sizeof series[0]; s++) {
        metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help,
                            series[s].name, series[s].type);
        for (int k = 0; k < METRICS_SINKS; k++) {
            const char *field = (const char *)&metrics.sinks[k] + series[s].offset;
            /* queued is a signed gauge, the others counters: both 64-bit, read as their type. */
            long long v = s == 0 ? (long long)atomic_load_explicit((_Atomic int64_t *)(void *)field,
                                                                   memory_order_relaxed)
                                 : (long long)atomic_load_explicit(
                                       (_Atomic uint64_t *)(void *)field, memory_order_relaxed);
            metrics_text_printf(t, "%s{sink=\"%s\"} %lld\n", series[s].name, metrics_sink_names[k],
                                v);
        }
    }
}

int metrics_render(char **out, size_t *out_len)
{
    metrics_text_t t = {0};
    metrics_t *m = &metrics;
    int header = 1;

    metrics_render_per_topic(&t, "vigil_messages_consumed_total", "Messages taken from Kafka.",
                             offsetof(metrics_topic_t, consumed), 0);
    metrics_render_per_topic(&t, "vigil_messages_decoded_total", "Messages decoded into records.",
                             offsetof(metrics_topic_t, decoded), 0);
    metrics_render_per_topic(&t, "vigil_messages_dead_lettered_total",
                             "Messages that could not be decoded or stored, kept as dead letters.",
                             offsetof(metrics_topic_t, dead_lettered), 0);
    metrics_render_per_topic(&t, "vigil_rows_written_total", "Result rows committed to PostgreSQL.",
                             offsetof(metrics_topic_t, written), 0);
    metrics_render_per_topic(&t, "vigil_rebalances_total",
                             "Partition assignments and revocations seen, per topic.",
                             offsetof(metrics_topic_t, rebalances), 0);
    metrics_render_per_topic(&t, "vigil_assigned_partitions", "Kafka partitions assigned now.",
                             offsetof(metrics_topic_t, assigned_partitions), 1);
    metrics_render_per_topic(&t, "vigil_paused_partitions",
                             "Assigned partitions whose fetching is paused (backpressure).",
                             offsetof(metrics_topic_t, paused_partitions), 1);
    metrics_render_counter(&t, "vigil_batches_committed_total",
                           "Batch transactions committed to PostgreSQL.", &m->batches);
    metrics_render_counter(&t, "vigil_batches_fenced_total",
                           "Batches rolled back because another consumer owned the partition.",
                           &m->fenced);
    metrics_render_counter(&t, "vigil_postgres_errors_total", "Failed PostgreSQL operations.",
                           &m->pg_errors);
    metrics_render_counter(&t, "vigil_kafka_errors_total", "Errors reported by librdkafka.",
                           &m->kafka_errors);
    metrics_render_counter(&t, "vigil_schema_registry_errors_total",
                           "Writer schema lookups that got no answer from the registry.",
                           &m->registry_errors);
    metrics_render_counter(&t, "vigil_dlq_published_total",
                           "Dead letters queued to the dead-letter topic.", &m->dlq_published);
    metrics_render_counter(&t, "vigil_dlq_failed_total",
                           "Dead letters the dead-letter topic did not get.", &m->dlq_failed);
    metrics_render_gauge(&t, "vigil_postgres_up",
                         "1 when the last PostgreSQL operation succeeded, else 0.", &m->pg_up);
    metrics_render_histogram(&t, &m->batch_rows, NULL, 1);
    metrics_render_histogram(&t, &m->write_seconds, NULL, 1);
    metrics_render_counter(&t, "vigil_features_replayed_total",
                           "Events replayed into entity state after a restore (not written "
                           "again).",
                           &m->features_replayed);
    metrics_render_counter(&t, "vigil_entity_checkpoints_total",
                           "Entity state checkpoints committed.", &m->checkpoints);
    metrics_render_gauge(&t, "vigil_entity_checkpoint_bytes",
                         "Size of the last entity state checkpoint.", &m->checkpoint_bytes);
    metrics_render_gauge(&t, "vigil_entities",
                         "Entities in the entity state of the partitions assigned here.",
                         &m->entities);
    metrics_render_gauge(&t, "vigil_entity_state_bytes",
                         "Memory the entity state of the assigned partitions holds.",
                         &m->entity_state_bytes);
    metrics_render_histogram(&t, &m->featurize_seconds, NULL, 1);
    metrics_render_histogram(&t, &m->infer_seconds, NULL, 1);
    metrics_render_histogram(&t, &m->news_infer_seconds, NULL, 1);
    metrics_render_counter(&t, "vigil_inference_errors_total",
                           "Batches written unscored because the model failed.",
                           &m->inference_errors);
    metrics_render_counter(&t, "vigil_model_reloads_total", "Models swapped in by a reload.",
                           &m->model_reloads);
    metrics_render_counter(&t, "vigil_model_reload_errors_total",
                           "Model files refused by a reload (the running model kept serving).",
                           &m->model_reload_errors);
    for (int i = 0; i < METRICS_TOPICS_MAX; i++) {
        if (m->topics[i].name[0]) {
            char label[METRICS_TOPIC_NAME_MAX + 16];
            snprintf(label, sizeof label, "topic=\"%s\"", m->topics[i].name);
            metrics_render_histogram(&t, &m->topics[i].decode_seconds, label, header);
            header = 0;
        }
    }
    metrics_render_lanes(&t);
    metrics_render_models(&t);
    metrics_render_alerts(&t);
    metrics_render_sinks(&t);

    metrics_text_printf(&t, "# HELP vigil_messages_dead_lettered_by_reason_total Dead letters by "
                            "kind of reason.\n"
                            "# TYPE vigil_messages_dead_lettered_by_reason_total counter\n");
    for (int i = 0; i < METRICS_TOPICS_MAX; i++) {
        metrics_topic_t *mt = &m->topics[i];
        for (int r = 0; mt->name[0] && r < METRICS_DEAD_REASONS; r++)
            metrics_text_printf(
                &t,
                "vigil_messages_dead_lettered_by_reason_total{topic=\"%s\",reason=\"%s\"} "
                "%" PRIu64 "\n",
                mt->name, metrics_dead_reason_names[r],
                atomic_load_explicit(&mt->dead_by_reason[r], memory_order_relaxed));
    }
    metrics_text_printf(&t, "# HELP vigil_consumer_lag Messages in Kafka past the offset stored in "
                            "PostgreSQL, per assigned partition.\n"
                            "# TYPE vigil_consumer_lag gauge\n");
    for (int i = 0; i < METRICS_TOPICS_MAX; i++) {
        metrics_topic_t *mt = &m->topics[i];
        for (int p = 0; mt->name[0] && p < METRICS_PARTITIONS_MAX; p++) {
            int64_t lag = atomic_load_explicit(&mt->consumer_lag[p], memory_order_relaxed);
            if (lag >= 0)
                metrics_text_printf(
                    &t, "vigil_consumer_lag{topic=\"%s\",partition=\"%d\"} %" PRId64 "\n", mt->name,
                    p, lag);
        }
    }

    if (t.failed) {
        free(t.buf);
        return -1;
    }
    *out = t.buf; /* ownership passes to the caller, who frees it */
    *out_len = t.len;
    return 0;
}
