/* The lanes: how vigild moves records from Kafka to PostgreSQL, effectively once.
 *
 * Each input kind has a lane of its own, so that no input ever waits for another's model or
 * writes: behavior events (features, risk model), news articles (encoder and heads) and labels
 * (both label topics). A lane is one member of the consumer group, subscribed to its own topics,
 * and two threads joined by two bounded queues:
 *
 *   reader: poll Kafka -> decode -> open batch -> enrich (features, model scores) -> close
 *             │ closed batches (at most ingest.batches_in_flight)        ▲ done batches
 *             ▼                                                          │
 *   writer: one PostgreSQL transaction per batch (rows + dead letters + fenced offset update),
 *           checkpoints handed to the checkpoint writer after the commit
 *
 * While the writer commits batch N, the reader fills and enriches batch N+1. Batches of a lane
 * are written in the order they were closed, so a partition's transactions commit in offset
 * order; every partition belongs to one topic and so to one lane, which makes each lane's offset
 * updates independent of the others' and leaves effectively-once as it was: each offset update
 * is conditional on the previous one (sink_pg.h). docs/architecture.md draws the whole picture.
 *
 * The main thread talks to the lanes only through this API (atomics inside); the lanes tell it
 * they are consuming, and that they have ended, through the callbacks (called on a lane's
 * thread; they must only wake the main loop). */
#ifndef VIGIL_LANES_H
#define VIGIL_LANES_H

#include <stddef.h>
#include <stdint.h>

#include "alert_rules.h"
#include "featurize.h"
#include "ingest_avro.h"
#include "model_runtime.h"

/* Most input topics: behavior events, news articles, fraud and news labels. */
#define LANES_INPUTS_MAX 4

/* One input: a topic and the decoder of the record kind it carries. */
typedef struct lanes_input {
    const char *topic;
    ingest_avro_t *decoder; /* ownership passes to the lanes, also when lanes_new fails */
} lanes_input_t;

typedef struct lanes_options {
    const lanes_input_t *inputs; /* 1..LANES_INPUTS_MAX, distinct topics */
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
    int batches_in_flight; /* closed batches per writer between the reader and the commit */
    int events_writers;    /* PostgreSQL connections the events lane writes with (0: 1) */
    int retry_max_ms;
    int shutdown_timeout_ms;
    /* Behavior features of the BehaviorEvent topic; NULL: none. Ownership passes to the lanes
     * (also when lanes_new fails). Entity state: see docs/features.md. */
    featurize_t *featurize;
    uint32_t features_max_entities; /* per partition and entity type */
    int64_t features_ttl_ms;        /* 0: entities never expire */
    int features_checkpoint_interval_ms;
    /* Scores events and articles; NULL: rows stay unscored. Borrowed: it must outlive the
     * lanes. */
    model_runtime_t *runtime;
    /* The fraud alert rules (pipeline/alerts), compiled against featurize's columns; NULL: no
     * fraud alerts. Ownership passes to the lanes (also when lanes_new fails). */
    alert_rules_t *alert_rules;
    /* A news batch closes when it holds this many articles (0: no such limit): the encoder takes
     * tens of milliseconds per article on a CPU, and a batch commits only once all are encoded. */
    size_t news_batch_max;
    void (*on_ready)(void *ctx); /* every lane is subscribed and consuming */
    void (*on_exit)(void *ctx);  /* every lane's threads have ended */
    void *ctx;
} lanes_options_t;

typedef struct lanes lanes_t;

/* Copies what it needs from opts (strings included), takes the inputs' decoders (built by the
 * caller, daemon_decoder_new, so that a bad schema is a start-up error) and groups the inputs
 * into lanes. Takes metrics slots, so call it from the main thread before anything counts.
 * Opens nothing yet: connecting to PostgreSQL (with retries), migrating and subscribing happen
 * on the lanes' threads, so a database that is down at start delays readiness instead of failing
 * the start. */
lanes_t *lanes_new(const lanes_options_t *opts, char *err, size_t errlen);
int lanes_start(lanes_t *ls, char *err, size_t errlen);
/* Asks every lane to stop: stop consuming, commit what is in flight, leave the group. */
void lanes_stop(lanes_t *ls);
/* Joins every lane's threads. Returns 0 when all ended cleanly (everything consumed was committed
 * or left uncommitted for replay), -1 when one ended on a fatal error. */
int lanes_join(lanes_t *ls);
void lanes_free(lanes_t *ls);

/* Run-time changes from a SIGHUP reload; applied from the next batch on. */
void lanes_set_limits(lanes_t *ls, int batch_max, int batch_max_delay_ms, int batch_linger_ms,
                      int retry_max_ms);
/* Whether every lane of a stopping process has committed everything it consumed (some may still
 * be leaving the Kafka group): past the shutdown bound, the process may then exit 0. Safe from
 * any thread. */
int lanes_drained(const lanes_t *ls);
/* Monotonic milliseconds of the oldest heartbeat of every lane thread, for the systemd watchdog:
 * a thread that stops turning holds it back. */
int64_t lanes_heartbeat_ms(const lanes_t *ls);
/* How many lanes there are (one per input kind configured). */
size_t lanes_count(const lanes_t *ls);

int64_t lanes_now_ms(void);

#endif
