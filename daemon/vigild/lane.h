/* One lane's insides, shared by the files that implement it (and by its unit tests):
 *
 *   lanes.c           the set of lanes: options, start, stop, join, heartbeats
 *   lane_reader.c     the reader thread: its loop, messages into the open batch, closing it
 *   lane_rebalance.c  the Kafka callbacks (assign, revoke), draining, taking back what the
 *                     writer is done with
 *   lane_batch.c      batch objects: items, growing, advances, discarding
 *   lane_partitions.c partitions: stored offsets, seeks, entity state resume and replay, fences,
 *                     checkpoints taken
 *   lane_enrich.c     what a batch's messages become before they are written: feature vectors
 *                     and risk scores (events), encoder and heads (articles)
 *   lane_writer.c     the writer thread: one transaction per batch, retries, isolation of a
 *                     refused record, checkpoints handed over after the commit
 *
 * Writers. A lane has one writer thread or more (the events lane: ingest.events_writers, each
 * with a PostgreSQL connection of its own, so that its COPYs run on several server backends at
 * once). A partition always goes to the same writer (partition % writers), so its transactions
 * stay in offset order; the reader keeps an open batch per writer.
 *
 * Ownership. The reader thread owns the consumer, the decoders, the partitions (offsets, entity
 * state), the dead-letter producer and every batch that is free or open. A closed batch belongs
 * to its writer from the moment it is pushed on the writer's to_write until the writer pushes it
 * on done; a writer owns its PostgreSQL connection and nothing else. They share the queues, a
 * handful of atomics and what never changes after start (topic names, options). Functions say
 * which thread they run on (@locality). */
#ifndef VIGIL_LANE_H
#define VIGIL_LANE_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "alert_rules.h"
#include "checkpointer.h"
#include "featurize.h"
#include "ingest_avro.h"
#include "ingest_dlq.h"
#include "ingest_kafka.h"
#include "json.h"
#include "lane_queue.h"
#include "lanes.h"
#include "metrics.h"
#include "model_runtime.h"
#include "rows.h"
#include "sink_pg.h"

#define LANE_REASON_MAX 512
/* How long the reader waits for a free batch before it pauses its partitions. */
#define LANE_PAUSE_AFTER_MS 1000
/* An open batch of events is enriched (featurised and scored) in steps of at most this many. */
#define LANE_ENRICH_CHUNK 4096
#define LANE_PING_INTERVAL_MS 5000
/* Most writers a lane may have. */
#define LANE_WRITERS_MAX 8

typedef enum lane_kind { LANE_EVENTS, LANE_NEWS, LANE_LABELS, LANE_KINDS } lane_kind_t;

struct lane_topic;

/* One consumed message and what became of it. The message is kept until its batch is done with:
 * rows and dead letters borrow its key, payload and the record's strings. */
typedef struct lane_item {
    rd_kafka_message_t *msg; /* owned */
    struct lane_topic *topic;
    int dead;
    int committed;             /* set by the writer once its transaction committed */
    int featured;              /* events: its vector is computed */
    float score;               /* events: the risk model's score, when model_version is set */
    const char *model_version; /* events: borrowed from the runtime; NULL: not scored */
    alert_severity_t alert;    /* events: the alert rules' verdict on its score and vector */
    size_t explain_at;         /* events with an alert: its explanation in the batch's explain,
                                  SIZE_MAX when there is none */
    /* articles: the news model's answer, in the batch's news_floats from news_at (NULL
     * news_version: not scored) */
    const char *sentiment, *topic_label, *news_version;
    size_t news_at;
    uint32_t n_sentiment, n_topics, dim;
    int64_t polled_ns;   /* when the reader took it from Kafka */
    ingest_record_t rec; /* rec.buf is reused from batch to batch */
    char reason[LANE_REASON_MAX];
} lane_item_t;

typedef enum lane_batch_status {
    LANE_BATCH_COMMITTED, /* its transaction committed */
    LANE_BATCH_FENCED,    /* an offset condition failed: another instance owns a partition */
    LANE_BATCH_DROPPED,   /* not written: a batch closed before it was fenced */
    LANE_BATCH_UNWRITTEN, /* not written: stopping, and the shutdown bound passed */
} lane_batch_status_t;

typedef struct lane_batch {
    uint64_t epoch; /* the reader's epoch when it closed the batch (see lane_t.epoch) */
    size_t writer;  /* the index of the writer its partitions go to */
    lane_item_t *items;
    size_t n_items, cap_items;
    size_t n_enriched; /* items [0, n_enriched) have their features and scores */
    size_t n_articles;
    float *features;    /* (cap_items, fz_width): item i's vector at i * fz_width */
    float *scores;      /* (cap_items) the risk model's answers */
    float *news_floats; /* the articles' probabilities and embeddings (lane_item_t.news_at) */
    size_t news_len, news_cap;
    char *explain; /* alert explanations (JSON objects, each NUL-terminated; lane_item_t) */
    size_t explain_len, explain_cap;
    sink_alert_changes_t alert_changes; /* what its transaction did to vigil.alerts */
    sink_offset_advance_t *advances;    /* per partition of the batch (room: cap_items) */
    size_t n_adv;
    /* The empty state at the first offset of each partition this is the first batch of (nothing
     * stored yet), written in its transaction (sink_batch_t.checkpoints; room: cap_items). */
    sink_checkpoint_t *first_states;
    size_t n_first;
    sink_checkpoint_t *checkpoints; /* snapshots of its partitions at its end (room: cap_ckpt) */
    int *ckpt_taken;                /* the checkpoint writer took checkpoints[i] */
    size_t n_ckpt, cap_ckpt;
    /* Filled by the writer. */
    rows_batch_t rows;
    sink_dead_letter_t *dead; /* (cap_items) */
    double *latency;          /* (cap_items) per message, for the commit latency histogram */
    lane_batch_status_t status;
    char err[512]; /* a fence's reason, for the log */
    /* Stage clocks (monotonic ns). */
    int64_t opened_ns, closed_ns, taken_ns, done_ns;
    double enrich_s;
} lane_batch_t;

/* What the reader knows of one partition. Offsets: `expected` is what PostgreSQL holds (as far
 * as committed batches tell); `sent_next` is where the last batch handed to its writer ends, so
 * the next batch's offset update expects it; `open_next` is where its open batch ends. */
typedef struct lane_partition {
    int assigned;
    int64_t expected;   /* stored next offset (SINK_PG_OFFSET_NONE: none yet) */
    int64_t sent_next;  /* == expected when nothing of it is in flight */
    int64_t open_next;  /* last offset in the open batch + 1; -1 when not in it */
    int64_t open_first; /* its first offset in the open batch, when open_next >= 0 */
    int seek_pending;   /* a seek to read_from failed: drop its messages until one succeeds */
    int64_t read_from;  /* where reading (re)starts: expected, or a checkpoint's offset */
    /* Featurised topic only: */
    features_state_t *state; /* the partition's entity state */
    int64_t state_next;      /* next offset the state expects; -1: any (nothing applied yet) */
    int64_t checkpoint_ms;   /* when the last checkpoint was taken by the writer; 0: none */
    int ckpt_in_flight;      /* a snapshot of it rides in a batch not yet done with */
    int state_broken;        /* an event could not be applied: never checkpoint this state */
    int64_t *replay_skip;    /* (n_replay_skip) ascending offsets of dead letters to replay past */
    size_t n_replay_skip, replay_skip_at;
} lane_partition_t;

/* One input topic of a lane. */
typedef struct lane_topic {
    char *name;
    int featurised;         /* its events get feature vectors (BehaviorEvent with features on) */
    ingest_avro_t *decoder; /* owned */
    metrics_topic_t *m;
    lane_partition_t *parts; /* indexed by partition id */
    size_t n_parts;
} lane_topic_t;

/* What every lane shares: the options, the stop flag, the limits. Written by the main thread
 * before the lanes start, except the atomics. */
typedef struct lanes_shared {
    char *pg_conninfo, *instance_id, *dlq_topic;
    char **kafka_keys, **kafka_values, **kafka_origins;
    size_t n_kafka;
    int shutdown_timeout_ms;
    size_t batches_in_flight; /* per writer */
    size_t events_writers;    /* writers of the events lane (the others have one) */
    featurize_t *fz;          /* NULL: no features */
    size_t fz_width;
    uint32_t max_entities;
    int64_t ttl_ms;
    int checkpoint_interval_ms;
    model_runtime_t *rt;        /* borrowed; NULL: no models */
    alert_rules_t *alert_rules; /* owned; NULL: no alerts */
    /* The rules' sentiment settings as the sink takes them; NULL: no sentiment alerts. */
    const sink_sentiment_rules_t *sentiment;
    sink_sentiment_rules_t sentiment_rules;
    size_t news_batch_max;
    atomic_int stop;
    atomic_int batch_max, batch_max_delay_ms, batch_linger_ms, retry_max_ms;
    _Atomic int64_t stop_deadline_ms; /* when a stop must be done by; 0 until asked to stop */
} lanes_shared_t;

struct lane;

/* One writer of a lane: its thread and connection, and what the reader keeps for it. */
typedef struct lane_writer {
    struct lane *lane;
    size_t index;
    /* The writer thread's. */
    pthread_t thread;
    int started;
    sink_pg_t *pg;
    uint64_t fenced_epoch; /* batches closed in this epoch or before are dropped */
    int gave_up;           /* stopping and past the bound: nothing more is written */
    int64_t last_write_ms;
    _Atomic int64_t beat_ms;  /* 0 while no thread runs */
    atomic_int write_failing; /* its last attempt failed: the reader pauses */
    lane_queue_t to_write;    /* closed batches, oldest first */
    /* The reader's. */
    lane_batch_t *open; /* the batch being filled for it; NULL when none is free */
    size_t in_flight;   /* closed for it and not yet taken back */
    int64_t batch_deadline_ms;
} lane_writer_t;

typedef struct lane {
    lanes_t *owner;
    lanes_shared_t *sh;
    lane_kind_t kind;
    const char *name; /* "events", "news", "labels" */
    metrics_lane_t *m;
    lane_topic_t topics[LANES_INPUTS_MAX];
    size_t n_topics;

    /* The reader thread's. */
    pthread_t reader;
    int reader_started;
    ingest_kafka_t *kafka;
    ingest_dlq_t *dlq;  /* NULL: no dead-letter topic */
    sink_pg_t *control; /* offsets, checkpoints, dead-letter offsets: opened when needed */
    lane_batch_t *pool; /* (n_pool) every batch the lane owns */
    size_t n_pool;
    lane_batch_t **free_list; /* (n_pool) */
    size_t n_free;
    lane_writer_t writers[LANE_WRITERS_MAX];
    size_t n_writers;
    /* Bumped when a batch comes back fenced: the batches closed before it (still in flight, on
     * any writer) are dropped by the writers (drop_before) and the busy partitions refenced once
     * every one of them is back. */
    uint64_t epoch;
    _Atomic uint64_t drop_before; /* writers drop batches of older epochs */
    int fence_pending;            /* a fenced batch came back: settle, then refence */
    checkpointer_t *ckpt;         /* events: made at the first checkpoint */
    size_t ckpt_in_flight;
    int64_t checkpoint_paced_ms;
    int paused;         /* fetching is paused */
    int pause_schema;   /* paused while a writer schema cannot be fetched */
    int64_t waiting_ms; /* since when the reader waits for a free batch; 0: it does not */
    int64_t batch_last_add_ms;
    uint8_t *empty_state; /* an empty entity state's snapshot (lane_batch_t.first_states) */
    size_t empty_state_len;
    ingest_record_t replay_rec; /* decodes replayed events */
    float *replay_features;     /* (fz_width) their vectors, unused */
    /* Scratch of lane_enrich, (scratch_cap) each. */
    size_t scratch_cap;
    features_event_t *fz_events;
    float **fz_outs;
    double *fz_num;      /* (scratch_cap, featurize_fields) */
    const char **fz_str; /* (scratch_cap, featurize_fields) */
    size_t *order;       /* items grouped by partition */
    size_t *part_count;  /* (scratch_parts) */
    size_t scratch_parts;
    char *news_text; /* headline, newline, body of each article, one after the other */
    size_t news_text_cap;
    const char **news_texts;
    size_t *news_lens, *news_item;
    model_runtime_news_t news;   /* the runtime's answer for one enrichment step */
    float *alert_x, *alert_attr; /* (alert_cap, fz_width) the alerted events' vectors, their
                                    attributions */
    size_t *alert_item;          /* (alert_cap) their items */
    size_t alert_cap;
    json_buf_t explain_json;
    uint64_t fences;
    int enrich_failed; /* the open batch's entity state broke: it is never written */
    int failed;        /* ended on a fatal error */
    int unwritten;     /* a batch was given up at the shutdown bound */
    atomic_int drained;
    _Atomic int64_t reader_beat_ms;

    /* Between the reader and every writer. */
    lane_queue_t done; /* batches the writers are done with */
} lane_t;

/* lanes.c */
/* The lane of kind (NULL when there is none), for tests. */
lane_t *lanes_lane(lanes_t *ls, lane_kind_t kind);
int64_t lane_now_ns(void);
int lane_stopping(const lane_t *l);
void lane_request_stop(lane_t *l); /* stops every lane of the process */
void lane_reader_beat(lane_t *l);
/* Sleeps *ms in short steps, keeping beat alive, then doubles *ms up to retry_max_ms. Returns
 * -1 when a stop was asked and the shutdown bound has passed. */
int lane_backoff(lane_t *l, _Atomic int64_t *beat, int *ms);
void lanes_lane_ready(lanes_t *ls);
void lanes_lane_exited(lanes_t *ls);

/* lane_reader.c */
void *lane_reader_main(void *arg);
/* The lane's PostgreSQL schema, consumer (subscribed, not polled yet) and writer threads.
 * Returns 0 (also when stopped first: l->kafka is then NULL) or -1. */
int lane_open(lane_t *l);
/* Drains the lane, leaves the group, joins the writers and frees what lane_open made. */
void lane_finish(lane_t *l);
/* One message from the consumer into the lane: replayed into the state, dropped, or decoded
 * into its writer's open batch. Takes msg. */
void lane_message(lane_t *l, rd_kafka_message_t *msg);
/* The writer partition goes to. */
lane_writer_t *lane_writer_of(lane_t *l, int32_t partition);
/* Batches closed and not yet taken back, over all the lane's writers. */
size_t lane_in_flight(const lane_t *l);
/* Every writer without an open batch gets a free one. Returns 0, or -1 when one is left
 * without (none was free). */
int lane_take_free(lane_t *l);
/* Closes w's open batch (enriched to its end) and hands it to w. Returns 0, or -1 when it
 * cannot be enriched (the lane is stopping on a fatal error). @locality: reader. */
int lane_close_batch(lane_t *l, lane_writer_t *w);
/* lane_close_batch for every writer. */
int lane_close_open(lane_t *l);

/* lane_rebalance.c */
/* Hands the open batch to the writer and waits until every batch in flight is back. Returns 0,
 * or -1 when one could not be written (stopping past the bound). @locality: reader. */
int lane_drain(lane_t *l);
/* Takes back every batch the writer is done with, waiting up to timeout_ms for the first.
 * Returns how many. @locality: reader. */
size_t lane_take_back(lane_t *l, int timeout_ms);
/* The consumer's callbacks (ingest_kafka_callbacks_t), inside ingest_kafka_poll. */
int lane_on_assign(void *ctx, const char *topic, const int32_t *partitions, size_t n,
                   int64_t *offsets);
void lane_on_revoke(void *ctx, const char *topic, const int32_t *partitions, size_t n);

/* lane_batch.c */
/* realloc that leaves *p as it was on failure. Returns 0 or -1. */
int lane_grow(void **p, size_t bytes);
int lane_batch_init(lane_batch_t *b, const lanes_shared_t *sh, char *err, size_t errlen);
void lane_batch_free(lane_batch_t *b);
/* Room for need items. Returns 0 or -1 (out of memory; the batch is as it was). */
int lane_batch_reserve(lane_batch_t *b, const lanes_shared_t *sh, size_t need);
/* Room for n more floats in news_floats. */
int lane_batch_news_reserve(lane_batch_t *b, size_t n);
/* Empties the batch: messages destroyed, untaken checkpoint snapshots freed. */
void lane_batch_reset(lane_batch_t *b);
/* The message's Kafka timestamp, -1 when there is none. */
int64_t lane_kafka_timestamp(const rd_kafka_message_t *msg);
/* Appends the row (or dead letter) of item i to the batch's rows (or dead, at *n_dead).
 * @locality: writer. */
void lane_batch_fill_one(lane_batch_t *b, const lanes_shared_t *sh, size_t i, size_t *n_dead);

/* lane_partitions.c */
lane_topic_t *lane_topic_find(lane_t *l, const char *name);
lane_partition_t *lane_partition(lane_topic_t *t, int32_t partition);
/* The control connection, connected, retrying until it works or the lane stops (NULL). */
sink_pg_t *lane_control(lane_t *l);
/* Closes it: it is only needed around assignments and fences. */
void lane_control_release(lane_t *l);
/* Runs one job on the control connection, retrying database errors with backoff until it works
 * or the lane stops. what(l, pg, ctx, err, errlen) returns a SINK_PG_ code; doing names it in the
 * log. Returns 0 or -1. */
int lane_control_retry(lane_t *l, const char *doing,
                       int (*what)(lane_t *, sink_pg_t *, void *, char *, size_t), void *ctx);
int lane_offsets_load(lane_t *l, const lane_topic_t *t, const int32_t *partitions, size_t n,
                      int64_t *offsets);
int lane_state_resume(lane_t *l, lane_topic_t *t, int32_t id);
void lane_seek_stored(lane_t *l, lane_topic_t *t, int32_t id);
/* After a fence, or a batch given up: re-reads the stored offset of every partition with work
 * not committed (and of (topic, partition) when topic is not NULL), resumes its state, seeks
 * there; the open batches are emptied. */
void lane_refence(lane_t *l, lane_topic_t *topic, int32_t partition);
/* Replays an event before the stored offset into its partition's state. Takes msg. */
void lane_replay(lane_t *l, lane_topic_t *t, lane_partition_t *p, rd_kafka_message_t *msg);
/* Snapshots of the partitions of b (those of its writer) due a checkpoint, into b->checkpoints.
 * Runs before the batch's advances clear open_next. */
void lane_checkpoints_take(lane_t *l, lane_batch_t *b);
void lane_entities_publish(lane_t *l);
void lane_lag_update(lane_t *l);
/* Pauses or resumes fetching of every assigned partition. */
void lane_pause(lane_t *l, int pause, const char *why);

/* lane_enrich.c */
/* Features and scores of batch b's items not enriched yet. Returns 0, or -1 when the entity
 * state broke (out of memory): the batch must never be written. @locality: reader. */
int lane_enrich(lane_t *l, lane_batch_t *b);
/* Makes the enrichment scratch big enough for a batch of n items. */
int lane_enrich_reserve(lane_t *l, size_t n);
void lane_enrich_free(lane_t *l);

/* lane_writer.c */
void *lane_writer_main(void *arg); /* arg: the lane_writer_t */

#endif
