/* The worker thread: Kafka -> decode -> batch -> PostgreSQL, effectively once (see worker.h).
 *
 * One consumer reads every input topic; a batch may mix them (behavior events, news articles,
 * labels) and is still one transaction. Each topic has its decoder (its record kind), its
 * partitions' offsets and its metrics.
 *
 * Offsets. For every assigned partition the worker remembers the offset stored in PostgreSQL
 * ("expected"). A batch commits, in one transaction, its rows, its dead letters and for each of
 * its partitions "next_offset = last + 1 WHERE next_offset = expected". If another instance took
 * the partition and moved the stored offset on, the condition fails, the transaction rolls back
 * and the worker re-reads the stored offsets and seeks there: a fenced instance writes nothing.
 *
 * Entity state. The BehaviorEvent topic's events are turned into feature vectors when their
 * batch is flushed, updating the entity state of their partition (one per partition). Every so
 * often a batch also carries the partition's state as a checkpoint, written in the same
 * transaction, so the checkpoint's offset and the state agree. On assignment (and after a fence)
 * the worker loads the checkpoint and reads from its offset: events before the stored Kafka offset
 * are replayed into the state only (their rows are committed already), later ones are written. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpointer.h"
#include "ingest_avro.h"
#include "ingest_dlq.h"
#include "ingest_kafka.h"
#include "log.h"
#include "metrics.h"
#include "rows.h"
#include "sink_pg.h"

#define WORKER_REASON_MAX 512
#define WORKER_PING_INTERVAL_MS 5000

/* One consumed message and what decoding made of it. The message is kept until the batch is
 * written because dead letters borrow its key and payload. */
typedef struct worker_item {
    rd_kafka_message_t *msg; /* owned */
    struct worker_topic *topic;
    int dead;
    float *features; /* (features width) the event's vector, when its topic is featurised */
    int featured;    /* computed (at the flush; a flush tried again does not redo them) */
    float score;     /* the risk model's score, when model_version is set */
    const char *model_version; /* borrowed from the model runtime; NULL: not scored */
    long news_row;             /* article: its row in w->news, -1 when not scored */
    ingest_record_t rec;       /* rec.buf is reused from batch to batch */
    char reason[WORKER_REASON_MAX];
} worker_item_t;

/* What the worker knows of one partition of a topic. */
typedef struct worker_partition {
    int assigned;
    int64_t expected;   /* stored next offset in PostgreSQL (SINK_PG_OFFSET_NONE: none yet) */
    int64_t batch_next; /* last offset in the current batch + 1; -1 when not in the batch */
    int seek_pending;   /* a seek to read_from failed: drop its messages until one succeeds */
    int64_t read_from;  /* where reading (re)starts: expected, or a checkpoint's offset */
    /* Featurised topic only: */
    features_state_t *state; /* the partition's entity state */
    int64_t state_next;      /* next offset the state expects; -1: any (nothing applied yet) */
    int64_t checkpoint_ms;   /* when the last checkpoint was committed; 0: none is usable */
    int state_broken;        /* an event could not be applied: never checkpoint this state */
    int64_t *replay_skip;    /* (n_replay_skip) ascending offsets of dead letters to replay past */
    size_t n_replay_skip, replay_skip_at;
} worker_partition_t;

/* One input topic: its name, the decoder of its record kind, its partitions, its metrics. */
typedef struct worker_topic {
    char *name;
    int featurised; /* its events get feature vectors (BehaviorEvent topic with features on) */
    ingest_avro_t *decoder; /* owned (handed over by worker_new's caller) */
    metrics_topic_t *m;
    worker_partition_t *parts; /* indexed by partition id */
    size_t n_parts;
} worker_topic_t;

struct worker {
    /* Options, copied. */
    worker_topic_t topics[WORKER_INPUTS_MAX];
    size_t n_topics;
    char *pg_conninfo, *instance_id, *dlq_topic;
    char **kafka_keys, **kafka_values, **kafka_origins;
    size_t n_kafka;
    int shutdown_timeout_ms;
    featurize_t *fz; /* NULL: no features */
    size_t fz_width;
    uint32_t max_entities;
    int64_t ttl_ms;
    int checkpoint_interval_ms;
    model_runtime_t *rt;   /* borrowed; NULL: no models */
    size_t news_batch_max; /* a batch closes at this many articles (0: no such limit) */
    void (*on_ready)(void *ctx);
    void (*on_exit)(void *ctx);
    void *ctx;

    /* Shared with the main thread. */
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_int batch_max, batch_max_delay_ms, batch_linger_ms, retry_max_ms;
    _Atomic int64_t heartbeat_ms;
    _Atomic int64_t stop_deadline_ms; /* when a stop must be done by; 0 until asked to stop */
    atomic_int drained;               /* stopping, and everything consumed is committed */
    int failed;

    /* Owned by the worker thread. */
    ingest_kafka_t *kafka;
    ingest_dlq_t *dlq; /* NULL: no dead-letter topic */
    sink_pg_t *pg;
    worker_item_t *items;
    size_t n_items, cap_items;
    rows_batch_t rows;
    sink_dead_letter_t *dead;
    sink_offset_advance_t *advances; /* one per partition in the batch, any topic */
    const char **commit_topics;
    int32_t *commit_parts;
    int64_t *commit_next;
    sink_checkpoint_t *checkpoints; /* (cap_items) of the batch being written */
    checkpointer_t *ckpt;           /* writes them once committed; made at the first one */
    ingest_record_t replay_rec;     /* decodes replayed events */
    float *replay_features;         /* (fz_width) their vectors, unused */
    /* (cap_items) scratch of worker_batch_featurise: one partition's events at a time */
    features_event_t *fz_events;
    float **fz_outs;
    float *score_x;     /* (cap_items, fz_width) the batch's vectors, contiguous for the model */
    float *score_out;   /* (cap_items) */
    size_t *score_item; /* (cap_items) which item each row of score_x is */
    /* News scoring of the batch's articles: their texts and the runtime's answer. */
    char *news_text; /* headline, newline, body of each article, one after the other */
    size_t news_text_cap;
    const char **news_texts;
    size_t *news_lens, news_cap;
    model_runtime_news_t news;
    double *fz_num;      /* (cap_items, featurize_fields) */
    const char **fz_str; /* (cap_items, featurize_fields) */
    int64_t batch_deadline_ms;
    int64_t batch_last_add_ms;   /* when the worker last received a message */
    int64_t checkpoint_paced_ms; /* when the last interval-driven checkpoint was taken */
    size_t n_articles;           /* items of the batch from an article topic */
    int paused;                  /* fetching paused because the sink is failing */
    uint64_t fences;             /* batches dropped as fenced, so far */
};

static int64_t worker_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t worker_now_ms(void)
{
    return worker_now_ns() / 1000000;
}

/* Counts a committed item: written or dead-lettered, and dead letters by kind of reason. */
static void worker_count_committed(const worker_item_t *it)
{
    metrics_topic_t *m = it->topic->m;
    if (it->dead) {
        metrics_add(&m->dead_lettered, 1);
        metrics_add(&m->dead_by_reason[metrics_dead_reason_of(it->reason)], 1);
    } else {
        metrics_add(&m->written, 1);
    }
}

/* Refreshes vigil_consumer_lag for the assigned partitions from cached watermarks. */
static void worker_lag_update(worker_t *w)
{
    for (size_t t = 0; t < w->n_topics; t++) {
        worker_topic_t *tp = &w->topics[t];
        for (size_t p = 0; p < tp->n_parts && p < METRICS_PARTITIONS_MAX; p++) {
            const worker_partition_t *part = &tp->parts[p];
            int64_t low, high, lag = -1;
            if (part->assigned &&
                ingest_kafka_watermarks(w->kafka, tp->name, (int32_t)p, &low, &high) == 0) {
                int64_t from = part->expected == SINK_PG_OFFSET_NONE ? low : part->expected;
                lag = high > from ? high - from : 0;
            }
            atomic_store(&tp->m->consumer_lag[p], lag);
        }
    }
}

/* The input topic a message or a callback names; NULL for one we do not read. */
static worker_topic_t *worker_topic_find(worker_t *w, const char *name)
{
    for (size_t t = 0; name && t < w->n_topics; t++)
        if (strcmp(w->topics[t].name, name) == 0)
            return &w->topics[t];
    return NULL;
}

static int worker_stopping(worker_t *w)
{
    return atomic_load(&w->stop);
}

static void worker_beat(worker_t *w)
{
    atomic_store(&w->heartbeat_ms, worker_now_ms());
}

/* Sleeps *ms in short steps so that a stop request is noticed, and keeps the heartbeat alive:
 * waiting for PostgreSQL to come back is not a hang. *ms then doubles, up to retry_max_ms, for
 * the caller's next try. Returns -1 when stop was requested and the shutdown deadline has
 * passed. */
static int worker_backoff(worker_t *w, int *ms)
{
    int64_t until = worker_now_ms() + *ms;
    int max = atomic_load(&w->retry_max_ms);
    *ms = *ms * 2 > max ? max : *ms * 2; /* the next wait */
    while (worker_now_ms() < until) {
        struct timespec step = {0, 50 * 1000000L};
        worker_beat(w);
        int64_t deadline = atomic_load(&w->stop_deadline_ms);
        if (deadline && worker_now_ms() > deadline)
            return -1;
        nanosleep(&step, NULL);
    }
    return 0;
}

static char *worker_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* --- partitions ------------------------------------------------------------------------- */

static worker_partition_t *worker_partition(worker_topic_t *t, int32_t partition)
{
    if (partition < 0)
        return NULL;
    if ((size_t)partition >= t->n_parts) {
        size_t n = (size_t)partition + 1;
        worker_partition_t *p = realloc(t->parts, n * sizeof(*p));
        if (!p)
            return NULL;
        for (size_t i = t->n_parts; i < n; i++)
            p[i] = (worker_partition_t){.expected = SINK_PG_OFFSET_NONE,
                                        .batch_next = -1,
                                        .read_from = SINK_PG_OFFSET_NONE,
                                        .state_next = -1};
        t->parts = p;
        t->n_parts = n;
    }
    return &t->parts[partition];
}

/* Loads stored offsets of topic t until it succeeds or the worker stops. @locality: worker
 * thread. */
static int worker_offsets_load(worker_t *w, const worker_topic_t *t, const int32_t *partitions,
                               size_t n, int64_t *offsets)
{
    char err[512];
    char q[1100];
    int backoff = 100;
    for (;;) {
        if (sink_pg_reconnect(w->pg, err, sizeof(err)) == SINK_PG_OK &&
            sink_pg_offsets_load(w->pg, ingest_kafka_group(w->kafka), t->name, partitions, n,
                                 offsets, err, sizeof(err)) == SINK_PG_OK) {
            atomic_store(&metrics.pg_up, 1);
            return 0;
        }
        metrics_add(&metrics.pg_errors, 1);
        atomic_store(&metrics.pg_up, 0);
        log_warn("cannot read stored offsets; retrying", "error=\"%s\" retry_ms=%d",
                 log_quote(err, q, sizeof(q)), backoff);
        if (worker_stopping(w) || worker_backoff(w, &backoff) != 0)
            return -1;
    }
}

/* --- batch ------------------------------------------------------------------------------ */

static int worker_batch_reserve(worker_t *w, size_t need)
{
    if (need <= w->cap_items)
        return 0;
    size_t cap = w->cap_items * 2 > need ? w->cap_items * 2 : need;
    worker_item_t *items = realloc(w->items, cap * sizeof(*items));
    if (!items)
        return -1;
    memset(items + w->cap_items, 0, (cap - w->cap_items) * sizeof(*items));
    w->items = items;
    int rows = rows_batch_reserve(&w->rows, cap) == 0;
    void *dead = realloc(w->dead, cap * sizeof(*w->dead));
    if (dead)
        w->dead = dead;
    void *adv = realloc(w->advances, cap * sizeof(*w->advances));
    if (adv)
        w->advances = adv;
    void *ct = realloc(w->commit_topics, cap * sizeof(*w->commit_topics));
    if (ct)
        w->commit_topics = ct;
    void *cp = realloc(w->commit_parts, cap * sizeof(*w->commit_parts));
    if (cp)
        w->commit_parts = cp;
    void *cn = realloc(w->commit_next, cap * sizeof(*w->commit_next));
    if (cn)
        w->commit_next = cn;
    void *ck = realloc(w->checkpoints, cap * sizeof(*w->checkpoints));
    if (ck)
        w->checkpoints = ck;
    int feats = 1;
    for (size_t i = w->cap_items; w->fz && i < cap; i++)
        feats &= (items[i].features = malloc(w->fz_width * sizeof(float))) != NULL;
    if (w->fz) {
        size_t nf = featurize_fields(w->fz);
        void *fe = realloc(w->fz_events, cap * sizeof(*w->fz_events));
        if (fe)
            w->fz_events = fe;
        void *fo = realloc(w->fz_outs, cap * sizeof(*w->fz_outs));
        if (fo)
            w->fz_outs = fo;
        void *fn = realloc(w->fz_num, cap * nf * sizeof(*w->fz_num));
        if (fn)
            w->fz_num = fn;
        void *fs = realloc(w->fz_str, cap * nf * sizeof(*w->fz_str));
        if (fs)
            w->fz_str = fs;
        void *sx = realloc(w->score_x, cap * w->fz_width * sizeof(*w->score_x));
        if (sx)
            w->score_x = sx;
        void *so = realloc(w->score_out, cap * sizeof(*w->score_out));
        if (so)
            w->score_out = so;
        void *si = realloc(w->score_item, cap * sizeof(*w->score_item));
        if (si)
            w->score_item = si;
        feats &= fe && fo && fn && fs && sx && so && si;
    }
    if (!rows || !dead || !adv || !ct || !cp || !cn || !ck || !feats) {
        for (size_t i = w->cap_items; i < cap; i++) {
            free(items[i].features);
            items[i].features = NULL;
        }
        return -1;
    }
    w->cap_items = cap;
    return 0;
}

/* Drops the batch without writing it: messages freed, partitions' batch positions cleared. */
static void worker_batch_discard(worker_t *w)
{
    for (size_t i = 0; i < w->n_items; i++) {
        rd_kafka_message_destroy(w->items[i].msg);
        w->items[i].msg = NULL;
    }
    w->n_items = 0;
    w->n_articles = 0;
    for (size_t t = 0; t < w->n_topics; t++)
        for (size_t p = 0; p < w->topics[t].n_parts; p++)
            w->topics[t].parts[p].batch_next = -1;
}

/* The message's Kafka timestamp, -1 when there is none. */
static int64_t worker_kafka_timestamp(const rd_kafka_message_t *msg)
{
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(msg, &tstype);
    return tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

static void worker_fill_row(worker_t *w, const worker_item_t *it)
{
    rows_batch_add(&w->rows, &it->rec, it->topic->name, it->msg->partition, it->msg->offset,
                   worker_kafka_timestamp(it->msg));
    if (it->topic->featurised) {
        rows_batch_set_features(&w->rows, it->features, w->fz_width, featurize_spec_hash(w->fz));
        rows_batch_set_score(&w->rows, it->score, it->model_version);
    }
    if (it->rec.kind == INGEST_KIND_ARTICLE && it->news_row >= 0) {
        const model_runtime_news_t *nr = &w->news;
        size_t r = (size_t)it->news_row;
        rows_news_result_t res = {nr->sentiment[r],
                                  nr->sentiment_probs + r * nr->n_sentiment,
                                  nr->n_sentiment,
                                  nr->topic[r],
                                  nr->topic_probs + r * nr->n_topics,
                                  nr->n_topics,
                                  nr->embedding + r * nr->dim,
                                  nr->dim,
                                  nr->version};
        rows_batch_set_news(&w->rows, &res);
    }
}

static void worker_fill_dead(const worker_item_t *it, sink_dead_letter_t *d)
{
    *d = (sink_dead_letter_t){
        .at = {it->topic->name, it->msg->partition, it->msg->offset,
               worker_kafka_timestamp(it->msg)},
        .key = it->msg->key,
        .key_len = it->msg->key_len,
        .payload = it->msg->payload,
        .payload_len = it->msg->len,
        .reason = it->reason,
    };
}

/* Moves a partition's read position to its stored offset. Until that works the partition's
 * messages are dropped (worker_batch_add), since reading on from the wrong place could skip
 * events; the main loop retries. @locality: worker thread. */
static void worker_seek_stored(worker_t *w, worker_topic_t *t, int32_t id)
{
    char err[512];
    char q[1100];
    worker_partition_t *p = &t->parts[id];

    if (ingest_kafka_seek(w->kafka, t->name, id, p->read_from, err, sizeof(err)) == 0) {
        p->seek_pending = 0;
        return;
    }
    if (!p->seek_pending)
        log_warn("seek to the stored offset failed; the partition's messages are dropped until "
                 "a retry succeeds",
                 "topic=%s partition=%d offset=%lld error=\"%s\"", t->name, (int)id,
                 (long long)p->read_from, log_quote(err, q, sizeof(q)));
    p->seek_pending = 1;
}

/* The dead letters between a checkpoint and the stored offset: live, decoding refused them, so
 * they never reached the state, and a replay must not let them in even if they would decode now
 * (a schema registered since, say). Retries database errors. Returns 0, -1 when stopping.
 * @locality: worker thread. */
static int worker_replay_skip_load(worker_t *w, worker_topic_t *t, int32_t id, int64_t ckpt)
{
    worker_partition_t *p = &t->parts[id];
    char err[512], q[1100];
    int backoff = 100;
    for (;;) {
        if (sink_pg_reconnect(w->pg, err, sizeof(err)) == SINK_PG_OK &&
            sink_pg_dead_offsets_load(w->pg, t->name, id, ckpt, p->expected, &p->replay_skip,
                                      &p->n_replay_skip, err, sizeof(err)) == SINK_PG_OK)
            return 0;
        metrics_add(&metrics.pg_errors, 1);
        log_warn("cannot read dead-letter offsets for a replay; retrying",
                 "topic=%s partition=%d error=\"%s\" retry_ms=%d", t->name, (int)id,
                 log_quote(err, q, sizeof(q)), backoff);
        if (worker_stopping(w) || worker_backoff(w, &backoff) != 0)
            return -1;
    }
}

/* The oldest offset Kafka still holds for the partition, retrying until it answers or the worker
 * stops (-1). @locality: worker thread. */
static int worker_low_watermark(worker_t *w, worker_topic_t *t, int32_t id, int64_t *low)
{
    char err[512], q[600];
    int backoff = 100;
    while (ingest_kafka_query_low(w->kafka, t->name, id, 5000, low, err, sizeof(err)) != 0) {
        log_warn("cannot read the partition's low watermark; retrying",
                 "topic=%s partition=%d error=\"%s\" retry_ms=%d", t->name, (int)id,
                 log_quote(err, q, sizeof(q)), backoff);
        if (worker_stopping(w) || worker_backoff(w, &backoff) != 0)
            return -1;
    }
    return 0;
}

/* Where a featurised partition resumes, given its stored offset: its entity state comes back from
 * the checkpoint in PostgreSQL and reading starts at the checkpoint's offset, so the events
 * between it and the stored offset rebuild the state (worker_batch_add replays them without
 * writing). Without a usable checkpoint the state starts empty at the stored offset. Retries
 * database errors until it works or the worker stops. Sets p->read_from. Returns 0, -1 when
 * stopping or out of memory. @locality: worker thread. */
static int worker_state_resume(worker_t *w, worker_topic_t *t, int32_t id)
{
    worker_partition_t *p = &t->parts[id];
    char err[512], q[1100], hash[64] = "";
    uint8_t *state = NULL;
    size_t len = 0;
    int64_t ckpt = SINK_PG_OFFSET_NONE, low = 0;
    int backoff = 100;

    p->read_from = p->expected;
    p->state_next = -1;
    p->checkpoint_ms = 0;
    p->state_broken = 0;
    free(p->replay_skip);
    p->replay_skip = NULL;
    p->n_replay_skip = p->replay_skip_at = 0;
    if (!t->featurised)
        return 0;
    if (!p->state) {
        p->state =
            features_state_new(featurize_spec(w->fz), w->max_entities, w->ttl_ms, err, sizeof(err));
        if (!p->state) {
            log_error("cannot create the entity state", "topic=%s partition=%d error=\"%s\"",
                      t->name, (int)id, log_quote(err, q, sizeof(q)));
            return -1;
        }
    }
    features_state_clear(p->state);
    for (;;) {
        if (sink_pg_reconnect(w->pg, err, sizeof(err)) == SINK_PG_OK &&
            sink_pg_checkpoint_load(w->pg, ingest_kafka_group(w->kafka), t->name, id, &ckpt, hash,
                                    sizeof(hash), &state, &len, err, sizeof(err)) == SINK_PG_OK)
            break;
        metrics_add(&metrics.pg_errors, 1);
        log_warn("cannot read the entity state checkpoint; retrying",
                 "topic=%s partition=%d error=\"%s\" retry_ms=%d", t->name, (int)id,
                 log_quote(err, q, sizeof(q)), backoff);
        if (worker_stopping(w) || worker_backoff(w, &backoff) != 0)
            return -1;
    }
    if (!state) {
        if (p->expected != SINK_PG_OFFSET_NONE)
            log_warn("no entity state checkpoint; aggregates start empty at the stored offset",
                     "topic=%s partition=%d offset=%lld", t->name, (int)id, (long long)p->expected);
    } else if (strcmp(hash, featurize_spec_hash(w->fz)) != 0) {
        log_warn("entity state checkpoint taken under another feature spec; aggregates start "
                 "empty at the stored offset",
                 "topic=%s partition=%d checkpoint_spec=%s spec=%s", t->name, (int)id, hash,
                 featurize_spec_hash(w->fz));
    } else if (p->expected == SINK_PG_OFFSET_NONE || ckpt > p->expected) {
        log_warn("entity state checkpoint is ahead of the stored offset; not used",
                 "topic=%s partition=%d checkpoint=%lld stored=%lld", t->name, (int)id,
                 (long long)ckpt, (long long)p->expected);
    } else if (features_state_load(p->state, state, len, err, sizeof(err)) != 0) {
        log_warn("entity state checkpoint unusable; aggregates start empty at the stored offset",
                 "topic=%s partition=%d error=\"%s\"", t->name, (int)id,
                 log_quote(err, q, sizeof(q)));
    } else if (worker_low_watermark(w, t, id, &low) != 0) {
        free(state);
        return -1;
    } else if (ckpt < low) {
        /* Retention removed events the replay needs: reading from ckpt would restart at
         * auto.offset.reset instead, and with "latest" even skip what was never written. */
        features_state_clear(p->state); /* loaded above, but not usable */
        log_warn("entity state checkpoint older than Kafka's retention; aggregates start empty "
                 "at the stored offset",
                 "topic=%s partition=%d checkpoint=%lld low_watermark=%lld", t->name, (int)id,
                 (long long)ckpt, (long long)low);
    } else if (worker_replay_skip_load(w, t, id, ckpt) != 0) {
        free(state);
        return -1;
    } else {
        p->read_from = ckpt;
        p->state_next = ckpt;
        /* checkpoint_ms stays 0: the first batch checkpoints again, so a crash loop shorter
         * than the interval does not make every restart replay further back */
        log_info("entity state restored; replaying up to the stored offset",
                 "topic=%s partition=%d checkpoint=%lld stored=%lld replay=%lld", t->name, (int)id,
                 (long long)ckpt, (long long)p->expected, (long long)(p->expected - ckpt));
    }
    if (p->state_next < 0 && p->expected != SINK_PG_OFFSET_NONE)
        p->state_next = p->expected;
    free(state);
    return 0;
}

/* After a fenced write: the stored offsets moved on without us. Re-read them for the batch's
 * partitions and seek there; whatever we still own continues from the truth in PostgreSQL. */
static void worker_refence(worker_t *w)
{
    for (size_t t = 0; t < w->n_topics; t++) {
        worker_topic_t *tp = &w->topics[t];
        for (size_t p = 0; p < tp->n_parts; p++) {
            int32_t id = (int32_t)p;
            int64_t stored;
            if (tp->parts[p].batch_next < 0 || !tp->parts[p].assigned)
                continue;
            if (worker_offsets_load(w, tp, &id, 1, &stored) != 0)
                return;
            tp->parts[p].expected = stored;
            if (worker_state_resume(w, tp, id) != 0)
                return;
            worker_seek_stored(w, tp, id);
        }
    }
}

/* Pauses or resumes fetching for all assigned partitions: the backpressure of the one queue
 * between Kafka and PostgreSQL (the batch). While a write keeps failing nothing more is fetched
 * and librdkafka's prefetched messages are released. @locality: worker thread. */
static void worker_pause(worker_t *w, int pause)
{
    char err[512];
    char q[1100];
    int n;

    if (w->paused == pause || !w->kafka)
        return;
    n = ingest_kafka_pause_all(w->kafka, pause, err, sizeof(err));
    if (n < 0) {
        log_warn(pause ? "cannot pause partitions" : "cannot resume partitions", "error=\"%s\"",
                 log_quote(err, q, sizeof(q)));
        if (pause)
            return; /* not paused: the prefetch bound still holds memory */
    }
    w->paused = pause;
    for (size_t t = 0; t < w->n_topics; t++) {
        metrics_topic_t *m = w->topics[t].m;
        atomic_store(&m->paused_partitions, pause ? atomic_load(&m->assigned_partitions) : 0);
    }
    log_info(pause ? "partitions paused while PostgreSQL writes fail" : "partitions resumed",
             "partitions=%d", n);
}

/* Writes one batch, retrying database errors on a new connection with backoff. Returns
 * SINK_PG_OK, SINK_PG_FENCED or SINK_PG_REJECTED as sink_pg_write does, or SINK_PG_ERR once the
 * worker is stopping and the shutdown bound has passed. @locality: worker thread. */
static int worker_write(worker_t *w, const sink_batch_t *batch, char *err, size_t errlen)
{
    char q[1100];
    int backoff = 100;

    for (;;) {
        int64_t t0 = worker_now_ns();
        int rc = sink_pg_reconnect(w->pg, err, errlen);
        if (rc == SINK_PG_OK)
            rc = sink_pg_write(w->pg, batch, err, errlen);
        if (rc != SINK_PG_ERR) {
            worker_pause(w, 0);
            atomic_store(&metrics.pg_up, 1);
            if (rc == SINK_PG_OK)
                metrics_observe(&metrics.write_seconds, (double)(worker_now_ns() - t0) / 1e9);
            return rc;
        }
        metrics_add(&metrics.pg_errors, 1);
        atomic_store(&metrics.pg_up, 0);
        worker_pause(w, 1);
        log_warn("batch write failed; retrying on a new connection",
                 "rows=%zu dead=%zu error=\"%s\" retry_ms=%d",
                 batch->rows.n_risk + batch->rows.n_articles + batch->rows.n_labels, batch->n_dead,
                 log_quote(err, q, sizeof(q)), backoff);
        if (worker_backoff(w, &backoff) != 0)
            return SINK_PG_ERR;
    }
}

static void worker_batch_fenced(worker_t *w, const char *err)
{
    char q[1100];
    metrics_add(&metrics.fenced, 1);
    w->fences++;
    log_warn("batch fenced: another instance owns this partition's offsets now; dropped "
             "without writing",
             "messages=%zu error=\"%s\"", w->n_items, log_quote(err, q, sizeof(q)));
    worker_refence(w);
    worker_batch_discard(w);
}

/* The server refused something in the batch (SINK_PG_REJECTED), and retrying it whole would
 * refuse it forever. Writes the messages one by one instead, each with its own offset advance:
 * a refused event becomes a dead letter saying why, the rest land as usual. Slow, and rare.
 * Returns as worker_batch_flush. @locality: worker thread. */
static int worker_batch_isolate(worker_t *w)
{
    char err[1024];
    char q[1100];

    for (size_t i = 0; i < w->n_items; i++) {
        worker_item_t *it = &w->items[i];
        worker_partition_t *part = &it->topic->parts[it->msg->partition];
        sink_offset_advance_t adv = {it->topic->name, it->msg->partition, part->expected,
                                     it->msg->offset + 1};
        sink_batch_t one = {.group = ingest_kafka_group(w->kafka),
                            .instance_id = w->instance_id,
                            .dead = w->dead,
                            .offsets = &adv,
                            .n_offsets = 1};
        int backoff = 100;

        for (;;) {
            rows_batch_reset(&w->rows);
            if (it->dead) {
                worker_fill_dead(it, &w->dead[0]);
                one.n_dead = 1;
            } else {
                worker_fill_row(w, it);
                one.n_dead = 0;
            }
            one.rows = w->rows.view;
            int rc = worker_write(w, &one, err, sizeof(err));
            if (rc == SINK_PG_ERR)
                return -1;
            if (rc == SINK_PG_FENCED) {
                worker_batch_fenced(w, err);
                return 0;
            }
            if (rc == SINK_PG_OK)
                break;
            if (!it->dead) {
                log_warn("record refused by PostgreSQL; dead-lettered",
                         "topic=%s partition=%d offset=%lld error=\"%s\"", it->topic->name,
                         (int)it->msg->partition, (long long)it->msg->offset,
                         log_quote(err, q, sizeof(q)));
                it->dead = 1;
                snprintf(it->reason, sizeof(it->reason), "refused by PostgreSQL: %.480s", err);
                continue;
            }
            /* Even the dead letter is refused (a constraint added to vigil.dead_letters?):
             * nothing vigil can do on its own but wait for an operator. */
            metrics_add(&metrics.pg_errors, 1);
            log_error("dead letter refused by PostgreSQL; retrying until fixed",
                      "partition=%d offset=%lld error=\"%s\" retry_ms=%d", (int)it->msg->partition,
                      (long long)it->msg->offset, log_quote(err, q, sizeof(q)), backoff);
            if (worker_backoff(w, &backoff) != 0)
                return -1;
        }
        part->expected = adv.next;
        worker_count_committed(it);
    }
    metrics_add(&metrics.batches, 1);
    return 0;
}

/* Copies the committed batch's dead letters to the dead-letter topic, if there is one: after
 * the commit, best effort (see ingest_dlq.h). @locality: worker thread. */
static void worker_dlq_publish(worker_t *w)
{
    char err[512];
    char q[600];

    if (!w->dlq)
        return;
    for (size_t i = 0; i < w->n_items; i++) {
        const rd_kafka_message_t *m = w->items[i].msg;
        if (!w->items[i].dead)
            continue;
        if (ingest_dlq_send(w->dlq, m->key, m->key_len, m->payload, m->len, w->items[i].reason,
                            w->items[i].topic->name, m->partition, m->offset, err,
                            sizeof(err)) == 0) {
            metrics_add(&metrics.dlq_published, 1);
        } else {
            metrics_add(&metrics.dlq_failed, 1);
            log_warn("dead letter not copied to the dead-letter topic", "offset=%lld error=\"%s\"",
                     (long long)m->offset, log_quote(err, q, sizeof(q)));
        }
    }
    metrics_add(&metrics.dlq_failed, ingest_dlq_poll(w->dlq));
}

/* Computes the feature vectors of the batch's events, partition by partition in offset order
 * (each partition has its own entity state), a partition's events in one
 * features_compute_batch so that their memory accesses overlap. Afterwards every featurised
 * partition's state stands at its batch_next. Returns 0, or -1 when out of memory: the worker
 * is then stopping and the batch stays unwritten. @locality: worker thread. */
static int worker_batch_featurise(worker_t *w)
{
    size_t nf = w->fz ? featurize_fields(w->fz) : 0;

    for (size_t t = 0; t < w->n_topics; t++) {
        worker_topic_t *tp = &w->topics[t];
        for (size_t p = 0; tp->featurised && p < tp->n_parts; p++) {
            worker_partition_t *part = &tp->parts[p];
            size_t n = 0;
            if (part->batch_next < 0)
                continue;
            if (part->state_broken)
                return -1; /* its vectors cannot be trusted: never write this batch */
            for (size_t i = 0; i < w->n_items; i++) {
                worker_item_t *it = &w->items[i];
                if (it->topic != tp || it->msg->partition != (int32_t)p || it->dead || it->featured)
                    continue;
                featurize_view(w->fz, &it->rec.event, w->fz_num + n * nf, w->fz_str + n * nf,
                               &w->fz_events[n]);
                w->fz_outs[n++] = it->features;
                /* Marked now: should the computation fail, the partition's state is broken and
                 * this batch is never written (refused above, on every later flush too). */
                it->featured = 1;
            }
            int64_t t0 = worker_now_ns();
            if (n > 0 && features_compute_batch(featurize_spec(w->fz), part->state, w->fz_events, n,
                                                w->fz_outs) != 0) {
                part->state_broken = 1;
                log_error("out of memory updating the entity state; stopping",
                          "topic=%s partition=%d entities_max=%u", tp->name, (int)p,
                          (unsigned)w->max_entities);
                w->failed = 1;
                worker_stop(w);
                return -1;
            }
            if (n > 0) /* per event: the batch's time spread over its events */
                metrics_observe_n(&metrics.featurize_seconds,
                                  (double)(worker_now_ns() - t0) / 1e9 / (double)n, n);
            part->state_next = part->batch_next;
        }
    }
    return 0;
}

/* Scores the batch's feature vectors with the active risk model (one job for the inference
 * thread), recording score and model version in each item. When no model is active, or the
 * model fails, the rows are written unscored (score and model_version NULL), never with an
 * invented score; a failure is logged. @locality: worker thread. */
static void worker_batch_score(worker_t *w)
{
    size_t n = 0;
    const char *version = NULL;
    char err[512], q[600];

    for (size_t i = 0; i < w->n_items; i++) {
        worker_item_t *it = &w->items[i];
        it->model_version = NULL;
        if (it->dead || !it->topic->featurised || !it->featured)
            continue;
        memcpy(w->score_x + n * w->fz_width, it->features, w->fz_width * sizeof(float));
        w->score_item[n++] = i;
    }
    if (n == 0 || !w->rt)
        return;
    int64_t t0 = worker_now_ns();
    int rc = model_runtime_risk_score(w->rt, w->score_x, n, w->fz_width, w->score_out, &version,
                                      err, sizeof err);
    if (rc < 0) {
        log_error("risk model failed; writing the batch unscored", "events=%zu error=\"%s\"", n,
                  log_quote(err, q, sizeof q));
        metrics_add(&metrics.inference_errors, 1);
        return;
    }
    if (rc > 0)
        return; /* no risk model active */
    metrics_observe_n(&metrics.infer_seconds, (double)(worker_now_ns() - t0) / 1e9 / (double)n, n);
    for (size_t r = 0; r < n; r++) {
        w->items[w->score_item[r]].score = w->score_out[r];
        w->items[w->score_item[r]].model_version = version;
    }
}

/* Makes room for n article texts of total bytes (NULs included). */
static int worker_news_reserve(worker_t *w, size_t n, size_t bytes)
{
    if (n > w->news_cap) {
        const char **t = realloc(w->news_texts, n * sizeof *t);
        if (t)
            w->news_texts = t;
        size_t *l = realloc(w->news_lens, n * sizeof *l);
        if (l)
            w->news_lens = l;
        if (!t || !l)
            return -1;
        w->news_cap = n;
    }
    if (bytes > w->news_text_cap) {
        char *p = realloc(w->news_text, bytes);
        if (!p)
            return -1;
        w->news_text = p;
        w->news_text_cap = bytes;
    }
    return 0;
}

/* Scores the batch's articles with the active news model (one job for the inference thread):
 * the text is the headline, a line break, then the body. As for risk, articles are written
 * unscored when no news model is active or it fails. @locality: worker thread. */
static void worker_batch_news(worker_t *w)
{
    size_t n = 0, bytes = 0, at = 0;
    char err[512], q[600];

    for (size_t i = 0; i < w->n_items; i++) {
        worker_item_t *it = &w->items[i];
        it->news_row = -1;
        if (it->dead || it->rec.kind != INGEST_KIND_ARTICLE)
            continue;
        n++;
        bytes += strlen(it->rec.article.headline) + 2 +
                 (it->rec.article.body ? strlen(it->rec.article.body) : 0);
    }
    if (n == 0 || !w->rt)
        return;
    if (worker_news_reserve(w, n, bytes) != 0) {
        log_error("out of memory gathering article texts; writing the batch unscored",
                  "articles=%zu", n);
        return;
    }
    n = 0;
    for (size_t i = 0; i < w->n_items; i++) {
        const worker_item_t *it = &w->items[i];
        if (it->dead || it->rec.kind != INGEST_KIND_ARTICLE)
            continue;
        const ingest_article_t *a = &it->rec.article;
        int len =
            snprintf(w->news_text + at, bytes - at, "%s\n%s", a->headline, a->body ? a->body : "");
        w->news_texts[n] = w->news_text + at;
        w->news_lens[n++] = (size_t)len;
        at += (size_t)len + 1;
    }
    int64_t t0 = worker_now_ns();
    int rc =
        model_runtime_news_score(w->rt, w->news_texts, w->news_lens, n, &w->news, err, sizeof err);
    if (rc < 0) {
        log_error("news model failed; writing the batch unscored", "articles=%zu error=\"%s\"", n,
                  log_quote(err, q, sizeof q));
        metrics_add(&metrics.inference_errors, 1);
        return;
    }
    if (rc > 0)
        return; /* no news model active */
    metrics_observe_n(&metrics.news_infer_seconds, (double)(worker_now_ns() - t0) / 1e9 / (double)n,
                      n);
    n = 0;
    for (size_t i = 0; i < w->n_items; i++) {
        worker_item_t *it = &w->items[i];
        if (!it->dead && it->rec.kind == INGEST_KIND_ARTICLE)
            it->news_row = (long)n++;
    }
}

/* Snapshots partition p of topic tp into w->checkpoints[*n]; a failure is logged and skipped. */
static void worker_checkpoint_add(worker_t *w, worker_topic_t *tp, size_t p, size_t *n)
{
    worker_partition_t *part = &tp->parts[p];
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    features_stats_t st;

    if (features_state_save(part->state, &buf, &len, &cap) != 0) {
        free(buf);
        log_warn("out of memory taking an entity state checkpoint; skipped",
                 "topic=%s partition=%d", tp->name, (int)p);
        return;
    }
    if (len > SINK_PG_CHECKPOINT_MAX) {
        free(buf);
        log_warn("entity state too large to checkpoint; skipped (lower features.max_entities)",
                 "topic=%s partition=%d bytes=%zu", tp->name, (int)p, len);
        return;
    }
    features_state_stats(part->state, &st);
    /* Ownership of buf passes to the checkpoint; worker_checkpoints_done frees it. */
    w->checkpoints[(*n)++] = (sink_checkpoint_t){
        tp->name, (int32_t)p, part->batch_next, featurize_spec_hash(w->fz), st.entities, buf, len};
}

/* Snapshots into w->checkpoints the entity state of the featurised partitions in the batch that
 * are due a checkpoint, and returns how many: every partition with none committed since it was
 * assigned, and of those whose interval has passed only the one waiting longest, and only when
 * interval / (assigned featurised partitions) has passed since the last such one. A snapshot is
 * as large as its partition's state (megabytes to tens of MB) and holds its batch, and the
 * latency of that batch's events, while it is written; partitions assigned together come due
 * together. Paced this way the partitions' checkpoints spread evenly over the interval and each
 * still comes about once per interval. A partition whose state is not exactly at the batch's
 * end (or is broken) is skipped. @locality: worker thread. */
static size_t worker_checkpoints_take(worker_t *w)
{
    size_t n = 0, due_p = 0, assigned = 0, room;
    worker_topic_t *due_tp = NULL;
    int64_t now = worker_now_ms(), due_ms = 0;

    if (!w->fz)
        return 0;
    if (!w->ckpt) {
        char err[512], q[600];
        w->ckpt = checkpointer_new(w->pg_conninfo, ingest_kafka_group(w->kafka), w->instance_id,
                                   err, sizeof err);
        if (!w->ckpt) {
            log_warn("cannot start the checkpoint writer; no checkpoint this batch", "error=\"%s\"",
                     log_quote(err, q, sizeof q));
            return 0;
        }
    }
    /* No more snapshots than the writer can queue: the others stay due for the next batches. */
    room = checkpointer_room(w->ckpt);

    for (size_t t = 0; t < w->n_topics; t++) {
        worker_topic_t *tp = &w->topics[t];
        for (size_t p = 0; tp->featurised && p < tp->n_parts; p++) {
            worker_partition_t *part = &tp->parts[p];
            assigned += part->assigned != 0;
            if (part->batch_next < 0 || part->state_broken || part->state_next != part->batch_next)
                continue;
            if (n == room)
                return n;
            if (part->checkpoint_ms == 0) {
                worker_checkpoint_add(w, tp, p, &n);
            } else if (now - part->checkpoint_ms >= w->checkpoint_interval_ms &&
                       (!due_tp || part->checkpoint_ms < due_ms)) {
                due_tp = tp;
                due_p = p;
                due_ms = part->checkpoint_ms;
            }
        }
    }
    if (due_tp && n < room &&
        now - w->checkpoint_paced_ms >=
            w->checkpoint_interval_ms / (int64_t)(assigned > 0 ? assigned : 1)) {
        worker_checkpoint_add(w, due_tp, due_p, &n);
        w->checkpoint_paced_ms = now;
    }
    return n;
}

/* Publishes how many entities the assigned partitions hold, and their memory. */
static void worker_entities_publish(worker_t *w)
{
    int64_t entities = 0, bytes = 0;
    for (size_t t = 0; t < w->n_topics; t++)
        for (size_t p = 0; w->topics[t].featurised && p < w->topics[t].n_parts; p++) {
            features_stats_t st;
            if (!w->topics[t].parts[p].state)
                continue;
            features_state_stats(w->topics[t].parts[p].state, &st);
            entities += (int64_t)st.entities;
            bytes += (int64_t)st.bytes;
        }
    atomic_store(&metrics.entities, entities);
    atomic_store(&metrics.entity_state_bytes, bytes);
}

/* After the write: when the batch committed, hands the snapshots to the checkpoint writer and
 * restarts those partitions' clocks; whatever it does not take is freed (and stays due). */
static void worker_checkpoints_done(worker_t *w, size_t n, int committed)
{
    int64_t now = worker_now_ms();
    for (size_t i = 0; i < n; i++) {
        const sink_checkpoint_t *c = &w->checkpoints[i];
        if (committed) {
            if (checkpointer_offer(w->ckpt, c) == 0) {
                worker_topic_t *tp = worker_topic_find(w, c->topic);
                tp->parts[c->partition].checkpoint_ms = now;
                continue; /* c->state is the writer's now */
            }
            /* Only as many were taken as the writer had room for: this is out of memory. */
            log_warn("entity state checkpoint dropped: the checkpoint writer could not take it; "
                     "the partition stays due",
                     "topic=%s partition=%d", c->topic, (int)c->partition);
        }
        free((void *)c->state);
    }
}

/* Writes the batch as one transaction, retrying on database errors until it commits, is fenced,
 * or the worker is told to stop and the shutdown bound passes. Returns 0 when the batch is done
 * with (committed or fenced and dropped), -1 when it was left unwritten. @locality: worker. */
static int worker_batch_flush(worker_t *w)
{
    char err[1024];
    size_t n_rows = 0, n_dead = 0, n_adv = 0;
    sink_batch_t batch;
    size_t n_ckpt;
    int rc;

    if (w->n_items == 0)
        return 0;
    if (worker_batch_featurise(w) != 0)
        return -1;
    if (w->fz)
        worker_batch_score(w);
    worker_batch_news(w);
    rows_batch_reset(&w->rows);
    for (size_t i = 0; i < w->n_items; i++) {
        if (w->items[i].dead) {
            worker_fill_dead(&w->items[i], &w->dead[n_dead++]);
        } else {
            worker_fill_row(w, &w->items[i]);
            n_rows++;
        }
    }
    /* Partitions in the batch: at most one per item, so the arrays sized for items suffice. */
    for (size_t t = 0; t < w->n_topics; t++) {
        worker_topic_t *tp = &w->topics[t];
        for (size_t p = 0; p < tp->n_parts; p++) {
            if (tp->parts[p].batch_next < 0)
                continue;
            w->advances[n_adv] = (sink_offset_advance_t){
                tp->name, (int32_t)p, tp->parts[p].expected, tp->parts[p].batch_next};
            w->commit_topics[n_adv] = tp->name;
            w->commit_parts[n_adv] = (int32_t)p;
            w->commit_next[n_adv] = tp->parts[p].batch_next;
            n_adv++;
        }
    }
    batch = (sink_batch_t){.group = ingest_kafka_group(w->kafka),
                           .instance_id = w->instance_id,
                           .rows = w->rows.view,
                           .dead = w->dead,
                           .n_dead = n_dead,
                           .offsets = w->advances,
                           .n_offsets = n_adv};
    /* Snapshots of the state as of this batch's end, written once the batch has committed. */
    n_ckpt = worker_checkpoints_take(w);

    rc = worker_write(w, &batch, err, sizeof(err));
    worker_checkpoints_done(w, n_ckpt, rc == SINK_PG_OK);
    if (w->fz)
        worker_entities_publish(w);
    if (rc == SINK_PG_ERR)
        return -1;
    if (rc == SINK_PG_FENCED) {
        worker_batch_fenced(w, err);
        return 0;
    }
    if (rc == SINK_PG_REJECTED) {
        char q[1100];
        log_warn("batch refused by PostgreSQL; writing its events one by one to find the culprit",
                 "messages=%zu error=\"%s\"", w->n_items, log_quote(err, q, sizeof(q)));
        if (worker_batch_isolate(w) != 0)
            return -1;
        if (w->n_items == 0)
            return 0; /* fenced on the way and dropped */
    } else {
        metrics_observe(&metrics.batch_rows, (double)w->n_items);
        metrics_add(&metrics.batches, 1);
        for (size_t i = 0; i < w->n_items; i++)
            worker_count_committed(&w->items[i]);
        for (size_t t = 0; t < w->n_topics; t++)
            for (size_t p = 0; p < w->topics[t].n_parts; p++)
                if (w->topics[t].parts[p].batch_next >= 0)
                    w->topics[t].parts[p].expected = w->topics[t].parts[p].batch_next;
    }
    worker_dlq_publish(w);
    ingest_kafka_commit(w->kafka, w->commit_topics, w->commit_parts, w->commit_next, n_adv);
    log_debug("batch committed", "rows=%zu dead=%zu partitions=%zu", n_rows, n_dead, n_adv);
    worker_batch_discard(w);
    return 0;
}

/* The message's writer schema could not be fetched (registry unreachable): the message must
 * neither become a dead letter nor be skipped, and later messages of its partition must not
 * overtake it. So the worker first commits the batch before it (an outage holds back only what
 * needs the schema), then waits here, retrying with backoff, partitions paused, until the decode
 * gives an answer. *itp is the message's batch item, moved to the front of a fresh batch when
 * the batch before it was committed. Returns the decode's answer, or INGEST_AVRO_RETRY when the
 * worker is stopping or the batch before it was fenced: the caller then drops the message, which
 * is read again from the stored offset. @locality: worker thread. */
static int worker_decode_retry(worker_t *w, worker_item_t **itp)
{
    worker_item_t *it = *itp;
    rd_kafka_message_t *msg = it->msg;
    char q[600];
    int backoff = 500, rc = INGEST_AVRO_RETRY;

    metrics_add(&metrics.registry_errors, 1);
    log_warn("writer schema unavailable; holding the partition and retrying",
             "topic=%s partition=%d offset=%lld error=\"%s\"", it->topic->name, (int)msg->partition,
             (long long)msg->offset, log_quote(it->reason, q, sizeof(q)));
    if (w->n_items > 1) {
        uint64_t fences = w->fences;
        w->n_items--; /* msg is the last item: out of the batch while the rest commits */
        it->msg = NULL;
        int flushed = worker_batch_flush(w);
        /* After a commit or a fence the batch is empty; after a failed flush it is as it was.
         * Either way msg goes back in as its last item. */
        if (w->n_items == 0)
            w->batch_deadline_ms = worker_now_ms() + atomic_load(&w->batch_max_delay_ms);
        worker_topic_t *topic = it->topic;
        it = &w->items[w->n_items++];
        it->msg = msg;
        it->topic = topic;
        it->dead = 0;
        it->featured = 0; /* the slot may hold the previous batch's flag */
        *itp = it;
        if (flushed != 0 || w->fences != fences)
            return INGEST_AVRO_RETRY;
    }
    worker_pause(w, 1);
    while (rc == INGEST_AVRO_RETRY && !worker_stopping(w)) {
        if (worker_backoff(w, &backoff) != 0)
            break;
        rc = ingest_avro_decode(it->topic->decoder, msg->payload, msg->len, &it->rec, it->reason,
                                sizeof(it->reason));
        if (rc == INGEST_AVRO_RETRY)
            metrics_add(&metrics.registry_errors, 1);
    }
    worker_pause(w, 0);
    if (rc != INGEST_AVRO_RETRY)
        log_info("writer schema available again", "partition=%d offset=%lld", (int)msg->partition,
                 (long long)msg->offset);
    return rc;
}

/* Whether msg lies before where the partition stands: in the batch already, or written. */
static int worker_already_read(const worker_partition_t *part, const rd_kafka_message_t *msg)
{
    if (part->batch_next >= 0)
        return msg->offset < part->batch_next;
    return part->expected != SINK_PG_OFFSET_NONE && msg->offset < part->expected;
}

/* Turns an event into its feature vector, updating its partition's state. Returns 0, or -1 when
 * out of memory: the state is lost then, so the worker stops (a restart rebuilds it from the
 * checkpoint). @locality: worker thread. */
static int worker_featurise(worker_t *w, worker_partition_t *part, const ingest_event_t *ev,
                            float *out)
{
    int64_t t0 = worker_now_ns();
    if (featurize_event(w->fz, part->state, ev, out) != 0) {
        part->state_broken = 1;
        log_error("out of memory updating the entity state; stopping", "entities_max=%u",
                  (unsigned)w->max_entities);
        return -1;
    }
    metrics_observe(&metrics.featurize_seconds, (double)(worker_now_ns() - t0) / 1e9);
    return 0;
}

/* An event before the stored offset, read again after a restore from a checkpoint: its row is
 * committed already, so it only updates the entity state. Takes ownership of msg. */
static void worker_replay(worker_t *w, worker_topic_t *topic, worker_partition_t *part,
                          rd_kafka_message_t *msg)
{
    char reason[WORKER_REASON_MAX];
    int rc = INGEST_AVRO_BAD, backoff = 500;

    while (part->replay_skip_at < part->n_replay_skip &&
           part->replay_skip[part->replay_skip_at] < msg->offset)
        part->replay_skip_at++;
    if (part->replay_skip_at < part->n_replay_skip &&
        part->replay_skip[part->replay_skip_at] == msg->offset) {
        /* a dead letter then: leave the state as the live run left it */
    } else if (msg->payload && msg->len > 0) {
        rc = ingest_avro_decode(topic->decoder, msg->payload, msg->len, &w->replay_rec, reason,
                                sizeof(reason));
        /* It decoded once; a registry outage now must not change what the state saw. */
        while (rc == INGEST_AVRO_RETRY && !worker_stopping(w) && worker_backoff(w, &backoff) == 0) {
            rc = ingest_avro_decode(topic->decoder, msg->payload, msg->len, &w->replay_rec, reason,
                                    sizeof(reason));
        }
    }
    if (rc == INGEST_AVRO_RETRY || rc == INGEST_AVRO_ERR) {
        /* The state misses this event: it must never be checkpointed. Stop; the restart
         * replays again from the last good checkpoint. */
        part->state_broken = 1;
        w->failed = rc == INGEST_AVRO_ERR;
        worker_stop(w);
    } else if (rc == INGEST_AVRO_OK &&
               worker_featurise(w, part, &w->replay_rec.event, w->replay_features) != 0) {
        w->failed = 1;
        worker_stop(w);
    } else {
        /* applied, or a dead letter (which never touched the state either) */
        metrics_add(&metrics.features_replayed, 1);
    }
    part->state_next = msg->offset + 1;
    rd_kafka_message_destroy(msg);
}

/* Our own failure (out of memory) on the batch's last item, not the message's fault: it must not
 * become a dead letter. Drops it unwritten and stops; it is read again after the restart, and the
 * batch before it is still committed by the stop. */
static void worker_item_abandon(worker_t *w, worker_item_t *it)
{
    rd_kafka_message_t *msg = it->msg;
    w->n_items--;
    it->msg = NULL;
    rd_kafka_message_destroy(msg);
    w->failed = 1;
    worker_stop(w);
}

/* Decodes one message into the batch. Takes ownership of msg. */
static void worker_batch_add(worker_t *w, rd_kafka_message_t *msg)
{
    worker_topic_t *topic = worker_topic_find(w, rd_kafka_topic_name(msg->rkt));
    worker_partition_t *part = topic ? worker_partition(topic, msg->partition) : NULL;
    worker_item_t *it;

    if (part && part->assigned && !part->seek_pending && topic->featurised &&
        msg->offset < part->expected && msg->offset >= part->state_next) {
        worker_replay(w, topic, part, msg);
        return;
    }
    if (!part || !part->assigned || part->seek_pending || worker_already_read(part, msg)) {
        /* Left over from a partition we no longer own (its new owner reads it from the stored
         * offset), read from before the stored offset (already written: a fetch that raced a
         * seek), or from where a failed seek left us. */
        rd_kafka_message_destroy(msg);
        return;
    }
    if (worker_batch_reserve(w, w->n_items + 1) != 0) {
        /* Out of memory: leave the message unconsumed; it is read again after a restart. */
        log_error("out of memory growing the batch", "items=%zu", w->n_items);
        rd_kafka_message_destroy(msg);
        w->failed = 1;
        worker_stop(w);
        return;
    }
    if (w->n_items == 0)
        w->batch_deadline_ms = worker_now_ms() + atomic_load(&w->batch_max_delay_ms);
    if (ingest_avro_kind(topic->decoder) == INGEST_KIND_ARTICLE)
        w->n_articles++;
    it = &w->items[w->n_items++];
    it->msg = msg;
    it->topic = topic;
    it->dead = 0;
    it->featured = 0;
    if (!msg->payload || msg->len == 0) {
        it->dead = 1;
        snprintf(it->reason, sizeof(it->reason), "empty message value");
    } else {
        int64_t t0 = worker_now_ns();
        int rc = ingest_avro_decode(topic->decoder, msg->payload, msg->len, &it->rec, it->reason,
                                    sizeof(it->reason));
        metrics_observe(&topic->m->decode_seconds, (double)(worker_now_ns() - t0) / 1e9);
        if (rc == INGEST_AVRO_RETRY)
            rc = worker_decode_retry(w, &it); /* may move msg to a fresh batch */
        if (rc == INGEST_AVRO_RETRY) {
            /* Stopping while the registry is still unreachable, or the batch before it was
             * fenced: leave the message unconsumed; it is read again from the stored offset.
             * It is the batch's last item. */
            w->n_items--;
            it->msg = NULL;
            rd_kafka_message_destroy(msg);
            return;
        }
        if (rc == INGEST_AVRO_ERR) {
            /* Our failure (out of memory), not the message's: it must not become a dead letter.
             * Stop with it unwritten; it is read again after the restart. The batch before it
             * is still committed by the stop. */
            char q[600];
            log_error("cannot decode: internal error; stopping",
                      "topic=%s partition=%d offset=%lld error=\"%s\"", topic->name,
                      (int)msg->partition, (long long)msg->offset,
                      log_quote(it->reason, q, sizeof(q)));
            worker_item_abandon(w, it);
            return;
        }
        if (rc == INGEST_AVRO_OK)
            metrics_add(&topic->m->decoded, 1);
        else
            it->dead = 1;
    }
    /* Counted once it is in the batch for good: consumed = written + dead-lettered once the
     * batch commits. */
    metrics_add(&topic->m->consumed, 1);
    if (it->dead)
        log_debug("dead letter", "topic=%s partition=%d offset=%lld reason=\"%s\"", topic->name,
                  (int)msg->partition, (long long)msg->offset, it->reason);
    part->batch_next = msg->offset + 1;
}

/* --- Kafka callbacks (run inside ingest_kafka_poll, on the worker thread) ---------------- */

static int worker_on_assign(void *ctx, const char *topic, const int32_t *partitions, size_t n,
                            int64_t *offsets)
{
    worker_t *w = ctx;
    worker_topic_t *t = worker_topic_find(w, topic);
    if (!t)
        return -1; /* a topic we did not subscribe to: a bug, refuse rather than guess */
    metrics_add(&t->m->rebalances, 1);
    /* A partition coming back while the batch still holds messages of it (assignment lost
     * without a revoke reaching us first): the stored offset is about to be reloaded, so the
     * batch must not outlive the offset it was read against. The write is fenced if another
     * instance moved on meanwhile. */
    for (size_t i = 0; i < n; i++) {
        worker_partition_t *p = worker_partition(t, partitions[i]);
        if (p && p->batch_next >= 0 && worker_batch_flush(w) != 0) {
            worker_refence(w); /* the other partitions re-read what was dropped */
            worker_batch_discard(w);
            break;
        }
    }
    if (worker_offsets_load(w, t, partitions, n, offsets) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        worker_partition_t *p = worker_partition(t, partitions[i]);
        if (!p)
            return -1;
        p->expected = offsets[i];
        p->batch_next = -1;
        p->seek_pending = 0;
        if (worker_state_resume(w, t, partitions[i]) != 0) {
            for (size_t j = 0; j < i; j++) /* none of this topic's partitions is taken */
                worker_partition(t, partitions[j])->assigned = 0;
            return -1;
        }
        p->assigned = 1;
        log_info("partition assigned", "topic=%s partition=%d stored_offset=%lld read_from=%lld",
                 topic, (int)partitions[i], (long long)offsets[i], (long long)p->read_from);
        offsets[i] = p->read_from; /* where the consumer starts: maybe a checkpoint, for replay */
    }
    atomic_fetch_add(&t->m->assigned_partitions, (int64_t)n);
    return 0;
}

static void worker_on_revoke(void *ctx, const char *topic, const int32_t *partitions, size_t n)
{
    worker_t *w = ctx;
    worker_topic_t *t = worker_topic_find(w, topic);
    if (t)
        metrics_add(&t->m->rebalances, 1);
    /* Commit what we hold before letting go; if that fails the batch is dropped, and the next
     * owner reads those messages again from the stored offsets. */
    if (worker_batch_flush(w) != 0) {
        worker_refence(w); /* partitions we keep re-read what was dropped */
        worker_batch_discard(w);
    }
    for (size_t i = 0; t && i < n; i++) {
        worker_partition_t *p = worker_partition(t, partitions[i]);
        if (p && p->state) { /* the next owner rebuilds it from the checkpoint */
            features_state_free(p->state);
            p->state = NULL;
        }
        if (p && p->assigned) {
            p->assigned = 0;
            atomic_fetch_sub(&t->m->assigned_partitions, 1);
        }
        if (partitions[i] >= 0 && partitions[i] < METRICS_PARTITIONS_MAX)
            atomic_store(&t->m->consumer_lag[partitions[i]], -1);
        log_info("partition revoked", "topic=%s partition=%d", topic, (int)partitions[i]);
    }
}

static void worker_on_log(void *ctx, int level, const char *facility, const char *message)
{
    char q[600];
    log_level_t l = level <= 3   ? LOG_ERROR
                    : level == 4 ? LOG_WARN
                    : level <= 6 ? LOG_INFO
                                 : LOG_DEBUG;
    if (l >= LOG_WARN)
        metrics_add(&metrics.kafka_errors, 1);
    log_write(l, "librdkafka", "facility=%s detail=\"%s\"", facility,
              log_quote(message, q, sizeof(q)));
}

/* --- the thread ------------------------------------------------------------------------- */

/* Records the feature spec's columns in vigil.feature_specs, so risk_scores.features can be read
 * by name. */
static int worker_spec_register(worker_t *w, char *err, size_t errlen)
{
    const features_spec_t *spec;
    const char **cols;
    int rc;

    if (!w->fz)
        return SINK_PG_OK;
    spec = featurize_spec(w->fz);
    cols = malloc(w->fz_width * sizeof(*cols));
    if (!cols) {
        snprintf(err, errlen, "out of memory registering the feature spec");
        return SINK_PG_ERR;
    }
    for (size_t i = 0; i < w->fz_width; i++)
        cols[i] = features_spec_column(spec, i);
    rc = sink_pg_feature_spec_register(w->pg, featurize_spec_hash(w->fz), cols, w->fz_width,
                                       featurize_spec_text(w->fz), err, errlen);
    free(cols);
    return rc;
}

/* Connects and migrates, retrying until it works or the worker is stopped. */
static int worker_open_pg(worker_t *w)
{
    char err[1024];
    char q[1100];
    int backoff = 100;
    while (!worker_stopping(w)) {
        if (!w->pg)
            w->pg = sink_pg_new(w->pg_conninfo, err, sizeof(err));
        if (w->pg && sink_pg_reconnect(w->pg, err, sizeof(err)) == SINK_PG_OK &&
            sink_pg_migrate(w->pg, err, sizeof(err)) == SINK_PG_OK &&
            worker_spec_register(w, err, sizeof(err)) == SINK_PG_OK) {
            atomic_store(&metrics.pg_up, 1);
            return 0;
        }
        atomic_store(&metrics.pg_up, 0);
        metrics_add(&metrics.pg_errors, 1);
        log_warn("PostgreSQL not ready; retrying", "error=\"%s\" retry_ms=%d",
                 log_quote(err, q, sizeof(q)), backoff);
        if (worker_backoff(w, &backoff) != 0)
            break;
    }
    return -1;
}

static int worker_open(worker_t *w)
{
    char err[1024];
    char q[1100];
    ingest_kafka_callbacks_t cb = {worker_on_assign, worker_on_revoke, worker_on_log, w};
    const char *names[WORKER_INPUTS_MAX];

    if (worker_open_pg(w) != 0)
        return worker_stopping(w) ? 0 : -1;
    for (size_t t = 0; t < w->n_topics; t++)
        names[t] = w->topics[t].name;
    w->kafka =
        ingest_kafka_new((const char *const *)w->kafka_keys, (const char *const *)w->kafka_values,
                         (const char *const *)w->kafka_origins, w->n_kafka, names, w->n_topics, &cb,
                         err, sizeof(err));
    if (!w->kafka) {
        log_error("cannot start the Kafka consumer", "error=\"%s\"", log_quote(err, q, sizeof(q)));
        return -1;
    }
    if (w->dlq_topic[0]) {
        w->dlq =
            ingest_dlq_new((const char *const *)w->kafka_keys, (const char *const *)w->kafka_values,
                           (const char *const *)w->kafka_origins, w->n_kafka, w->dlq_topic,
                           worker_on_log, w, err, sizeof(err));
        if (!w->dlq) {
            log_error("cannot start the dead-letter topic producer", "error=\"%s\"",
                      log_quote(err, q, sizeof(q)));
            return -1;
        }
    }
    for (size_t t = 0; t < w->n_topics; t++)
        log_info("consuming", "topic=%s record=%s group=%s instance=%s", w->topics[t].name,
                 ingest_kind_schema_name(ingest_avro_kind(w->topics[t].decoder)),
                 ingest_kafka_group(w->kafka), w->instance_id);
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    int64_t last_ping = worker_now_ms(), last_second = 0;
    char err[512];
    char q[1100];

    worker_beat(w);
    if (worker_open(w) != 0) {
        w->failed = 1;
        goto out;
    }
    if (w->kafka && w->on_ready)
        w->on_ready(w->ctx);

    while (w->kafka && !worker_stopping(w)) {
        int timeout = 100;
        rd_kafka_message_t *msg;
        int64_t now;

        worker_beat(w);
        /* With a batch open, wait for more only until it lingers long enough (batch_linger_ms
         * since its last message, 0 by default) or reaches its deadline: by default a batch is
         * written as soon as no message is waiting. Under light load each message is then
         * written within about one transaction's time; under heavy load the queue never runs
         * dry and batches fill to batch_max. */
        now = worker_now_ms();
        if (w->n_items > 0) {
            int64_t until = w->batch_last_add_ms + atomic_load(&w->batch_linger_ms);
            if (until > w->batch_deadline_ms)
                until = w->batch_deadline_ms;
            timeout = until <= now ? 0 : until - now < 100 ? (int)(until - now) : 100;
        }
        msg = ingest_kafka_poll(w->kafka, timeout);
        if (msg && msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                metrics_add(&metrics.kafka_errors, 1);
                log_warn("kafka consumer error", "error=\"%s\"",
                         log_quote(rd_kafka_message_errstr(msg), q, sizeof(q)));
            }
            rd_kafka_message_destroy(msg);
            msg = NULL;
        }
        if (msg)
            worker_batch_add(w, msg); /* ownership of msg passes to the batch */

        now = worker_now_ms();
        if (msg)
            w->batch_last_add_ms = now; /* the clock read the loop makes anyway */
        if (now - last_second >= 1000) {
            /* Once a second, not per message: seeks that failed, lag, the DLQ producer. */
            for (size_t t = 0; t < w->n_topics; t++)
                for (size_t p = 0; p < w->topics[t].n_parts; p++)
                    if (w->topics[t].parts[p].assigned && w->topics[t].parts[p].seek_pending)
                        worker_seek_stored(w, &w->topics[t], (int32_t)p);
            worker_lag_update(w);
            if (w->dlq)
                metrics_add(&metrics.dlq_failed, ingest_dlq_poll(w->dlq));
            last_second = now;
        }
        if (w->n_items > 0 &&
            ((!msg && now >= w->batch_last_add_ms + atomic_load(&w->batch_linger_ms)) ||
             (int)w->n_items >= atomic_load(&w->batch_max) || now >= w->batch_deadline_ms ||
             (w->news_batch_max > 0 && w->n_articles >= w->news_batch_max))) {
            if (worker_batch_flush(w) != 0)
                break;
            last_ping = now;
        } else if (w->n_items == 0 && now - last_ping >= WORKER_PING_INTERVAL_MS) {
            /* Keep /readyz honest while idle. */
            int ok = sink_pg_reconnect(w->pg, err, sizeof(err)) == SINK_PG_OK &&
                     sink_pg_ping(w->pg, err, sizeof(err)) == SINK_PG_OK;
            atomic_store(&metrics.pg_up, ok);
            if (!ok)
                log_warn("PostgreSQL ping failed", "error=\"%s\"", log_quote(err, q, sizeof(q)));
            last_ping = now;
        }
    }

out:
    if (!atomic_load(&w->stop_deadline_ms))
        atomic_store(&w->stop_deadline_ms, worker_now_ms() + w->shutdown_timeout_ms);
    if (w->kafka) {
        /* Stop: commit what is in flight, then leave the group (revoke has nothing left). */
        if (worker_batch_flush(w) != 0) {
            log_error("in-flight batch not committed before the shutdown bound; it will be "
                      "consumed again on restart",
                      "messages=%zu", w->n_items);
            worker_batch_discard(w);
            w->failed = 1;
        } else if (!w->failed) {
            atomic_store(&w->drained, 1);
        }
        ingest_kafka_close(w->kafka);
    }
    if (w->ckpt) {
        /* The write in progress ends; a queued checkpoint is dropped (the older one stands). */
        checkpointer_free(w->ckpt);
        w->ckpt = NULL;
    }
    if (w->dlq) {
        int64_t left = atomic_load(&w->stop_deadline_ms) - worker_now_ms();
        int unsent = ingest_dlq_flush(w->dlq, left > 0 ? (int)left : 0);
        metrics_add(&metrics.dlq_failed, ingest_dlq_poll(w->dlq));
        if (unsent > 0)
            log_warn("dead letters not copied to the dead-letter topic before the shutdown bound; "
                     "they are in vigil.dead_letters",
                     "count=%d", unsent);
    }
    for (size_t t = 0; t < w->n_topics; t++) {
        atomic_store(&w->topics[t].m->assigned_partitions, 0);
        for (int p = 0; p < METRICS_PARTITIONS_MAX; p++)
            atomic_store(&w->topics[t].m->consumer_lag[p], -1);
    }
    if (w->on_exit)
        w->on_exit(w->ctx);
    return NULL;
}

/* --- API -------------------------------------------------------------------------------- */

worker_t *worker_new(const worker_options_t *o, char *err, size_t errlen)
{
    worker_t *w = calloc(1, sizeof(*w));

    if (!w) {
        for (size_t i = 0; i < o->n_inputs; i++)
            ingest_avro_free(o->inputs[i].decoder); /* ours now, even on failure */
        featurize_free(o->featurize);
        snprintf(err, errlen, "worker: out of memory");
        return NULL;
    }
    /* The decoders and the feature spec are ours from here on, whatever happens next. */
    w->fz = o->featurize;
    w->rt = o->runtime;
    w->news_batch_max = o->news_batch_max;
    for (size_t i = 0; i < o->n_inputs && i < WORKER_INPUTS_MAX; i++)
        w->topics[w->n_topics++].decoder = o->inputs[i].decoder;
    for (size_t i = WORKER_INPUTS_MAX; i < o->n_inputs; i++)
        ingest_avro_free(o->inputs[i].decoder);
    if (o->n_inputs == 0 || o->n_inputs > WORKER_INPUTS_MAX) {
        snprintf(err, errlen, "worker: %zu input topics; between 1 and %d are supported",
                 o->n_inputs, WORKER_INPUTS_MAX);
        worker_free(w);
        return NULL;
    }
    for (size_t i = 0; i < w->n_topics; i++) {
        worker_topic_t *t = &w->topics[i];
        if (!t->decoder || !o->inputs[i].topic || !o->inputs[i].topic[0]) {
            snprintf(err, errlen,
                     "worker: input %zu lacks a topic or a decoder (a bug in the "
                     "caller)",
                     i);
            worker_free(w);
            return NULL;
        }
        int repeated = 0;
        for (size_t j = 0; j < i; j++)
            repeated |= strcmp(o->inputs[j].topic, o->inputs[i].topic) == 0;
        if (repeated) {
            snprintf(err, errlen, "topic %s is configured for two inputs; each input needs its own",
                     o->inputs[i].topic);
            worker_free(w);
            return NULL;
        }
        if (!(t->name = strdup(o->inputs[i].topic)))
            goto oom;
        if (!(t->m = metrics_topic(t->name))) {
            snprintf(err, errlen, "worker: no metrics slot for topic %s (name too long?)", t->name);
            worker_free(w);
            return NULL;
        }
    }
    w->pg_conninfo = worker_strdup(o->pg_conninfo);
    w->instance_id = worker_strdup(o->instance_id);
    w->dlq_topic = worker_strdup(o->dlq_topic ? o->dlq_topic : "");
    if (!w->pg_conninfo || !w->instance_id || !w->dlq_topic)
        goto oom;
    w->n_kafka = o->n_kafka;
    w->kafka_keys = calloc(o->n_kafka + 1, sizeof(char *));
    w->kafka_values = calloc(o->n_kafka + 1, sizeof(char *));
    w->kafka_origins = calloc(o->n_kafka + 1, sizeof(char *));
    if (!w->kafka_keys || !w->kafka_values || !w->kafka_origins)
        goto oom;
    for (size_t i = 0; i < o->n_kafka; i++) {
        w->kafka_keys[i] = strdup(o->kafka_keys[i]);
        w->kafka_values[i] = strdup(o->kafka_values[i]);
        w->kafka_origins[i] = strdup(o->kafka_origins[i]);
        if (!w->kafka_keys[i] || !w->kafka_values[i] || !w->kafka_origins[i])
            goto oom;
    }
    w->shutdown_timeout_ms = o->shutdown_timeout_ms;
    if (w->fz) {
        w->fz_width = features_spec_width(featurize_spec(w->fz));
        w->max_entities = o->features_max_entities;
        w->ttl_ms = o->features_ttl_ms;
        w->checkpoint_interval_ms = o->features_checkpoint_interval_ms;
        if (!(w->replay_features = malloc(w->fz_width * sizeof(float))))
            goto oom;
        for (size_t i = 0; i < w->n_topics; i++)
            w->topics[i].featurised = ingest_avro_kind(w->topics[i].decoder) == INGEST_KIND_EVENT;
    }
    w->on_ready = o->on_ready;
    w->on_exit = o->on_exit;
    w->ctx = o->ctx;
    worker_set_limits(w, o->batch_max, o->batch_max_delay_ms, o->batch_linger_ms, o->retry_max_ms);
    if (worker_batch_reserve(w, (size_t)o->batch_max) != 0)
        goto oom;
    return w;
oom:
    snprintf(err, errlen, "worker: out of memory");
    worker_free(w);
    return NULL;
}

int worker_start(worker_t *w, char *err, size_t errlen)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the worker thread: %s", strerror(rc));
        return -1;
    }
    w->started = 1;
    return 0;
}

void worker_stop(worker_t *w)
{
    int64_t none = 0;
    /* The bound counts from the request, so a flush stuck on a dead database gives up in time. */
    atomic_compare_exchange_strong(&w->stop_deadline_ms, &none,
                                   worker_now_ms() + w->shutdown_timeout_ms);
    atomic_store(&w->stop, 1);
}

int worker_join(worker_t *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
    return w->failed ? -1 : 0;
}

void worker_set_limits(worker_t *w, int batch_max, int batch_max_delay_ms, int batch_linger_ms,
                       int retry_max_ms)
{
    atomic_store(&w->batch_max, batch_max);
    atomic_store(&w->batch_max_delay_ms, batch_max_delay_ms);
    atomic_store(&w->batch_linger_ms, batch_linger_ms);
    atomic_store(&w->retry_max_ms, retry_max_ms);
}

int worker_drained(const worker_t *w)
{
    return atomic_load(&w->drained);
}

int64_t worker_heartbeat_ms(const worker_t *w)
{
    return atomic_load(&w->heartbeat_ms);
}

void worker_free(worker_t *w)
{
    if (!w)
        return;
    if (w->started) {
        worker_stop(w);
        worker_join(w);
    }
    worker_batch_discard(w);
    ingest_kafka_free(w->kafka);
    ingest_dlq_free(w->dlq);
    sink_pg_free(w->pg);
    for (size_t i = 0; i < w->cap_items; i++) {
        ingest_record_clear(&w->items[i].rec);
        free(w->items[i].features);
    }
    ingest_record_clear(&w->replay_rec);
    free(w->replay_features);
    free(w->fz_events);
    free(w->fz_outs);
    free(w->score_x);
    free(w->score_out);
    free(w->score_item);
    free(w->news_text);
    free(w->news_texts);
    free(w->news_lens);
    free(w->fz_num);
    free(w->fz_str);
    checkpointer_free(w->ckpt);
    free(w->checkpoints);
    featurize_free(w->fz);
    free(w->items);
    rows_batch_free(&w->rows);
    free(w->dead);
    free(w->advances);
    free(w->commit_topics);
    free(w->commit_parts);
    free(w->commit_next);
    for (size_t t = 0; t < w->n_topics; t++) {
        ingest_avro_free(w->topics[t].decoder);
        free(w->topics[t].name);
        for (size_t p = 0; p < w->topics[t].n_parts; p++) {
            features_state_free(w->topics[t].parts[p].state);
            free(w->topics[t].parts[p].replay_skip);
        }
        free(w->topics[t].parts);
    }
    for (size_t i = 0; w->kafka_keys && i < w->n_kafka; i++) {
        free(w->kafka_keys[i]);
        free(w->kafka_values ? w->kafka_values[i] : NULL);
        free(w->kafka_origins ? w->kafka_origins[i] : NULL);
    }
    free(w->kafka_keys);
    free(w->kafka_values);
    free(w->kafka_origins);
    free(w->pg_conninfo);
    free(w->instance_id);
    free(w->dlq_topic);
    free(w);
}
