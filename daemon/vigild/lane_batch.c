/* A lane's batch objects (see lane.h): their items and arrays, grown on demand and kept from one
 * use to the next, and the translation of an item into its row or dead letter for the writer. */
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "lane.h"

/* Checkpoints one batch can carry: the checkpoint writer takes at most two at a time. */
#define LANE_BATCH_CHECKPOINTS 4

int lane_batch_init(lane_batch_t *b, const lanes_shared_t *sh, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    b->checkpoints = calloc(LANE_BATCH_CHECKPOINTS, sizeof *b->checkpoints);
    b->ckpt_taken = calloc(LANE_BATCH_CHECKPOINTS, sizeof *b->ckpt_taken);
    if (!b->checkpoints || !b->ckpt_taken ||
        lane_batch_reserve(b, sh, (size_t)atomic_load(&sh->batch_max)) != 0) {
        errbuf_printf(err, errlen, "lanes: out of memory for a batch of %d",
                      atomic_load(&sh->batch_max));
        return -1;
    }
    b->cap_ckpt = LANE_BATCH_CHECKPOINTS;
    return 0;
}

int lane_grow(void **p, size_t bytes)
{
    void *q = realloc(*p, bytes ? bytes : 1);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

int lane_batch_reserve(lane_batch_t *b, const lanes_shared_t *sh, size_t need)
{
    size_t cap;
    int ok = 1;

    if (need <= b->cap_items)
        return 0;
    cap = b->cap_items * 2 > need ? b->cap_items * 2 : need;
    if (lane_grow((void **)&b->items, cap * sizeof *b->items) != 0)
        return -1;
    memset(b->items + b->cap_items, 0, (cap - b->cap_items) * sizeof *b->items);
    ok &= lane_grow((void **)&b->advances, cap * sizeof *b->advances) == 0;
    ok &= lane_grow((void **)&b->first_states, cap * sizeof *b->first_states) == 0;
    ok &= lane_grow((void **)&b->dead, cap * sizeof *b->dead) == 0;
    ok &= lane_grow((void **)&b->latency, cap * sizeof *b->latency) == 0;
    ok &= lane_grow((void **)&b->scores, cap * sizeof *b->scores) == 0;
    ok &= rows_batch_reserve(&b->rows, cap) == 0;
    if (sh->fz)
        ok &= lane_grow((void **)&b->features, cap * sh->fz_width * sizeof *b->features) == 0;
    if (!ok)
        return -1; /* what did grow stays grown; cap_items still tells what all have */
    b->cap_items = cap;
    return 0;
}

int lane_batch_news_reserve(lane_batch_t *b, size_t n)
{
    if (b->news_len + n <= b->news_cap)
        return 0;
    size_t cap = b->news_cap * 2 > b->news_len + n ? b->news_cap * 2 : b->news_len + n;
    if (lane_grow((void **)&b->news_floats, cap * sizeof *b->news_floats) != 0)
        return -1;
    b->news_cap = cap;
    return 0;
}

void lane_batch_reset(lane_batch_t *b)
{
    for (size_t i = 0; i < b->n_items; i++) {
        rd_kafka_message_destroy(b->items[i].msg);
        b->items[i].msg = NULL;
    }
    for (size_t i = 0; i < b->n_ckpt; i++)
        if (!b->ckpt_taken[i])
            free((void *)b->checkpoints[i].state);
    b->n_items = b->n_enriched = b->n_articles = 0;
    b->n_adv = b->n_ckpt = b->n_first = 0;
    b->news_len = 0;
    b->explain_len = 0;
    b->alert_changes = (sink_alert_changes_t){0};
    b->enrich_s = 0;
    b->opened_ns = b->closed_ns = b->taken_ns = b->done_ns = 0;
    b->err[0] = '\0';
}

void lane_batch_free(lane_batch_t *b)
{
    lane_batch_reset(b);
    for (size_t i = 0; i < b->cap_items; i++)
        ingest_record_clear(&b->items[i].rec);
    free(b->items);
    free(b->features);
    free(b->scores);
    free(b->news_floats);
    free(b->explain);
    free(b->advances);
    free(b->first_states);
    free(b->checkpoints);
    free(b->ckpt_taken);
    rows_batch_free(&b->rows);
    free(b->dead);
    free(b->latency);
    memset(b, 0, sizeof *b);
}

int64_t lane_kafka_timestamp(const rd_kafka_message_t *msg)
{
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(msg, &tstype);
    return tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

void lane_batch_fill_one(lane_batch_t *b, const lanes_shared_t *sh, size_t i, size_t *n_dead)
{
    const lane_item_t *it = &b->items[i];
    const rd_kafka_message_t *m = it->msg;

    if (it->dead) {
        b->dead[(*n_dead)++] = (sink_dead_letter_t){
            .at = {it->topic->name, m->partition, m->offset, lane_kafka_timestamp(m)},
            .key = m->key,
            .key_len = m->key_len,
            .payload = m->payload,
            .payload_len = m->len,
            .reason = it->reason,
        };
        return;
    }
    rows_batch_add(&b->rows, &it->rec, it->topic->name, m->partition, m->offset,
                   lane_kafka_timestamp(m));
    if (it->topic->featurised) {
        rows_batch_set_features(&b->rows, b->features + i * sh->fz_width, sh->fz_width,
                                featurize_spec_hash(sh->fz));
        rows_batch_set_score(&b->rows, it->score, it->model_version);
        if (it->alert != ALERT_SEVERITY_NONE)
            rows_batch_set_alert(&b->rows, alert_severity_name(it->alert),
                                 it->explain_at == SIZE_MAX ? NULL : b->explain + it->explain_at);
    }
    if (it->rec.kind == INGEST_KIND_ARTICLE && it->news_version) {
        const float *f = b->news_floats + it->news_at;
        rows_news_result_t res = {it->sentiment,
                                  f,
                                  it->n_sentiment,
                                  it->topic_label,
                                  f + it->n_sentiment,
                                  it->n_topics,
                                  f + it->n_sentiment + it->n_topics,
                                  it->dim,
                                  it->news_version};
        rows_batch_set_news(&b->rows, &res);
    }
}
