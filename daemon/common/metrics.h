/* Process-wide counters, gauges and histograms, written by any thread with relaxed atomics and
 * rendered in the Prometheus text exposition format (version 0.0.4) for GET /metrics. */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sink_pg.h" /* sink_alert_severities: the severities, as vigil.alerts spells them */

#define METRICS_HIST_MAX_BUCKETS 16

typedef struct metrics_histogram {
    const char *name; /* e.g. "vigil_batch_rows" */
    const char *help;
    const double *bounds; /* upper bounds, ascending; +Inf is implicit */
    int n_bounds;
    _Atomic uint64_t buckets[METRICS_HIST_MAX_BUCKETS + 1]; /* non-cumulative; last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_nanos; /* sum of observations x 1e9, so it stays an integer */
} metrics_histogram_t;

/* Why messages became dead letters, as a small fixed label set (reasons themselves are free
 * text in vigil.dead_letters): vigil_messages_dead_lettered_by_reason_total{reason="..."}. */
typedef enum metrics_dead_reason {
    METRICS_DEAD_EMPTY,               /* empty message value */
    METRICS_DEAD_TRUNCATED,           /* shorter than its encoding says */
    METRICS_DEAD_BAD_MAGIC,           /* not Confluent framing */
    METRICS_DEAD_UNKNOWN_SCHEMA,      /* no schema for its id */
    METRICS_DEAD_INCOMPATIBLE_SCHEMA, /* writer schema does not resolve to the reader's */
    METRICS_DEAD_INVALID_FIELD,       /* decodes, but a value breaks a rule (UTF-8, range, ...) */
    METRICS_DEAD_MALFORMED,           /* any other malformed Avro */
    METRICS_DEAD_REFUSED,             /* PostgreSQL refused the row */
    METRICS_DEAD_REASONS
} metrics_dead_reason_t;

/* Per-partition consumer lag is kept for partitions 0..METRICS_PARTITIONS_MAX-1. */
#define METRICS_PARTITIONS_MAX 1024
/* Topics with their own series: one per input (behavior events, news, two label topics). */
#define METRICS_TOPICS_MAX 4
#define METRICS_TOPIC_NAME_MAX 250

/* What is counted per input topic; rendered with a topic="..." label. */
typedef struct metrics_topic {
    char name[METRICS_TOPIC_NAME_MAX]; /* "" for an unused slot */
    _Atomic uint64_t consumed;         /* vigil_messages_consumed_total: taken from Kafka */
    _Atomic uint64_t decoded;          /* vigil_messages_decoded_total */
    _Atomic uint64_t dead_lettered;    /* vigil_messages_dead_lettered_total */
    _Atomic uint64_t written;          /* vigil_rows_written_total: result rows committed */
    _Atomic uint64_t rebalances;       /* vigil_rebalances_total: assignments and revocations */
    _Atomic uint64_t dead_by_reason[METRICS_DEAD_REASONS];
    metrics_histogram_t decode_seconds;  /* vigil_decode_seconds: one message */
    _Atomic int64_t assigned_partitions; /* gauge vigil_assigned_partitions */
    _Atomic int64_t paused_partitions;   /* gauge vigil_paused_partitions */
    /* gauge vigil_consumer_lag{topic,partition}: messages in Kafka past the stored offset;
     * -1 (not rendered) when the partition is not assigned here or not known yet. */
    _Atomic int64_t consumer_lag[METRICS_PARTITIONS_MAX];
} metrics_topic_t;

/* Lanes (daemon/vigild/lanes.h): one per input kind, each a pipeline of stages. */
#define METRICS_LANES_MAX 3
#define METRICS_LANE_NAME_MAX 16

/* Where a batch spends its time, in order (vigil_lane_stage_seconds{lane,stage}). */
typedef enum metrics_stage {
    METRICS_STAGE_FILL,   /* "fill": its first message polled -> closed */
    METRICS_STAGE_ENRICH, /* "enrich": features and model scores of its messages (the sum) */
    METRICS_STAGE_QUEUE,  /* "queue": closed -> the writer takes it */
    METRICS_STAGE_WRITE,  /* "write": its transaction, retries included */
    METRICS_STAGES
} metrics_stage_t;

typedef struct metrics_lane {
    char name[METRICS_LANE_NAME_MAX]; /* "" for an unused slot */
    /* gauge vigil_lane_queue_depth{lane,queue="open"}: messages in the batch being filled */
    _Atomic int64_t open_messages;
    /* gauge vigil_lane_queue_depth{lane,queue="write"}: closed batches waiting for the writer */
    _Atomic int64_t write_queue;
    /* gauge vigil_lane_batches_in_flight: closed and not yet done with (queued, being written, or
     * committed and not yet accounted for by the lane) */
    _Atomic int64_t in_flight;
    _Atomic uint64_t batches; /* vigil_lane_batches_committed_total */
    _Atomic uint64_t fenced;  /* vigil_lane_batches_fenced_total */
    metrics_histogram_t stage_seconds[METRICS_STAGES];
    /* vigil_lane_commit_latency_seconds: per message, polled from Kafka -> committed */
    metrics_histogram_t commit_latency;
} metrics_lane_t;

/* The model servers (pipeline/models/model_runtime.h), sampled about once a second. */
typedef enum metrics_model {
    METRICS_MODEL_RISK,
    METRICS_MODEL_NEWS,
    METRICS_MODELS
} metrics_model_t;

typedef struct metrics_model_server {
    _Atomic int64_t queued;       /* gauge vigil_model_queue_depth{model}: jobs waiting */
    _Atomic int64_t busy;         /* gauge vigil_model_busy{model}: 1 while a job runs */
    _Atomic uint64_t jobs;        /* counter vigil_model_jobs_total{model} */
    _Atomic uint64_t busy_nanos;  /* counter vigil_model_busy_seconds_total{model} */
    _Atomic uint64_t yield_nanos; /* counter vigil_model_yield_seconds_total{model} */
} metrics_model_server_t;

/* Alerts (docs/alerts.md), per kind and severity: vigil_alerts_{raised,updated,resolved}_total.
 * Raised and updated count committed batch transactions; resolved counts what this process
 * resolved (the quiet period), not what analysts resolve through `vigil alerts`. */
typedef enum metrics_alert_kind {
    METRICS_ALERT_FRAUD,
    METRICS_ALERT_SENTIMENT,
    METRICS_ALERT_KINDS
} metrics_alert_kind_t;
typedef struct metrics_alerts {
    _Atomic uint64_t raised[SINK_ALERT_SEVERITIES];
    _Atomic uint64_t updated[SINK_ALERT_SEVERITIES];
    _Atomic uint64_t resolved[SINK_ALERT_SEVERITIES];
} metrics_alerts_t;

/* Alert delivery after the commit (daemon/vigild/delivery.h), per sink:
 * vigil_alert_sink_queued (gauge: alerts it had still to take after the last round: 0 once it
 * has taken everything, resends of open alerts included),
 * vigil_alert_sink_delivered_total (revisions it acknowledged), vigil_alert_sink_failed_total
 * (attempts that failed: each is retried). */
typedef enum metrics_sink {
    METRICS_SINK_KAFKA,
    METRICS_SINK_ALERTMANAGER,
    METRICS_SINKS
} metrics_sink_t;
extern const char *const metrics_sink_names[METRICS_SINKS];
typedef struct metrics_alert_sink {
    _Atomic int64_t queued;
    _Atomic uint64_t delivered;
    _Atomic uint64_t failed;
} metrics_alert_sink_t;

typedef struct metrics {
    _Atomic uint64_t batches;         /* vigil_batches_committed_total */
    _Atomic uint64_t fenced;          /* vigil_batches_fenced_total: rolled back, offset moved on */
    _Atomic uint64_t pg_errors;       /* vigil_postgres_errors_total */
    _Atomic uint64_t kafka_errors;    /* vigil_kafka_errors_total */
    _Atomic uint64_t registry_errors; /* vigil_schema_registry_errors_total: failed lookups */
    _Atomic uint64_t dlq_published;   /* vigil_dlq_published_total: copies queued to the topic */
    _Atomic uint64_t dlq_failed;      /* vigil_dlq_failed_total: copies not delivered */
    _Atomic int64_t pg_up;            /* gauge vigil_postgres_up: last operation succeeded */
    metrics_histogram_t batch_rows;   /* vigil_batch_rows: rows + dead letters per batch */
    metrics_histogram_t write_seconds;  /* vigil_write_seconds: one batch transaction */
    _Atomic uint64_t features_replayed; /* vigil_features_replayed_total: events replayed into
                                           entity state after a restore, not written again */
    _Atomic uint64_t checkpoints;       /* vigil_entity_checkpoints_total: committed */
    _Atomic int64_t checkpoint_bytes;   /* gauge vigil_entity_checkpoint_bytes: the last one */
    _Atomic int64_t entities;           /* gauge vigil_entities: live, all partitions and types */
    _Atomic int64_t entity_state_bytes; /* gauge vigil_entity_state_bytes: memory they hold */
    metrics_histogram_t featurize_seconds;  /* vigil_featurize_seconds: one event */
    metrics_histogram_t infer_seconds;      /* vigil_infer_seconds: one event, risk model */
    metrics_histogram_t news_infer_seconds; /* vigil_news_infer_seconds: one article */
    _Atomic uint64_t inference_errors;      /* vigil_inference_errors_total: batches unscored */
    _Atomic uint64_t model_reloads;         /* vigil_model_reloads_total: models swapped in */
    _Atomic uint64_t model_reload_errors;   /* vigil_model_reload_errors_total: files refused */
    metrics_topic_t topics[METRICS_TOPICS_MAX];
    metrics_lane_t lanes[METRICS_LANES_MAX];
    metrics_model_server_t models[METRICS_MODELS];
    metrics_alerts_t alerts[METRICS_ALERT_KINDS];
    metrics_alert_sink_t sinks[METRICS_SINKS];
} metrics_t;

/* The one instance of the process. metrics_init sets up the histogram bounds; call it once. */
extern metrics_t metrics;
void metrics_init(void);

static inline void metrics_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
void metrics_observe(metrics_histogram_t *h, double value);
/* n observations of the same value: a batch's time spread over its n events, so that the
 * histogram counts events and its _sum is the whole time spent. */
void metrics_observe_n(metrics_histogram_t *h, double value, uint64_t n);

/* Observations of n values at once (per-message latencies of a batch): bucketed locally, then
 * added with one atomic add per bucket. */
void metrics_observe_many(metrics_histogram_t *h, const double *values, size_t n);

/* The label of a dead letter's reason text (the decoder's and the worker's wording). */
metrics_dead_reason_t metrics_dead_reason_of(const char *reason);

/* The series of topic, a slot taken on first use (name copied). Call from the main thread
 * before the threads that count start. Returns NULL when all METRICS_TOPICS_MAX slots are
 * taken or the name is too long. */
metrics_topic_t *metrics_topic(const char *name);

/* The series of lane name, a slot taken on first use, as metrics_topic. */
metrics_lane_t *metrics_lane(const char *name);

/* Sums over every topic in use, for the status line and readiness. */
typedef struct metrics_totals {
    uint64_t consumed, written, dead_lettered;
    int64_t assigned_partitions;
} metrics_totals_t;
metrics_totals_t metrics_topics_total(void);

/* Renders everything as Prometheus text into a malloc'd buffer (*out, *out_len). Returns 0, or
 * -1 when out of memory. */
int metrics_render(char **out, size_t *out_len);

#endif
