/* A lane's partitions (see lane.h): where each stands in Kafka and in PostgreSQL, and, for the
 * featurised topic, its entity state.
 *
 * Offsets. For every assigned partition the reader remembers the offset stored in PostgreSQL
 * ("expected") and where the batches it has handed to the writer end ("sent_next"). A batch
 * commits, in one transaction, "next_offset = its end WHERE next_offset = the end of the
 * partition's previous batch". If another instance took the partition and moved the stored offset
 * on, the condition fails, the transaction rolls back and the batch comes back fenced; the batches
 * closed after it are dropped unwritten (their condition could only fail too), and lane_refence
 * re-reads the stored offsets and seeks there: a fenced instance writes nothing.
 *
 * Entity state. The BehaviorEvent topic's events update the entity state of their partition (one
 * per partition) as they are enriched. A batch may carry a snapshot of a partition's state as of
 * the batch's end, which the writer hands to the checkpoint writer once the batch has committed,
 * so a stored checkpoint never holds events that were not committed. On assignment (and after a
 * fence) the reader loads the checkpoint and reads from its offset: events before the stored
 * Kafka offset are replayed into the state only (their rows are committed already), later ones are
 * written. @locality: everything here runs on the lane's reader thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lane.h"
#include "log.h"

lane_topic_t *lane_topic_find(lane_t *l, const char *name)
{
    for (size_t t = 0; name && t < l->n_topics; t++)
        if (strcmp(l->topics[t].name, name) == 0)
            return &l->topics[t];
    return NULL;
}

lane_partition_t *lane_partition(lane_topic_t *t, int32_t partition)
{
    if (partition < 0)
        return NULL;
    if ((size_t)partition >= t->n_parts) {
        size_t n = (size_t)partition + 1;
        lane_partition_t *p = realloc(t->parts, n * sizeof(*p));
        if (!p)
            return NULL;
        for (size_t i = t->n_parts; i < n; i++)
            p[i] = (lane_partition_t){.expected = SINK_PG_OFFSET_NONE,
                                      .sent_next = SINK_PG_OFFSET_NONE,
                                      .open_next = -1,
                                      .read_from = SINK_PG_OFFSET_NONE,
                                      .state_next = -1};
        t->parts = p;
        t->n_parts = n;
    }
    return &t->parts[partition];
}

/* --- the control connection --------------------------------------------------------------- */

sink_pg_t *lane_control(lane_t *l)
{
    char err[1024], q[1100];
    int backoff = 100;
    for (;;) {
        if (!l->control)
            l->control = sink_pg_new(l->sh->pg_conninfo, err, sizeof err);
        if (l->control && sink_pg_reconnect(l->control, err, sizeof err) == SINK_PG_OK)
            return l->control;
        metrics_add(&metrics.pg_errors, 1);
        atomic_store(&metrics.pg_up, 0);
        log_warn("cannot connect to PostgreSQL; retrying", "lane=%s error=\"%s\" retry_ms=%d",
                 l->name, log_quote(err, q, sizeof q), backoff);
        if (lane_stopping(l) || lane_backoff(l, &l->reader_beat_ms, &backoff) != 0)
            return NULL;
    }
}

void lane_control_release(lane_t *l)
{
    sink_pg_free(l->control);
    l->control = NULL;
}

int lane_control_retry(lane_t *l, const char *doing,
                       int (*what)(lane_t *, sink_pg_t *, void *, char *, size_t), void *ctx)
{
    char err[1024], q[1100];
    int backoff = 100;
    for (;;) {
        sink_pg_t *pg = lane_control(l);
        if (!pg)
            return -1;
        if (what(l, pg, ctx, err, sizeof err) == SINK_PG_OK) {
            atomic_store(&metrics.pg_up, 1);
            return 0;
        }
        metrics_add(&metrics.pg_errors, 1);
        atomic_store(&metrics.pg_up, 0);
        log_warn("PostgreSQL not ready; retrying", "lane=%s doing=\"%s\" error=\"%s\" retry_ms=%d",
                 l->name, doing, log_quote(err, q, sizeof q), backoff);
        if (lane_stopping(l) || lane_backoff(l, &l->reader_beat_ms, &backoff) != 0)
            return -1;
    }
}

typedef struct lane_offsets_req {
    const lane_topic_t *t;
    const int32_t *partitions;
    size_t n;
    int64_t *offsets;
} lane_offsets_req_t;

static int lane_offsets_read(lane_t *l, sink_pg_t *pg, void *ctx, char *err, size_t errlen)
{
    lane_offsets_req_t *r = ctx;
    return sink_pg_offsets_load(pg, ingest_kafka_group(l->kafka), r->t->name, r->partitions, r->n,
                                r->offsets, err, errlen);
}

int lane_offsets_load(lane_t *l, const lane_topic_t *t, const int32_t *partitions, size_t n,
                      int64_t *offsets)
{
    lane_offsets_req_t r = {t, partitions, n, offsets};
    return lane_control_retry(l, "stored offsets", lane_offsets_read, &r);
}

/* --- entity state ---------------------------------------------------------------------------- */

typedef struct lane_ckpt_req {
    const lane_topic_t *t;
    int32_t id;
    int64_t ckpt;   /* out: the checkpoint's offset; in: where replay-skip offsets start */
    char hash[64];  /* out */
    uint8_t *state; /* out, malloc'ed */
    size_t len;
} lane_ckpt_req_t;

static int lane_checkpoint_read(lane_t *l, sink_pg_t *pg, void *ctx, char *err, size_t errlen)
{
    lane_ckpt_req_t *r = ctx;
    free(r->state);
    r->state = NULL;
    return sink_pg_checkpoint_load(pg, ingest_kafka_group(l->kafka), r->t->name, r->id, &r->ckpt,
                                   r->hash, sizeof r->hash, &r->state, &r->len, err, errlen);
}

/* The dead letters between a checkpoint and the stored offset: live, decoding refused them, so
 * they never reached the state, and a replay must not let them in even if they would decode now
 * (a schema registered since, say). */
static int lane_replay_skip_read(lane_t *l, sink_pg_t *pg, void *ctx, char *err, size_t errlen)
{
    lane_ckpt_req_t *r = ctx;
    lane_partition_t *p = &((lane_topic_t *)r->t)->parts[r->id];
    free(p->replay_skip);
    p->replay_skip = NULL;
    p->n_replay_skip = 0;
    return sink_pg_dead_offsets_load(pg, r->t->name, r->id, r->ckpt, p->expected, &p->replay_skip,
                                     &p->n_replay_skip, err, errlen);
}

/* The oldest offset Kafka still holds for the partition, retrying until it answers or the lane
 * stops (-1). */
static int lane_low_watermark(lane_t *l, lane_topic_t *t, int32_t id, int64_t *low)
{
    char err[512], q[600];
    int backoff = 100;
    while (ingest_kafka_query_low(l->kafka, t->name, id, 5000, low, err, sizeof(err)) != 0) {
        log_warn("cannot read the partition's low watermark; retrying",
                 "topic=%s partition=%d error=\"%s\" retry_ms=%d", t->name, (int)id,
                 log_quote(err, q, sizeof(q)), backoff);
        if (lane_stopping(l) || lane_backoff(l, &l->reader_beat_ms, &backoff) != 0)
            return -1;
    }
    return 0;
}

/* Whether the loaded checkpoint r can rebuild the partition's state; logs why not. 1: usable and
 * loaded, 0: not usable (the state stays empty), -1: stopping. */
static int lane_checkpoint_use(lane_t *l, lane_topic_t *t, int32_t id, lane_ckpt_req_t *r)
{
    lane_partition_t *p = &t->parts[id];
    const char *spec = featurize_spec_hash(l->sh->fz);
    char err[512], q[600];
    int64_t low = 0;

    if (!r->state) {
        if (p->expected != SINK_PG_OFFSET_NONE)
            log_warn("no entity state checkpoint; aggregates start empty at the stored offset",
                     "topic=%s partition=%d offset=%lld", t->name, (int)id, (long long)p->expected);
        return 0;
    }
    if (strcmp(r->hash, spec) != 0) {
        log_warn("entity state checkpoint taken under another feature spec; aggregates start "
                 "empty at the stored offset",
                 "topic=%s partition=%d checkpoint_spec=%s spec=%s", t->name, (int)id, r->hash,
                 spec);
        return 0;
    }
    if (p->expected == SINK_PG_OFFSET_NONE || r->ckpt > p->expected) {
        log_warn("entity state checkpoint is ahead of the stored offset; not used",
                 "topic=%s partition=%d checkpoint=%lld stored=%lld", t->name, (int)id,
                 (long long)r->ckpt, (long long)p->expected);
        return 0;
    }
    if (features_state_load(p->state, r->state, r->len, err, sizeof(err)) != 0) {
        log_warn("entity state checkpoint unusable; aggregates start empty at the stored offset",
                 "topic=%s partition=%d error=\"%s\"", t->name, (int)id,
                 log_quote(err, q, sizeof(q)));
        return 0;
    }
    if (lane_low_watermark(l, t, id, &low) != 0)
        return -1;
    if (r->ckpt < low) {
        /* Retention removed events the replay needs: reading from ckpt would restart at
         * auto.offset.reset instead, and with "latest" even skip what was never written. */
        features_state_clear(p->state); /* loaded above, but not usable */
        log_warn("entity state checkpoint older than Kafka's retention; aggregates start empty "
                 "at the stored offset",
                 "topic=%s partition=%d checkpoint=%lld low_watermark=%lld", t->name, (int)id,
                 (long long)r->ckpt, (long long)low);
        return 0;
    }
    if (lane_control_retry(l, "dead-letter offsets for a replay", lane_replay_skip_read, r) != 0)
        return -1;
    return 1;
}

/* Where a partition resumes, given its stored offset: a featurised partition's entity state comes
 * back from the checkpoint in PostgreSQL and reading starts at the checkpoint's offset, so the
 * events between it and the stored offset rebuild the state (lane_replay). Without a usable
 * checkpoint the state starts empty at the stored offset. Sets p->read_from. Returns 0, -1 when
 * stopping or out of memory. */
int lane_state_resume(lane_t *l, lane_topic_t *t, int32_t id)
{
    lane_partition_t *p = &t->parts[id];
    lane_ckpt_req_t r = {.t = t, .id = id, .ckpt = SINK_PG_OFFSET_NONE};
    char err[512], q[600];
    int use;

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
        p->state = features_state_new(featurize_spec(l->sh->fz), l->sh->max_entities, l->sh->ttl_ms,
                                      err, sizeof(err));
        if (!p->state) {
            log_error("cannot create the entity state", "topic=%s partition=%d error=\"%s\"",
                      t->name, (int)id, log_quote(err, q, sizeof(q)));
            return -1;
        }
    }
    features_state_clear(p->state);
    if (lane_control_retry(l, "entity state checkpoint", lane_checkpoint_read, &r) != 0)
        return -1;
    use = lane_checkpoint_use(l, t, id, &r);
    free(r.state);
    if (use < 0)
        return -1;
    if (use > 0) {
        p->read_from = r.ckpt;
        p->state_next = r.ckpt;
        /* checkpoint_ms stays 0: the first batch checkpoints again, so a crash loop shorter
         * than the interval does not make every restart replay further back */
        log_info("entity state restored; replaying up to the stored offset",
                 "topic=%s partition=%d checkpoint=%lld stored=%lld replay=%lld", t->name, (int)id,
                 (long long)r.ckpt, (long long)p->expected, (long long)(p->expected - r.ckpt));
    }
    if (p->state_next < 0 && p->expected != SINK_PG_OFFSET_NONE)
        p->state_next = p->expected;
    return 0;
}

/* Moves a partition's read position to read_from. Until that works the partition's messages are
 * dropped (they would skip events); the reader retries once a second. */
void lane_seek_stored(lane_t *l, lane_topic_t *t, int32_t id)
{
    char err[512], q[1100];
    lane_partition_t *p = &t->parts[id];

    if (ingest_kafka_seek(l->kafka, t->name, id, p->read_from, err, sizeof(err)) == 0) {
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

/* One partition back to the truth in PostgreSQL: stored offset, state, read position. */
static int lane_refence_one(lane_t *l, lane_topic_t *t, int32_t id)
{
    lane_partition_t *p = &t->parts[id];
    int64_t stored;
    if (lane_offsets_load(l, t, &id, 1, &stored) != 0)
        return -1;
    p->expected = p->sent_next = stored;
    p->open_next = -1;
    if (lane_state_resume(l, t, id) != 0)
        return -1;
    lane_seek_stored(l, t, id);
    return 0;
}

void lane_refence(lane_t *l, lane_topic_t *topic, int32_t partition)
{
    for (size_t t = 0; t < l->n_topics; t++) {
        lane_topic_t *tp = &l->topics[t];
        for (size_t p = 0; p < tp->n_parts; p++) {
            lane_partition_t *part = &tp->parts[p];
            int named = tp == topic && (int32_t)p == partition;
            if (!part->assigned ||
                !(named || part->open_next >= 0 || part->sent_next != part->expected))
                continue;
            if (lane_refence_one(l, tp, (int32_t)p) != 0)
                goto out; /* stopping */
        }
    }
out:
    for (size_t w = 0; w < l->n_writers; w++)
        if (l->writers[w].open)
            lane_batch_reset(l->writers[w].open);
    lane_control_release(l);
}

/* --- replay ---------------------------------------------------------------------------------- */

/* An event before the stored offset, read again after a restore from a checkpoint: its row is
 * committed already, so it only updates the entity state. Takes ownership of msg. */
void lane_replay(lane_t *l, lane_topic_t *t, lane_partition_t *p, rd_kafka_message_t *msg)
{
    char reason[LANE_REASON_MAX];
    int rc = INGEST_AVRO_BAD, backoff = 500;

    while (p->replay_skip_at < p->n_replay_skip && p->replay_skip[p->replay_skip_at] < msg->offset)
        p->replay_skip_at++;
    if (p->replay_skip_at < p->n_replay_skip && p->replay_skip[p->replay_skip_at] == msg->offset) {
        /* a dead letter then: leave the state as the live run left it */
    } else if (msg->payload && msg->len > 0) {
        rc = ingest_avro_decode(t->decoder, msg->payload, msg->len, &l->replay_rec, reason,
                                sizeof(reason));
        /* It decoded once; a registry outage now must not change what the state saw. */
        while (rc == INGEST_AVRO_RETRY && !lane_stopping(l) &&
               lane_backoff(l, &l->reader_beat_ms, &backoff) == 0)
            rc = ingest_avro_decode(t->decoder, msg->payload, msg->len, &l->replay_rec, reason,
                                    sizeof(reason));
    }
    if (rc == INGEST_AVRO_RETRY || rc == INGEST_AVRO_ERR) {
        /* The state misses this event: it must never be checkpointed. Stop; the restart
         * replays again from the last good checkpoint. */
        p->state_broken = 1;
        l->failed |= rc == INGEST_AVRO_ERR;
        lane_request_stop(l);
    } else if (rc == INGEST_AVRO_OK && featurize_event(l->sh->fz, p->state, &l->replay_rec.event,
                                                       l->replay_features) != 0) {
        p->state_broken = 1;
        log_error("out of memory updating the entity state; stopping", "entities_max=%u",
                  (unsigned)l->sh->max_entities);
        l->failed = 1;
        lane_request_stop(l);
    } else {
        /* applied, or a dead letter (which never touched the state either) */
        metrics_add(&metrics.features_replayed, 1);
    }
    p->state_next = msg->offset + 1;
    rd_kafka_message_destroy(msg);
}

/* --- checkpoints ----------------------------------------------------------------------------- */

/* Snapshots partition p of topic tp, whose state stands at the batch's end, into b. */
static void lane_checkpoint_add(lane_t *l, lane_batch_t *b, lane_topic_t *tp, size_t p)
{
    lane_partition_t *part = &tp->parts[p];
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
    /* Ownership of buf passes to the batch; the writer hands it to the checkpoint writer, or
     * lane_batch_reset frees it. */
    b->ckpt_taken[b->n_ckpt] = 0;
    b->checkpoints[b->n_ckpt++] = (sink_checkpoint_t){
        tp->name, (int32_t)p, part->open_next, featurize_spec_hash(l->sh->fz), st.entities,
        buf,      len};
    part->ckpt_in_flight = 1;
    l->ckpt_in_flight++;
}

/* Snapshots into b the entity state of the featurised partitions in the batch (its writer's
 * partitions) that are due a checkpoint: every partition with none taken since it was assigned, and
 * of those whose interval has passed only the one waiting longest, and only when interval /
 * (assigned featurised partitions) has passed since the last such one. A snapshot is as large as
 * its partition's state (megabytes to tens of MB); partitions assigned together come due together,
 * and paced this way their checkpoints spread evenly over the interval. A partition whose state is
 * not exactly at the batch's end (or is broken), or that has a snapshot in flight already, is
 * skipped. No more snapshots are taken than the checkpoint writer has room for, counting those in
 * flight. Runs before the batch's advances clear open_next. The pacing counts the lane's assigned
 * partitions and paces the lane as a whole, whichever writer's batch a snapshot rides in. */
void lane_checkpoints_take(lane_t *l, lane_batch_t *b)
{
    size_t due_p = 0, assigned = 0, room;
    lane_topic_t *due_tp = NULL;
    int64_t now = lanes_now_ms(), due_ms = 0;
    const int64_t interval = l->sh->checkpoint_interval_ms;

    if (!l->sh->fz || l->kind != LANE_EVENTS)
        return;
    if (!l->ckpt) {
        char err[512], q[600];
        l->ckpt = checkpointer_new(l->sh->pg_conninfo, ingest_kafka_group(l->kafka),
                                   l->sh->instance_id, err, sizeof err);
        if (!l->ckpt) {
            log_warn("cannot start the checkpoint writer; no checkpoint this batch", "error=\"%s\"",
                     log_quote(err, q, sizeof q));
            return;
        }
    }
    room = checkpointer_room(l->ckpt);
    room = room > l->ckpt_in_flight ? room - l->ckpt_in_flight : 0;
    room = room < b->cap_ckpt ? room : b->cap_ckpt;

    for (size_t t = 0; t < l->n_topics; t++) {
        lane_topic_t *tp = &l->topics[t];
        for (size_t p = 0; tp->featurised && p < tp->n_parts; p++) {
            lane_partition_t *part = &tp->parts[p];
            assigned += part->assigned != 0;
            if (lane_writer_of(l, (int32_t)p)->index != b->writer)
                continue;
            if (part->open_next < 0 || part->state_broken || part->ckpt_in_flight ||
                part->state_next != part->open_next)
                continue;
            if (b->n_ckpt == room)
                return;
            if (part->checkpoint_ms == 0) {
                lane_checkpoint_add(l, b, tp, p);
            } else if (now - part->checkpoint_ms >= interval &&
                       (!due_tp || part->checkpoint_ms < due_ms)) {
                due_tp = tp;
                due_p = p;
                due_ms = part->checkpoint_ms;
            }
        }
    }
    if (due_tp && b->n_ckpt < room &&
        now - l->checkpoint_paced_ms >= interval / (int64_t)(assigned > 0 ? assigned : 1)) {
        lane_checkpoint_add(l, b, due_tp, due_p);
        l->checkpoint_paced_ms = now;
    }
}

/* --- metrics and fetching ----------------------------------------------------------------------
 */

/* Publishes how many entities the lane's assigned partitions hold, and their memory (only the
 * events lane has entity state). */
void lane_entities_publish(lane_t *l)
{
    int64_t entities = 0, bytes = 0;
    if (l->kind != LANE_EVENTS || !l->sh->fz)
        return;
    for (size_t t = 0; t < l->n_topics; t++)
        for (size_t p = 0; l->topics[t].featurised && p < l->topics[t].n_parts; p++) {
            features_stats_t st;
            if (!l->topics[t].parts[p].state)
                continue;
            features_state_stats(l->topics[t].parts[p].state, &st);
            entities += (int64_t)st.entities;
            bytes += (int64_t)st.bytes;
        }
    atomic_store(&metrics.entities, entities);
    atomic_store(&metrics.entity_state_bytes, bytes);
}

/* Refreshes vigil_consumer_lag for the assigned partitions from cached watermarks. */
void lane_lag_update(lane_t *l)
{
    for (size_t t = 0; t < l->n_topics; t++) {
        lane_topic_t *tp = &l->topics[t];
        for (size_t p = 0; p < tp->n_parts && p < METRICS_PARTITIONS_MAX; p++) {
            const lane_partition_t *part = &tp->parts[p];
            int64_t low, high, lag = -1;
            if (part->assigned &&
                ingest_kafka_watermarks(l->kafka, tp->name, (int32_t)p, &low, &high) == 0) {
                int64_t from = part->expected == SINK_PG_OFFSET_NONE ? low : part->expected;
                lag = high > from ? high - from : 0;
            }
            atomic_store(&tp->m->consumer_lag[p], lag);
        }
    }
}

void lane_pause(lane_t *l, int pause, const char *why)
{
    char err[512], q[1100];
    int n;

    if (l->paused == pause || !l->kafka)
        return;
    n = ingest_kafka_pause_all(l->kafka, pause, err, sizeof(err));
    if (n < 0) {
        log_warn(pause ? "cannot pause partitions" : "cannot resume partitions",
                 "lane=%s error=\"%s\"", l->name, log_quote(err, q, sizeof(q)));
        if (pause)
            return; /* not paused: the prefetch bound still holds memory */
    }
    l->paused = pause;
    for (size_t t = 0; t < l->n_topics; t++) {
        metrics_topic_t *m = l->topics[t].m;
        atomic_store(&m->paused_partitions, pause ? atomic_load(&m->assigned_partitions) : 0);
    }
    log_info(pause ? "partitions paused" : "partitions resumed", "lane=%s partitions=%d why=\"%s\"",
             l->name, n, why);
}
