/* A lane's reader thread (see lane.h): it opens the lane (PostgreSQL, the consumer, the writer
 * threads), then turns a loop that polls Kafka, decodes each message into the open batch of its
 * partition's writer, enriches the open batches as they fill and closes them for their writers.
 *
 * When a batch closes. A writer's open batch is handed to it when it holds ingest.batch_max
 * messages (or model.news_max_batch articles), when its first message has waited
 * ingest.batch_max_delay_ms, or, when that writer is idle, as soon as Kafka has nothing more
 * waiting (after ingest.batch_linger_ms, 0 by default). While the writer is busy its open batch
 * keeps filling and enriching, and closes the moment the writer is done: under light load each
 * message is written within about one transaction's time, under a backlog batches fill to
 * batch_max and each writer always has its next one ready.
 *
 * Backpressure. The lane owns (ingest.batches_in_flight + 1) batches per writer. When a writer
 * has no open batch and none is free, the reader stops taking messages (librdkafka's prefetch
 * queue, bounded by queued.max.messages.kbytes, holds what arrives); when that lasts
 * LANE_PAUSE_AFTER_MS, or a writer's writes fail, or a writer schema cannot be fetched, the
 * lane's partitions are paused (which also releases what librdkafka had prefetched) and the
 * reader polls only for rebalances until it can go on.
 * @locality: everything here runs on the lane's reader thread. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "lane.h"
#include "log.h"

static void lane_on_log(void *ctx, int level, const char *facility, const char *message)
{
    char q[600];
    log_level_t lvl = level <= 3   ? LOG_ERROR
                      : level == 4 ? LOG_WARN
                      : level <= 6 ? LOG_INFO
                                   : LOG_DEBUG;
    if (lvl >= LOG_WARN)
        metrics_add(&metrics.kafka_errors, 1);
    log_write(lvl, "librdkafka", "facility=%s detail=\"%s\"", facility,
              log_quote(message, q, sizeof(q)));
}

/* --- opening ---------------------------------------------------------------------------------- */

/* Records the feature spec's columns in vigil.feature_specs, so risk_scores.features can be read
 * by name. */
static int lane_spec_register(lane_t *l, sink_pg_t *pg, char *err, size_t errlen)
{
    const featurize_t *fz = l->sh->fz;
    const char **cols;
    int rc;

    if (!fz || l->kind != LANE_EVENTS)
        return SINK_PG_OK;
    if (!(cols = malloc(l->sh->fz_width * sizeof(*cols)))) {
        errbuf_printf(err, errlen, "out of memory registering the feature spec");
        return SINK_PG_ERR;
    }
    for (size_t i = 0; i < l->sh->fz_width; i++)
        cols[i] = features_spec_column(featurize_spec(fz), i);
    rc = sink_pg_feature_spec_register(pg, featurize_spec_hash(fz), cols, l->sh->fz_width,
                                       featurize_spec_text(fz), err, errlen);
    free(cols);
    return rc;
}

/* Migrations, then the feature spec (lane_control_retry retries both). */
static int lane_migrate(lane_t *l, sink_pg_t *pg, void *ctx, char *err, size_t errlen)
{
    int rc = sink_pg_migrate(pg, err, errlen);
    return rc == SINK_PG_OK ? lane_spec_register(l, pg, err, errlen) : rc;
}

/* PostgreSQL, the consumer (client.id vigild-<lane>), the dead-letter producer, the writer
 * threads. Returns 0 (also when stopped before it could open: then l->kafka is NULL) or -1. */
int lane_open(lane_t *l)
{
    char err[1024], q[1100], client_id[64];
    ingest_kafka_callbacks_t cb = {lane_on_assign, lane_on_revoke, lane_on_log, l};
    const char *names[LANES_INPUTS_MAX];
    const lanes_shared_t *sh = l->sh;

    if (lane_control_retry(l, "migrations", lane_migrate, NULL) != 0)
        return lane_stopping(l) ? 0 : -1;
    for (size_t t = 0; t < l->n_topics; t++)
        names[t] = l->topics[t].name;
    snprintf(client_id, sizeof client_id, "vigild-%s", l->name);
    l->kafka =
        ingest_kafka_new((const char *const *)sh->kafka_keys, (const char *const *)sh->kafka_values,
                         (const char *const *)sh->kafka_origins, sh->n_kafka, client_id, names,
                         l->n_topics, &cb, err, sizeof(err));
    if (!l->kafka) {
        log_error("cannot start the Kafka consumer", "lane=%s error=\"%s\"", l->name,
                  log_quote(err, q, sizeof(q)));
        return -1;
    }
    if (sh->dlq_topic[0]) {
        l->dlq = ingest_dlq_new((const char *const *)sh->kafka_keys,
                                (const char *const *)sh->kafka_values,
                                (const char *const *)sh->kafka_origins, sh->n_kafka, sh->dlq_topic,
                                lane_on_log, l, err, sizeof(err));
        if (!l->dlq) {
            log_error("cannot start the dead-letter topic producer", "error=\"%s\"",
                      log_quote(err, q, sizeof(q)));
            return -1;
        }
    }
    for (size_t i = 0; i < l->n_writers; i++) {
        lane_writer_t *w = &l->writers[i];
        atomic_store(&w->beat_ms, lanes_now_ms());
        int rc = pthread_create(&w->thread, NULL, lane_writer_main, w);
        if (rc != 0) {
            atomic_store(&w->beat_ms, 0);
            log_error("cannot start a writer thread", "lane=%s error=\"%s\"", l->name,
                      strerror(rc));
            return -1;
        }
        w->started = 1;
    }
    for (size_t t = 0; t < l->n_topics; t++)
        log_info("consuming", "lane=%s writers=%zu topic=%s record=%s group=%s instance=%s",
                 l->name, l->n_writers, l->topics[t].name,
                 ingest_kind_schema_name(ingest_avro_kind(l->topics[t].decoder)),
                 ingest_kafka_group(l->kafka), sh->instance_id);
    return 0;
}

/* --- messages into the open batch ---------------------------------------------------------- */

lane_writer_t *lane_writer_of(lane_t *l, int32_t partition)
{
    return &l->writers[(size_t)partition % l->n_writers];
}

size_t lane_in_flight(const lane_t *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n_writers; i++)
        n += l->writers[i].in_flight;
    return n;
}

int lane_take_free(lane_t *l)
{
    for (size_t i = 0; i < l->n_writers; i++) {
        lane_writer_t *w = &l->writers[i];
        if (w->open)
            continue;
        if (l->n_free == 0)
            return -1;
        w->open = l->free_list[--l->n_free];
        w->open->writer = i;
    }
    l->waiting_ms = 0;
    return 0;
}

/* Whether msg lies before where the partition stands: in a batch already, or written. */
static int lane_already_read(const lane_partition_t *p, const rd_kafka_message_t *msg)
{
    if (p->open_next >= 0)
        return msg->offset < p->open_next;
    return p->sent_next != SINK_PG_OFFSET_NONE && msg->offset < p->sent_next;
}

/* A message that arrived with no batch to take it (fetched just before a pause took effect):
 * the partition is moved back to it, so it is read again once fetching resumes. */
static void lane_unplaced(lane_t *l, lane_topic_t *t, lane_partition_t *p, rd_kafka_message_t *msg)
{
    p->read_from = msg->offset;
    lane_seek_stored(l, t, msg->partition);
    log_debug("message arrived while the lane had no free batch; read again later",
              "topic=%s partition=%d offset=%lld", t->name, (int)msg->partition,
              (long long)msg->offset);
    rd_kafka_message_destroy(msg);
}

/* A new item of the open batch for msg (its writer's; not counted yet: n_items includes it, the
 * partition's open_next does not). NULL when out of memory: msg is destroyed and the lane
 * stops. */
static lane_item_t *lane_item_new(lane_t *l, lane_topic_t *t, rd_kafka_message_t *msg)
{
    lane_batch_t *b = lane_writer_of(l, msg->partition)->open;
    if (lane_batch_reserve(b, l->sh, b->n_items + 1) != 0 ||
        lane_enrich_reserve(l, b->n_items + 1) != 0) {
        /* Out of memory: leave the message unconsumed; it is read again after a restart. */
        log_error("out of memory growing the batch", "lane=%s items=%zu", l->name, b->n_items);
        rd_kafka_message_destroy(msg);
        l->failed = 1;
        lane_request_stop(l);
        return NULL;
    }
    lane_item_t *it = &b->items[b->n_items++];
    it->msg = msg;
    it->topic = t;
    it->dead = it->committed = it->featured = 0;
    it->model_version = it->news_version = NULL;
    it->polled_ns = lane_now_ns();
    if (t->featurised) /* a dead letter's row of the vector block is scored and ignored */
        memset(b->features + (b->n_items - 1) * l->sh->fz_width, 0,
               l->sh->fz_width * sizeof(float));
    return it;
}

static int lane_decode(lane_item_t *it)
{
    const rd_kafka_message_t *msg = it->msg;
    if (!msg->payload || msg->len == 0) {
        snprintf(it->reason, sizeof(it->reason), "empty message value");
        return INGEST_AVRO_BAD;
    }
    int64_t t0 = lane_now_ns();
    int rc = ingest_avro_decode(it->topic->decoder, msg->payload, msg->len, &it->rec, it->reason,
                                sizeof(it->reason));
    metrics_observe(&it->topic->m->decode_seconds, (double)(lane_now_ns() - t0) / 1e9);
    return rc;
}

/* msg's writer schema could not be fetched (registry unreachable): it must neither become a dead
 * letter nor be skipped, and later messages of its partition must not overtake it. So the open
 * batch before it is closed for the writer (an outage holds back only what needs the schema), the
 * partitions are paused and the decode retried with backoff until it gives an answer. Returns 0
 * when msg can be decoded now and there is an open batch for it; -1 when it must be dropped
 * (stopping: it is read again after the restart; or fenced meanwhile: its partition was put back
 * to the stored offset). msg stays the caller's. */
static int lane_schema_wait(lane_t *l, lane_topic_t *t, rd_kafka_message_t *msg, const char *why)
{
    lane_writer_t *w = lane_writer_of(l, msg->partition);
    char reason[LANE_REASON_MAX], q[600];
    int backoff = 500, rc = INGEST_AVRO_RETRY;
    uint64_t epoch = l->epoch;

    metrics_add(&metrics.registry_errors, 1);
    log_warn("writer schema unavailable; holding the partition and retrying",
             "topic=%s partition=%d offset=%lld error=\"%s\"", t->name, (int)msg->partition,
             (long long)msg->offset, log_quote(why, q, sizeof(q)));
    if (lane_close_open(l) != 0)
        return -1;
    l->pause_schema = 1;
    lane_pause(l, 1, "writer schema unavailable");
    while (rc == INGEST_AVRO_RETRY && !lane_stopping(l)) {
        if (lane_backoff(l, &l->reader_beat_ms, &backoff) != 0)
            break;
        lane_take_back(l, 0);
        if (l->epoch != epoch) { /* a batch came back fenced meanwhile */
            lane_refence(l, t, msg->partition);
            break;
        }
        rc = ingest_avro_decode(t->decoder, msg->payload, msg->len, &l->replay_rec, reason,
                                sizeof(reason));
        if (rc == INGEST_AVRO_RETRY)
            metrics_add(&metrics.registry_errors, 1);
    }
    while (rc != INGEST_AVRO_RETRY && lane_take_free(l) != 0 && !lane_stopping(l)) {
        lane_reader_beat(l);
        lane_take_back(l, 100);
    }
    l->pause_schema = 0;
    if (rc == INGEST_AVRO_RETRY || !w->open)
        return -1;
    log_info("writer schema available again", "topic=%s partition=%d offset=%lld", t->name,
             (int)msg->partition, (long long)msg->offset);
    return 0;
}

/* Decodes msg into the open batch, retrying a registry outage (lane_schema_wait). Takes msg. */
static void lane_add(lane_t *l, lane_topic_t *t, lane_partition_t *p, rd_kafka_message_t *msg)
{
    lane_writer_t *w = lane_writer_of(l, msg->partition);
    lane_item_t *it = lane_item_new(l, t, msg);
    int rc = it ? lane_decode(it) : INGEST_AVRO_ERR;

    while (it && rc == INGEST_AVRO_RETRY) {
        w->open->n_items--; /* msg is the last item: out of the batch while the rest is closed */
        it->msg = NULL;
        if (lane_schema_wait(l, t, msg, it->reason) != 0) {
            rd_kafka_message_destroy(msg);
            return;
        }
        it = lane_item_new(l, t, msg);
        rc = it ? lane_decode(it) : INGEST_AVRO_ERR;
    }
    if (!it)
        return;
    if (rc == INGEST_AVRO_ERR) {
        /* Our failure (out of memory), not the message's: it must not become a dead letter.
         * Stop with it unwritten; it is read again after the restart, and the batch before it
         * is still committed by the stop. */
        char q[600];
        log_error("cannot decode: internal error; stopping",
                  "topic=%s partition=%d offset=%lld error=\"%s\"", t->name, (int)msg->partition,
                  (long long)msg->offset, log_quote(it->reason, q, sizeof(q)));
        w->open->n_items--;
        it->msg = NULL;
        rd_kafka_message_destroy(msg);
        l->failed = 1;
        lane_request_stop(l);
        return;
    }
    if (rc == INGEST_AVRO_OK)
        metrics_add(&t->m->decoded, 1);
    else
        it->dead = 1;
    /* Counted once it is in the batch for good: consumed = written + dead-lettered once the
     * batch commits. */
    metrics_add(&t->m->consumed, 1);
    if (it->dead)
        log_debug("dead letter", "topic=%s partition=%d offset=%lld reason=\"%s\"", t->name,
                  (int)msg->partition, (long long)msg->offset, it->reason);
    if (w->open->n_items == 1) {
        w->open->opened_ns = it->polled_ns;
        w->batch_deadline_ms = lanes_now_ms() + atomic_load(&l->sh->batch_max_delay_ms);
    }
    if (it->rec.kind == INGEST_KIND_ARTICLE && !it->dead)
        w->open->n_articles++;
    if (p->open_next < 0)
        p->open_first = msg->offset;
    p->open_next = msg->offset + 1;
    atomic_fetch_add(&l->m->open_messages, 1);
}

/* One message from the consumer: replayed into the state, dropped, or added. Takes msg. */
void lane_message(lane_t *l, rd_kafka_message_t *msg)
{
    lane_topic_t *t = lane_topic_find(l, rd_kafka_topic_name(msg->rkt));
    lane_partition_t *p = t ? lane_partition(t, msg->partition) : NULL;

    if (p && p->assigned && !p->seek_pending && t->featurised && msg->offset < p->expected &&
        msg->offset >= p->state_next) {
        lane_replay(l, t, p, msg);
        return;
    }
    if (!p || !p->assigned || p->seek_pending || lane_already_read(p, msg)) {
        /* Left over from a partition we no longer own (its new owner reads it from the stored
         * offset), read from before where we stand (a fetch that raced a seek), or from where a
         * failed seek left us. */
        rd_kafka_message_destroy(msg);
        return;
    }
    if (!lane_writer_of(l, msg->partition)->open) {
        lane_unplaced(l, t, p, msg);
        return;
    }
    lane_add(l, t, p, msg);
}

/* --- closing
 * -------------------------------------------------------------------------------------- */

/* The closed batches waiting for the lane's writers, for the gauge. */
static void lane_queue_publish(lane_t *l)
{
    int64_t waiting = 0;
    for (size_t i = 0; i < l->n_writers; i++)
        waiting += (int64_t)lane_queue_depth(&l->writers[i].to_write);
    atomic_store(&l->m->write_queue, waiting);
    atomic_store(&l->m->in_flight, (int64_t)lane_in_flight(l));
}

/* Partition p has nothing stored yet: b is its first batch, and the state before it is empty. That
 * empty state at the partition's first offset goes into b's transaction, so that once the
 * offsets are committed there is always a checkpoint to rebuild the state from; the later ones
 * come through the checkpoint writer, after their batch, and a crash before the first of them
 * would otherwise leave the stored offset without any (the state would start empty there, its
 * aggregates missing every earlier event). */
static void lane_first_state(lane_t *l, lane_batch_t *b, lane_topic_t *tp, int32_t p)
{
    if (!l->empty_state) {
        char err[256];
        size_t cap = 0;
        features_state_t *st = features_state_new(featurize_spec(l->sh->fz), l->sh->max_entities,
                                                  l->sh->ttl_ms, err, sizeof err);
        if (!st || features_state_save(st, &l->empty_state, &l->empty_state_len, &cap) != 0) {
            free(l->empty_state);
            l->empty_state = NULL;
        }
        features_state_free(st);
        if (!l->empty_state) {
            log_warn("out of memory making an empty entity state; the first checkpoint of this "
                     "partition comes after its batch",
                     "topic=%s partition=%d", tp->name, (int)p);
            return;
        }
    }
    b->first_states[b->n_first++] = (sink_checkpoint_t){tp->name,
                                                        p,
                                                        tp->parts[p].open_first,
                                                        featurize_spec_hash(l->sh->fz),
                                                        0,
                                                        l->empty_state,
                                                        l->empty_state_len};
}

int lane_close_batch(lane_t *l, lane_writer_t *w)
{
    lane_batch_t *b = w->open;
    int64_t now = lane_now_ns();

    if (!b || b->n_items == 0)
        return 0;
    if (l->enrich_failed || lane_enrich(l, b) != 0) {
        l->enrich_failed = 1;
        l->failed = 1;
        lane_request_stop(l);
        return -1;
    }
    lane_checkpoints_take(l, b); /* before the advances clear open_next */
    b->n_adv = 0;
    for (size_t t = 0; t < l->n_topics; t++) {
        lane_topic_t *tp = &l->topics[t];
        for (size_t p = w->index; p < tp->n_parts; p += l->n_writers) { /* w's partitions */
            lane_partition_t *part = &tp->parts[p];
            if (part->open_next < 0)
                continue;
            if (tp->featurised && part->sent_next == SINK_PG_OFFSET_NONE)
                lane_first_state(l, b, tp, (int32_t)p);
            b->advances[b->n_adv++] =
                (sink_offset_advance_t){tp->name, (int32_t)p, part->sent_next, part->open_next};
            part->sent_next = part->open_next;
            part->open_next = -1;
        }
    }
    b->epoch = l->epoch;
    b->closed_ns = now;
    metrics_observe(&l->m->stage_seconds[METRICS_STAGE_FILL], (double)(now - b->opened_ns) / 1e9);
    metrics_observe(&l->m->stage_seconds[METRICS_STAGE_ENRICH], b->enrich_s);
    atomic_fetch_sub(&l->m->open_messages, (int64_t)b->n_items);
    w->open = NULL;
    w->in_flight++;
    /* Ownership of b passes to the writer until it comes back on the done queue. */
    if (lane_queue_push(&w->to_write, b) != 0) {
        log_error("a lane's write queue refused a batch (a bug); stopping", "lane=%s", l->name);
        w->in_flight--;
        lane_batch_reset(b);
        l->free_list[l->n_free++] = b;
        l->failed = 1;
        lane_request_stop(l);
        return -1;
    }
    lane_queue_publish(l);
    return 0;
}

int lane_close_open(lane_t *l)
{
    for (size_t i = 0; i < l->n_writers; i++)
        if (lane_close_batch(l, &l->writers[i]) != 0)
            return -1;
    return 0;
}

/* Whether w's open batch closes now (see the top of this file). */
static int lane_should_close(const lane_t *l, const lane_writer_t *w, int got_msg, int64_t now)
{
    const lane_batch_t *b = w->open;
    if (!b || b->n_items == 0)
        return 0;
    if ((int)b->n_items >= atomic_load(&l->sh->batch_max) || now >= w->batch_deadline_ms)
        return 1;
    if (l->sh->news_batch_max > 0 && b->n_articles >= l->sh->news_batch_max)
        return 1;
    return w->in_flight == 0 && !got_msg &&
           now >= l->batch_last_add_ms + atomic_load(&l->sh->batch_linger_ms);
}

/* How long the next poll may wait: with a batch that could close, until it would; otherwise a
 * tenth of a second (a writer wakes the poll when it hands a batch back). */
static int lane_poll_timeout(const lane_t *l, int64_t now)
{
    int64_t until = now + 100;
    for (size_t i = 0; i < l->n_writers; i++) {
        const lane_writer_t *w = &l->writers[i];
        if (!w->open || w->open->n_items == 0)
            continue;
        int64_t at = w->batch_deadline_ms;
        if (w->in_flight == 0) {
            int64_t linger = l->batch_last_add_ms + atomic_load(&l->sh->batch_linger_ms);
            at = linger < at ? linger : at;
        }
        until = at < until ? at : until;
    }
    return until <= now ? 0 : (int)(until - now);
}

/* --- the loop --------------------------------------------------------------------------------- */

/* Whether a writer's last attempt failed. */
static int lane_writes_fail(lane_t *l)
{
    for (size_t i = 0; i < l->n_writers; i++)
        if (atomic_load(&l->writers[i].write_failing))
            return 1;
    return 0;
}

/* Pauses while a writer fails, a schema cannot be fetched, or no batch has been free for a
 * while; resumes when none of those holds. */
static void lane_follow_pause(lane_t *l, int64_t now)
{
    const char *why = lane_writes_fail(l) ? "PostgreSQL writes fail"
                      : l->pause_schema   ? "writer schema unavailable"
                      : l->waiting_ms && now - l->waiting_ms >= LANE_PAUSE_AFTER_MS
                          ? "no free batch: the writers are behind"
                          : NULL;
    lane_pause(l, why != NULL, why ? why : "the lane can take messages again");
}

/* Once a second, not per message: seeks that failed, lag, the dead-letter producer. */
static void lane_housekeeping(lane_t *l)
{
    for (size_t t = 0; t < l->n_topics; t++)
        for (size_t p = 0; p < l->topics[t].n_parts; p++)
            if (l->topics[t].parts[p].assigned && l->topics[t].parts[p].seek_pending)
                lane_seek_stored(l, &l->topics[t], (int32_t)p);
    lane_lag_update(l);
    if (l->dlq)
        metrics_add(&metrics.dlq_failed, ingest_dlq_poll(l->dlq));
}

static rd_kafka_message_t *lane_poll(lane_t *l, int timeout_ms)
{
    char q[1100];
    rd_kafka_message_t *msg = ingest_kafka_poll(l->kafka, timeout_ms);
    if (msg && msg->err) {
        if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            metrics_add(&metrics.kafka_errors, 1);
            log_warn("kafka consumer error", "lane=%s error=\"%s\"", l->name,
                     log_quote(rd_kafka_message_errstr(msg), q, sizeof(q)));
        }
        rd_kafka_message_destroy(msg);
        msg = NULL;
    }
    return msg;
}

/* One turn of the loop. Returns 0, or -1 when the lane must stop. */
static int lane_turn(lane_t *l, int64_t *last_second)
{
    int64_t now = lanes_now_ms();
    rd_kafka_message_t *msg;

    lane_reader_beat(l);
    lane_take_back(l, 0);
    if (lane_take_free(l) != 0) {
        /* Every batch is in flight: wait for one, polling only to serve rebalances once the
         * partitions are paused. */
        if (!l->waiting_ms)
            l->waiting_ms = now;
        lane_follow_pause(l, now);
        if (l->paused && (msg = lane_poll(l, 100)) != NULL)
            lane_message(l, msg); /* no batch to take it: moved back (lane_unplaced) */
        else
            lane_take_back(l, 100);
        return l->failed ? -1 : 0;
    }
    lane_follow_pause(l, now);
    msg = lane_poll(l, lane_poll_timeout(l, now));
    if (msg)
        lane_message(l, msg); /* ownership of msg passes on */
    now = lanes_now_ms();
    if (msg)
        l->batch_last_add_ms = now;
    for (size_t i = 0; i < l->n_writers; i++) {
        lane_batch_t *b = l->writers[i].open;
        if (b && b->n_items - b->n_enriched > 0 &&
            (!msg || b->n_items - b->n_enriched >= LANE_ENRICH_CHUNK) && lane_enrich(l, b) != 0) {
            l->enrich_failed = 1;
            l->failed = 1;
            return -1;
        }
    }
    if (now - *last_second >= 1000) {
        lane_housekeeping(l);
        *last_second = now;
    }
    for (size_t i = 0; i < l->n_writers; i++)
        if (lane_should_close(l, &l->writers[i], msg != NULL, now) &&
            lane_close_batch(l, &l->writers[i]) != 0)
            return -1;
    return l->failed ? -1 : 0;
}

/* The end of the lane: what is in flight committed (or given up at the shutdown bound), the
 * group left, the writers joined. */
void lane_finish(lane_t *l)
{
    if (!atomic_load(&l->sh->stop_deadline_ms))
        lane_request_stop(l); /* a lane that ends on its own stops the process */
    if (l->kafka) {
        if (lane_drain(l) != 0) {
            log_error("in-flight batches not committed before the shutdown bound; they will be "
                      "consumed again on restart",
                      "lane=%s", l->name);
            l->failed = 1;
        } else if (!l->failed) {
            atomic_store(&l->drained, 1);
        }
        ingest_kafka_close(l->kafka); /* revokes: nothing is left to drain */
    }
    for (size_t i = 0; i < l->n_writers; i++) {
        lane_writer_t *w = &l->writers[i];
        if (!w->started)
            continue;
        lane_queue_close(&w->to_write);
        pthread_join(w->thread, NULL);
        w->started = 0;
        atomic_store(&w->beat_ms, 0);
    }
    lane_take_back(l, 0);
    for (size_t i = 0; i < l->n_writers; i++)
        if (l->writers[i].open)
            lane_batch_reset(l->writers[i].open);
    /* The write in progress ends; a queued checkpoint is dropped (the older one stands). */
    checkpointer_free(l->ckpt);
    l->ckpt = NULL;
    if (l->dlq) {
        int64_t left = atomic_load(&l->sh->stop_deadline_ms) - lanes_now_ms();
        int unsent = ingest_dlq_flush(l->dlq, left > 0 ? (int)left : 0);
        metrics_add(&metrics.dlq_failed, ingest_dlq_poll(l->dlq));
        if (unsent > 0)
            log_warn("dead letters not copied to the dead-letter topic before the shutdown bound; "
                     "they are in vigil.dead_letters",
                     "count=%d", unsent);
    }
    ingest_dlq_free(l->dlq);
    l->dlq = NULL;
    ingest_kafka_free(l->kafka);
    l->kafka = NULL;
    lane_control_release(l);
    for (size_t t = 0; t < l->n_topics; t++) {
        atomic_store(&l->topics[t].m->assigned_partitions, 0);
        for (int p = 0; p < METRICS_PARTITIONS_MAX; p++)
            atomic_store(&l->topics[t].m->consumer_lag[p], -1);
    }
}

void *lane_reader_main(void *arg)
{
    lane_t *l = arg;
    int64_t last_second = 0;
    char name[16];

    snprintf(name, sizeof name, "%.8s-read", l->name); /* for top -H, gdb, perf */
    pthread_setname_np(pthread_self(), name);
    lane_reader_beat(l);
    if (lane_open(l) != 0) {
        l->failed = 1;
    } else if (l->kafka) {
        lanes_lane_ready(l->owner);
        while (!lane_stopping(l))
            if (lane_turn(l, &last_second) != 0)
                break;
    }
    lane_finish(l);
    lanes_lane_exited(l->owner);
    return NULL;
}
