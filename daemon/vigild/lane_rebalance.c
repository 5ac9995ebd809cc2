/* What a lane's reader does when the group moves partitions, and when the writer hands batches
 * back (see lane.h).
 *
 * A revoke completes only after every batch in flight has committed or been dropped: the reader
 * hands its open batch to the writer and waits for all of them (lane_drain) before it lets the
 * partitions go, so the next owner starts from offsets that account for everything this
 * instance wrote. An assignment reads the partitions' stored offsets (and entity state
 * checkpoints) from PostgreSQL and assigns exactly those.
 *
 * A batch that comes back fenced means another instance owns one of its partitions now: the
 * batches closed after it come back dropped, and lane_refence puts every partition with work in
 * flight back where PostgreSQL says it stands. @locality: the lane's reader thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lane.h"
#include "log.h"

/* The assigned partitions of t, for the gauge (counted, so no callback order can skew it). */
static void lane_assigned_publish(lane_topic_t *t)
{
    int64_t n = 0;
    for (size_t p = 0; p < t->n_parts; p++)
        n += t->parts[p].assigned != 0;
    atomic_store(&t->m->assigned_partitions, n);
}

/* Copies the committed batch's dead letters to the dead-letter topic, if there is one: after
 * the commit, best effort (see ingest_dlq.h). */
static void lane_dlq_publish(lane_t *l, const lane_batch_t *b)
{
    char err[512], q[600];

    if (!l->dlq)
        return;
    for (size_t i = 0; i < b->n_items; i++) {
        const lane_item_t *it = &b->items[i];
        const rd_kafka_message_t *m = it->msg;
        if (!it->dead || !it->committed)
            continue;
        if (ingest_dlq_send(l->dlq, m->key, m->key_len, m->payload, m->len, it->reason,
                            it->topic->name, m->partition, m->offset, err, sizeof(err)) == 0) {
            metrics_add(&metrics.dlq_published, 1);
        } else {
            metrics_add(&metrics.dlq_failed, 1);
            log_warn("dead letter not copied to the dead-letter topic", "offset=%lld error=\"%s\"",
                     (long long)m->offset, log_quote(err, q, sizeof(q)));
        }
    }
    metrics_add(&metrics.dlq_failed, ingest_dlq_poll(l->dlq));
}

/* Tells Kafka the committed offsets too, for lag tools only (PostgreSQL holds the ones that
 * count); skipped when out of memory. */
static void lane_kafka_commit(lane_t *l, const lane_batch_t *b)
{
    const char **topics = malloc((b->n_adv + 1) * sizeof *topics);
    int32_t *parts = malloc((b->n_adv + 1) * sizeof *parts);
    int64_t *next = malloc((b->n_adv + 1) * sizeof *next);
    if (topics && parts && next) {
        for (size_t i = 0; i < b->n_adv; i++) {
            topics[i] = b->advances[i].topic;
            parts[i] = b->advances[i].partition;
            next[i] = b->advances[i].next;
        }
        ingest_kafka_commit(l->kafka, topics, parts, next, b->n_adv);
    }
    free(topics);
    free(parts);
    free(next);
}

/* The batch's snapshots are no longer in flight; those the checkpoint writer took restart their
 * partition's interval. */
static void lane_checkpoints_back(lane_t *l, const lane_batch_t *b)
{
    int64_t now = lanes_now_ms();
    for (size_t i = 0; i < b->n_ckpt; i++) {
        lane_topic_t *t = lane_topic_find(l, b->checkpoints[i].topic);
        lane_partition_t *p = t ? lane_partition(t, b->checkpoints[i].partition) : NULL;
        if (p) {
            p->ckpt_in_flight = 0;
            if (b->ckpt_taken[i])
                p->checkpoint_ms = now;
        }
        if (b->status == LANE_BATCH_COMMITTED && !b->ckpt_taken[i])
            log_warn("entity state checkpoint dropped: the checkpoint writer could not take it; "
                     "the partition stays due",
                     "topic=%s partition=%d", b->checkpoints[i].topic,
                     (int)b->checkpoints[i].partition);
    }
    l->ckpt_in_flight -= b->n_ckpt < l->ckpt_in_flight ? b->n_ckpt : l->ckpt_in_flight;
}

static void lane_batch_committed_back(lane_t *l, lane_batch_t *b)
{
    for (size_t i = 0; i < b->n_adv; i++) {
        lane_topic_t *t = lane_topic_find(l, b->advances[i].topic);
        lane_partition_t *p = t ? lane_partition(t, b->advances[i].partition) : NULL;
        if (p)
            p->expected = b->advances[i].next;
    }
    lane_dlq_publish(l, b);
    lane_kafka_commit(l, b);
    lane_entities_publish(l);
    log_debug("batch committed",
              "lane=%s messages=%zu partitions=%zu fill_ms=%.1f enrich_ms=%.1f queue_ms=%.1f "
              "write_ms=%.1f snapshots=%zu",
              l->name, b->n_items, b->n_adv, (double)(b->closed_ns - b->opened_ns) / 1e6,
              b->enrich_s * 1e3, (double)(b->taken_ns - b->closed_ns) / 1e6,
              (double)(b->done_ns - b->taken_ns) / 1e6, b->n_ckpt);
}

/* What a writer made of b, taken into account; b becomes free again. A batch that committed
 * counts whatever its epoch (it is in PostgreSQL); one that came back fenced in the current
 * epoch starts a new one: the writers drop what was closed before, and once all of it is back
 * lane_fence_settle refences the partitions it held (lane_take_back). */
static void lane_batch_back(lane_t *l, lane_batch_t *b)
{
    char q[1100];

    l->writers[b->writer].in_flight--;
    metrics_observe(&l->m->stage_seconds[METRICS_STAGE_QUEUE],
                    (double)(b->taken_ns - b->closed_ns) / 1e9);
    metrics_observe(&l->m->stage_seconds[METRICS_STAGE_WRITE],
                    (double)(b->done_ns - b->taken_ns) / 1e9);
    lane_checkpoints_back(l, b);
    if (b->status == LANE_BATCH_COMMITTED) {
        lane_batch_committed_back(l, b);
    } else if (b->epoch != l->epoch) {
        /* Closed before a batch that came back fenced, and dropped or fenced too: its
         * partitions are refenced once everything of that epoch is back. */
    } else if (b->status == LANE_BATCH_FENCED) {
        metrics_add(&metrics.fenced, 1);
        metrics_add(&l->m->fenced, 1);
        l->fences++;
        log_warn("batch fenced: another instance owns this partition's offsets now; dropped "
                 "without writing",
                 "lane=%s messages=%zu error=\"%s\"", l->name, b->n_items,
                 log_quote(b->err, q, sizeof(q)));
        l->epoch++;
        atomic_store(&l->drop_before, l->epoch); /* every writer drops what is older */
        l->fence_pending = 1;
    } else {
        /* UNWRITTEN (or DROPPED, which only a stale epoch gets): stopping past the bound */
        l->unwritten = 1;
    }
    lane_batch_reset(b);
    l->free_list[l->n_free++] = b;
}

/* After a fence: waits until every batch closed before it is back (the writers drop the ones
 * they had not started; one a writer was writing may still commit, and counts), then puts every
 * partition with work not committed back where PostgreSQL says it stands. Waiting first means
 * no commit can land after the stored offsets are read. */
static void lane_fence_settle(lane_t *l)
{
    lane_batch_t *b;
    while (lane_in_flight(l) > 0) {
        lane_reader_beat(l);
        if ((b = lane_queue_pop(&l->done, 100)) != NULL)
            lane_batch_back(l, b);
    }
    l->fence_pending = 0;
    lane_refence(l, NULL, -1);
}

size_t lane_take_back(lane_t *l, int timeout_ms)
{
    size_t n = 0;
    lane_batch_t *b;
    while ((b = lane_queue_pop(&l->done, n == 0 ? timeout_ms : 0)) != NULL) {
        lane_batch_back(l, b);
        n++;
    }
    if (l->fence_pending)
        lane_fence_settle(l);
    atomic_store(&l->m->in_flight, (int64_t)lane_in_flight(l));
    return n;
}

int lane_drain(lane_t *l)
{
    if (lane_close_open(l) != 0) {
        for (size_t i = 0; i < l->n_writers; i++) /* never written: read again from Kafka */
            if (l->writers[i].open)
                lane_batch_reset(l->writers[i].open);
        l->unwritten = 1;
    }
    while (lane_in_flight(l) > 0) {
        lane_reader_beat(l); /* waiting for PostgreSQL is not a hang */
        lane_take_back(l, 100);
    }
    return l->unwritten ? -1 : 0;
}

/* Whether partition p has work that is not committed: in an open batch or in flight. */
static int lane_partition_busy(const lane_partition_t *p)
{
    return p->open_next >= 0 || p->sent_next != p->expected;
}

int lane_on_assign(void *ctx, const char *topic, const int32_t *partitions, size_t n,
                   int64_t *offsets)
{
    lane_t *l = ctx;
    lane_topic_t *t = lane_topic_find(l, topic);
    if (!t)
        return -1; /* a topic we did not subscribe to: a bug, refuse rather than guess */
    metrics_add(&t->m->rebalances, 1);
    /* A partition coming back while work of it is in flight (assignment lost without a revoke
     * reaching us first): its stored offset is about to be reloaded, so that work must not
     * outlive the offset it was read against. It is fenced if another instance moved on. */
    for (size_t i = 0; i < n; i++) {
        lane_partition_t *p = lane_partition(t, partitions[i]);
        if (p && lane_partition_busy(p)) {
            if (lane_drain(l) != 0)
                lane_refence(l, NULL, -1); /* the other partitions re-read what was dropped */
            break;
        }
    }
    int rc = lane_offsets_load(l, t, partitions, n, offsets);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        lane_partition_t *p = lane_partition(t, partitions[i]);
        if (!p) {
            rc = -1;
            break;
        }
        p->expected = p->sent_next = offsets[i];
        p->open_next = -1;
        p->seek_pending = 0;
        if (lane_state_resume(l, t, partitions[i]) != 0) {
            for (size_t j = 0; j < i; j++) /* none of this topic's partitions is taken */
                lane_partition(t, partitions[j])->assigned = 0;
            rc = -1;
            break;
        }
        p->assigned = 1;
        log_info("partition assigned", "topic=%s partition=%d stored_offset=%lld read_from=%lld",
                 topic, (int)partitions[i], (long long)offsets[i], (long long)p->read_from);
        offsets[i] = p->read_from; /* where the consumer starts: maybe a checkpoint, for replay */
    }
    lane_control_release(l);
    lane_assigned_publish(t);
    l->paused = 0; /* a new assignment fetches; the loop pauses it again if it must */
    return rc;
}

void lane_on_revoke(void *ctx, const char *topic, const int32_t *partitions, size_t n)
{
    lane_t *l = ctx;
    lane_topic_t *t = lane_topic_find(l, topic);
    if (t)
        metrics_add(&t->m->rebalances, 1);
    /* Commit what we hold before letting go; what cannot be written (stopping past the bound) is
     * dropped, and the next owner reads it again from the stored offsets. */
    if (lane_drain(l) != 0)
        lane_refence(l, NULL, -1); /* partitions we keep re-read what was dropped */
    for (size_t i = 0; t && i < n; i++) {
        lane_partition_t *p = lane_partition(t, partitions[i]);
        if (p && p->state) { /* the next owner rebuilds it from the checkpoint */
            features_state_free(p->state);
            p->state = NULL;
        }
        if (p)
            p->assigned = 0;
        if (partitions[i] >= 0 && partitions[i] < METRICS_PARTITIONS_MAX)
            atomic_store(&t->m->consumer_lag[partitions[i]], -1);
        log_info("partition revoked", "topic=%s partition=%d", topic, (int)partitions[i]);
    }
    if (t)
        lane_assigned_publish(t);
    l->paused = 0;
}
