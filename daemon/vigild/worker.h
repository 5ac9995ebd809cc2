/* The worker: the one thread that moves records from Kafka to PostgreSQL.
 *
 *   poll Kafka (every input topic, one consumer) -> decode (Avro, the topic's record kind) ->
 *   batch -> one PostgreSQL transaction (rows of each table + dead letters + conditional offset
 *   update) -> async Kafka offset commit for lag tools
 *
 * It owns the Kafka consumer, the decoder and the PostgreSQL connection; nothing else touches
 * them. The main thread talks to it only through worker_stop, worker_set_limits (atomics) and the
 * process-wide metrics; the worker tells the main thread it is consuming, and that it has exited,
 * through the callbacks (called on the worker thread; they must only wake the main loop). */
#ifndef VIGIL_WORKER_H
#define VIGIL_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "featurize.h"
#include "ingest_avro.h"
#include "model_runtime.h"

/* Most input topics one worker reads: behavior events, news articles, fraud and news labels. */
#define WORKER_INPUTS_MAX 4

/* One input: a topic and the decoder of the record kind it carries. */
typedef struct worker_input {
    const char *topic;
    ingest_avro_t *decoder; /* ownership passes to the worker, also when worker_new fails */
} worker_input_t;

typedef struct worker_options {
    const worker_input_t *inputs; /* 1..WORKER_INPUTS_MAX, distinct topics */
    size_t n_inputs;
    const char *dlq_topic; /* "" or NULL: no dead-letter topic */
    const char *pg_conninfo;
    const char *instance_id;
    const char *const *kafka_keys; /* pass-through settings, see ingest_kafka_new */
    const char *const *kafka_values;
    const char *const *kafka_origins;
    size_t n_kafka;
    int batch_max;
    int batch_max_delay_ms;
    int batch_linger_ms;
    int retry_max_ms;
    int shutdown_timeout_ms;
    /* Behavior features of the BehaviorEvent topic; NULL: none. Ownership passes to the worker
     * (also when worker_new fails). Entity state: see docs/features.md. */
    featurize_t *featurize;
    uint32_t features_max_entities; /* per partition and entity type */
    int64_t features_ttl_ms;        /* 0: entities never expire */
    int features_checkpoint_interval_ms;
    /* Scores the features with the active risk model; NULL: rows stay unscored. Borrowed: it
     * must outlive the worker. */
    model_runtime_t *runtime;
    /* A batch also closes when it holds this many articles (0: no such limit): the news encoder
     * takes tens of milliseconds per article, and a batch waits for all of its articles. */
    size_t news_batch_max;
    void (*on_ready)(void *ctx); /* subscribed and consuming */
    void (*on_exit)(void *ctx);  /* the thread is about to return */
    void *ctx;
} worker_options_t;

typedef struct worker worker_t;

/* Copies what it needs from opts (strings included) and takes the inputs' decoders, which the
 * caller builds (daemon_decoder_new) so that a bad schema is a start-up error. Takes a metrics
 * slot per topic, so call it from the main thread before any worker starts. Opens nothing yet:
 * connecting to PostgreSQL (with retries), migrating and subscribing happen on the worker thread,
 * so a database that is down at start delays readiness instead of failing the start. */
worker_t *worker_new(const worker_options_t *opts, char *err, size_t errlen);
int worker_start(worker_t *w, char *err, size_t errlen);
/* Asks the thread to stop: stop consuming, commit what is in flight, leave the group. */
void worker_stop(worker_t *w);
/* Joins the thread. Returns 0 when it ended cleanly (everything consumed was committed or left
 * uncommitted for replay), -1 when it ended on a fatal error. */
int worker_join(worker_t *w);
void worker_free(worker_t *w);

/* Run-time changes from a SIGHUP reload; applied at the next batch. */
void worker_set_limits(worker_t *w, int batch_max, int batch_max_delay_ms, int batch_linger_ms,
                       int retry_max_ms);
/* Whether a stopping worker has committed everything it consumed (it may still be leaving the
 * Kafka group): past the shutdown bound, the process may then exit 0. Safe from any thread. */
int worker_drained(const worker_t *w);
/* Monotonic milliseconds of the worker's last loop turn, for the systemd watchdog. */
int64_t worker_heartbeat_ms(const worker_t *w);

int64_t worker_now_ms(void);

#endif
