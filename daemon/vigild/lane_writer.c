/* A lane's writer thread (see lane.h), one of the lane's writers: takes the closed batches of
 * its partitions in the order they were closed and writes each as one PostgreSQL transaction,
 * retrying database errors on a new connection with capped backoff (safe: the offset condition
 * makes a retry of a batch that did commit come back fenced, never doubled). A batch closed before
 * a fenced one is dropped unwritten: its offset condition expects the fenced batch's end and could
 * only fail. After a commit, the batch's entity state snapshots go to the checkpoint writer. Every
 * batch goes back to the reader on the done queue with what became of it; the reader does the rest
 * (Kafka commit for lag tools, dead-letter topic, offsets). @locality: everything here runs on the
 * lane's writer thread. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lane.h"
#include "log.h"

static void lane_writer_beat(lane_writer_t *w)
{
    atomic_store(&w->beat_ms, lanes_now_ms());
}

/* One attempt of sink_pg_write on the writer's connection, made or repaired first. */
static int lane_write_once(lane_writer_t *w, const sink_batch_t *batch, char *err, size_t errlen)
{
    if (!w->pg && !(w->pg = sink_pg_new(w->lane->sh->pg_conninfo, err, errlen)))
        return SINK_PG_ERR;
    int rc = sink_pg_reconnect(w->pg, err, errlen);
    return rc == SINK_PG_OK ? sink_pg_write(w->pg, batch, err, errlen) : rc;
}

/* Writes one transaction, retrying database errors with backoff. Returns SINK_PG_OK,
 * SINK_PG_FENCED or SINK_PG_REJECTED as sink_pg_write does, or SINK_PG_ERR once stopping and
 * past the shutdown bound. While writes fail the reader pauses fetching (write_failing). */
static int lane_write(lane_writer_t *w, const sink_batch_t *batch, char *err, size_t errlen)
{
    lane_t *l = w->lane;
    char q[1100];
    int backoff = 100;

    for (;;) {
        int rc = lane_write_once(w, batch, err, errlen);
        if (rc != SINK_PG_ERR) {
            atomic_store(&w->write_failing, 0);
            atomic_store(&metrics.pg_up, 1);
            return rc;
        }
        metrics_add(&metrics.pg_errors, 1);
        atomic_store(&metrics.pg_up, 0);
        atomic_store(&w->write_failing, 1);
        ingest_kafka_wake(l->kafka); /* so the reader pauses now */
        log_warn("batch write failed; retrying on a new connection",
                 "lane=%s writer=%zu rows=%zu dead=%zu error=\"%s\" retry_ms=%d", l->name, w->index,
                 batch->rows.n_risk + batch->rows.n_articles + batch->rows.n_labels, batch->n_dead,
                 log_quote(err, q, sizeof(q)), backoff);
        if (lane_backoff(l, &w->beat_ms, &backoff) != 0)
            return SINK_PG_ERR;
    }
}

/* Counts a committed item: written or dead-lettered, and dead letters by kind of reason. */
static void lane_count_committed(lane_item_t *it)
{
    metrics_topic_t *m = it->topic->m;
    it->committed = 1;
    if (it->dead) {
        metrics_add(&m->dead_lettered, 1);
        metrics_add(&m->dead_by_reason[metrics_dead_reason_of(it->reason)], 1);
    } else {
        metrics_add(&m->written, 1);
    }
}

/* The rules' grouping gap, for the sink (0 without rules: no row then carries a severity). */
static int64_t lane_alert_gap_ms(const lane_t *l)
{
    return l->sh->alert_rules ? alert_rules_group_gap_ms(l->sh->alert_rules) : 0;
}

_Static_assert((int)SINK_ALERT_KINDS == (int)METRICS_ALERT_KINDS &&
                   (int)SINK_ALERT_SENTIMENT == (int)METRICS_ALERT_SENTIMENT,
               "the sink's alert kinds are the metrics' kinds");

/* Counts what a committed transaction did to vigil.alerts. */
static void lane_alerts_count(const sink_alert_changes_t *c)
{
    for (int k = 0; k < SINK_ALERT_KINDS; k++)
        for (int s = 0; s < SINK_ALERT_SEVERITIES; s++) {
            metrics_add(&metrics.alerts[k].raised[s], c->raised[k][s]);
            metrics_add(&metrics.alerts[k].updated[s], c->updated[k][s]);
        }
}

/* The advance of (topic, partition) among the batch's, for the one-by-one writes. */
static sink_offset_advance_t *lane_advance_of(lane_batch_t *b, const lane_item_t *it)
{
    for (size_t i = 0; i < b->n_adv; i++)
        if (b->advances[i].partition == it->msg->partition &&
            strcmp(b->advances[i].topic, it->topic->name) == 0)
            return &b->advances[i];
    return NULL;
}

/* The server refused something in the batch (SINK_PG_REJECTED), and retrying it whole would
 * refuse it forever. Writes the messages one by one instead, each with its own offset advance:
 * a refused event becomes a dead letter saying why, the rest land as usual. Slow, and rare.
 * Returns the batch's outcome: COMMITTED, FENCED or UNWRITTEN. */
static lane_batch_status_t lane_write_isolated(lane_writer_t *w, lane_batch_t *b)
{
    lane_t *l = w->lane;
    char err[1024], q[1100];

    for (size_t i = 0; i < b->n_items; i++) {
        lane_item_t *it = &b->items[i];
        sink_offset_advance_t *whole = lane_advance_of(b, it);
        sink_offset_advance_t adv = {it->topic->name, it->msg->partition, whole->expected,
                                     it->msg->offset + 1};
        sink_alert_changes_t changes = {0};
        sink_batch_t one = {.group = ingest_kafka_group(l->kafka),
                            .instance_id = l->sh->instance_id,
                            .alert_group_gap_ms = lane_alert_gap_ms(l),
                            .sentiment = l->sh->sentiment,
                            .alert_changes = &changes,
                            .dead = b->dead,
                            .offsets = &adv,
                            .n_offsets = 1,
                            /* all of them each time: one at the same offset is rewritten as it
                               was, and never over a later one */
                            .checkpoints = b->first_states,
                            .n_checkpoints = b->n_first};
        int backoff = 100;

        for (;;) {
            size_t n_dead = 0;
            rows_batch_reset(&b->rows);
            lane_batch_fill_one(b, l->sh, i, &n_dead);
            one.n_dead = n_dead;
            one.rows = b->rows.view;
            int rc = lane_write(w, &one, err, sizeof(err));
            if (rc == SINK_PG_ERR)
                return LANE_BATCH_UNWRITTEN;
            if (rc == SINK_PG_FENCED) {
                snprintf(b->err, sizeof b->err, "%.500s", err);
                return LANE_BATCH_FENCED;
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
            if (lane_backoff(l, &w->beat_ms, &backoff) != 0)
                return LANE_BATCH_UNWRITTEN;
        }
        whole->expected = adv.next; /* the next one-by-one write expects this one's end */
        lane_count_committed(it);
        lane_alerts_count(&changes); /* now: a fence further on does not undo this one */
    }
    return LANE_BATCH_COMMITTED;
}

/* After the commit: what is counted per batch, the snapshots handed to the checkpoint writer
 * (those it cannot take are freed by the reader and stay due), the per-message latency. */
static void lane_batch_committed(lane_t *l, lane_batch_t *b)
{
    int64_t now = lane_now_ns();
    for (size_t i = 0; i < b->n_ckpt; i++)
        b->ckpt_taken[i] = checkpointer_offer(l->ckpt, &b->checkpoints[i]) == 0;
    for (size_t i = 0; i < b->n_items; i++)
        b->latency[i] = (double)(now - b->items[i].polled_ns) / 1e9;
    metrics_observe_many(&l->m->commit_latency, b->latency, b->n_items);
    metrics_observe(&metrics.batch_rows, (double)b->n_items);
    metrics_add(&metrics.batches, 1);
    metrics_add(&l->m->batches, 1);
}

/* Writes batch b and says what became of it in b->status. A batch closed before a fence,
 * this writer's (fenced_epoch) or another's (drop_before), is dropped unwritten. */
static void lane_write_batch(lane_writer_t *w, lane_batch_t *b)
{
    lane_t *l = w->lane;
    char err[1024];
    size_t n_dead = 0;

    if (w->gave_up) {
        b->status = LANE_BATCH_UNWRITTEN;
        return;
    }
    if (b->epoch <= w->fenced_epoch || b->epoch < atomic_load(&l->drop_before)) {
        b->status = LANE_BATCH_DROPPED;
        return;
    }
    rows_batch_reset(&b->rows);
    for (size_t i = 0; i < b->n_items; i++)
        lane_batch_fill_one(b, l->sh, i, &n_dead);
    sink_batch_t batch = {.group = ingest_kafka_group(l->kafka),
                          .instance_id = l->sh->instance_id,
                          .rows = b->rows.view,
                          .alert_group_gap_ms = lane_alert_gap_ms(l),
                          .sentiment = l->sh->sentiment,
                          .alert_changes = &b->alert_changes,
                          .dead = b->dead,
                          .n_dead = n_dead,
                          .offsets = b->advances,
                          .n_offsets = b->n_adv,
                          .checkpoints = b->first_states,
                          .n_checkpoints = b->n_first};
    int64_t t0 = lane_now_ns();
    int rc = lane_write(w, &batch, err, sizeof(err));
    if (rc == SINK_PG_REJECTED) {
        char q[1100];
        log_warn("batch refused by PostgreSQL; writing its records one by one to find the "
                 "culprit",
                 "lane=%s messages=%zu error=\"%s\"", l->name, b->n_items,
                 log_quote(err, q, sizeof(q)));
        b->status = lane_write_isolated(w, b);
    } else if (rc == SINK_PG_OK) {
        metrics_observe(&metrics.write_seconds, (double)(lane_now_ns() - t0) / 1e9);
        lane_alerts_count(&b->alert_changes);
        for (size_t i = 0; i < b->n_items; i++)
            lane_count_committed(&b->items[i]);
        b->status = LANE_BATCH_COMMITTED;
    } else if (rc == SINK_PG_FENCED) {
        snprintf(b->err, sizeof b->err, "%.500s", err);
        b->status = LANE_BATCH_FENCED;
    } else {
        b->status = LANE_BATCH_UNWRITTEN;
    }
    if (b->status == LANE_BATCH_COMMITTED)
        lane_batch_committed(l, b);
    else if (b->status == LANE_BATCH_FENCED)
        w->fenced_epoch = b->epoch;
    else
        w->gave_up = 1;
}

/* Keeps /readyz honest while the writer has nothing to write. */
static void lane_writer_ping(lane_writer_t *w)
{
    lane_t *l = w->lane;
    char err[512], q[600];
    if (!w->pg && !(w->pg = sink_pg_new(l->sh->pg_conninfo, err, sizeof err))) {
        atomic_store(&metrics.pg_up, 0);
        log_warn("PostgreSQL ping failed", "lane=%s error=\"%s\"", l->name,
                 log_quote(err, q, sizeof q));
        return;
    }
    int ok = sink_pg_reconnect(w->pg, err, sizeof(err)) == SINK_PG_OK &&
             sink_pg_ping(w->pg, err, sizeof(err)) == SINK_PG_OK;
    atomic_store(&metrics.pg_up, ok);
    if (!ok)
        log_warn("PostgreSQL ping failed", "lane=%s error=\"%s\"", l->name,
                 log_quote(err, q, sizeof(q)));
}

void *lane_writer_main(void *arg)
{
    lane_writer_t *w = arg;
    lane_t *l = w->lane;
    char name[16];

    snprintf(name, sizeof name, "%.6s-write%zu", l->name, w->index); /* for top -H, gdb, perf */
    pthread_setname_np(pthread_self(), name);
    w->last_write_ms = lanes_now_ms();
    for (;;) {
        lane_writer_beat(w);
        lane_batch_t *b = lane_queue_pop(&w->to_write, 1000);
        if (!b) {
            if (lane_queue_closed(&w->to_write))
                break; /* the reader is done, and so is everything it closed */
            if (lanes_now_ms() - w->last_write_ms >= LANE_PING_INTERVAL_MS) {
                lane_writer_ping(w);
                w->last_write_ms = lanes_now_ms();
            }
            continue;
        }
        b->taken_ns = lane_now_ns();
        lane_write_batch(w, b);
        b->done_ns = lane_now_ns();
        w->last_write_ms = lanes_now_ms();
        if (lane_queue_push(&l->done, b) != 0)
            log_error("a lane's done queue refused a batch (a bug); the lane stops", "lane=%s",
                      l->name); /* the reader then waits for it until the shutdown bound */
        ingest_kafka_wake(l->kafka);
    }
    sink_pg_free(w->pg);
    w->pg = NULL;
    return NULL;
}
