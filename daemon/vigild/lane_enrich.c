/* What the open batch's messages become before they are written (see lane.h): events get their
 * feature vectors (updating their partition's entity state, in offset order), the risk model's
 * scores and the alert rules' verdict (with an explanation for those that alert); articles get the
 * news model's sentiment, topic and embedding. A batch is enriched in steps, whenever Kafka has
 * nothing waiting or LANE_ENRICH_CHUNK events have come in, so that by the time the batch closes
 * there is little left to do: while the writer commits the previous batch, this one is being
 * prepared.
 *
 * A model that fails, or no model, leaves its rows unscored (score, model_version NULL), never
 * with an invented score; a failure is logged. @locality: the lane's reader thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lane.h"
#include "log.h"

int lane_enrich_reserve(lane_t *l, size_t n)
{
    size_t nf = l->sh->fz ? featurize_fields(l->sh->fz) : 0;
    int ok = 1;
    if (n <= l->scratch_cap)
        return 0;
    ok &= lane_grow((void **)&l->order, n * sizeof *l->order) == 0;
    if (l->kind == LANE_EVENTS && l->sh->fz) {
        ok &= lane_grow((void **)&l->fz_events, n * sizeof *l->fz_events) == 0;
        ok &= lane_grow((void **)&l->fz_outs, n * sizeof *l->fz_outs) == 0;
        ok &= lane_grow((void **)&l->fz_num, n * nf * sizeof *l->fz_num) == 0;
        ok &= lane_grow((void **)&l->fz_str, n * nf * sizeof *l->fz_str) == 0;
    }
    if (l->kind == LANE_NEWS) {
        ok &= lane_grow((void **)&l->news_texts, n * sizeof *l->news_texts) == 0;
        ok &= lane_grow((void **)&l->news_lens, n * sizeof *l->news_lens) == 0;
        ok &= lane_grow((void **)&l->news_item, n * sizeof *l->news_item) == 0;
    }
    if (!ok)
        return -1;
    l->scratch_cap = n;
    return 0;
}

void lane_enrich_free(lane_t *l)
{
    free(l->order);
    free(l->part_count);
    free(l->fz_events);
    free(l->fz_outs);
    free(l->fz_num);
    free(l->fz_str);
    free(l->news_text);
    free(l->news_texts);
    free(l->news_lens);
    free(l->news_item);
    model_runtime_news_clear(&l->news);
    free(l->alert_x);
    free(l->alert_attr);
    free(l->alert_item);
    json_buf_free(&l->explain_json);
}

/* Groups the live events of topic tp in items [from, to) by partition, keeping their order
 * (offset order within a partition): l->order gets their indexes, l->part_count the count per
 * partition. Returns how many, or -1 when out of memory. */
static long lane_group_by_partition(lane_t *l, lane_batch_t *b, lane_topic_t *tp, size_t from,
                                    size_t to)
{
    size_t n = 0, at = 0;
    if (tp->n_parts + 1 > l->scratch_parts) {
        if (lane_grow((void **)&l->part_count, (tp->n_parts + 1) * sizeof(size_t)) != 0)
            return -1;
        l->scratch_parts = tp->n_parts + 1;
    }
    memset(l->part_count, 0, (tp->n_parts + 1) * sizeof(size_t));
    for (size_t i = from; i < to; i++) {
        const lane_item_t *it = &b->items[i];
        if (it->topic == tp && !it->dead && !it->featured) {
            l->part_count[it->msg->partition + 1]++;
            n++;
        }
    }
    /* part_count[p] becomes where partition p's events start in order (a counting sort). */
    for (size_t p = 0; p < tp->n_parts; p++) {
        size_t c = l->part_count[p + 1];
        l->part_count[p + 1] = at;
        at += c;
    }
    for (size_t i = from; i < to; i++) {
        const lane_item_t *it = &b->items[i];
        if (it->topic == tp && !it->dead && !it->featured)
            l->order[l->part_count[it->msg->partition + 1]++] = i;
    }
    /* Now part_count[p + 1] is where partition p's events end, part_count[p] where they
     * start (part_count[0] is 0). */
    return (long)n;
}

/* Feature vectors of the live events in [from, to), partition by partition in offset order
 * (each partition has its own entity state), a partition's events in one
 * features_compute_batch so that their memory accesses overlap. */
static int lane_enrich_features(lane_t *l, lane_batch_t *b, size_t from, size_t to)
{
    const lanes_shared_t *sh = l->sh;
    size_t nf = featurize_fields(sh->fz);

    for (size_t t = 0; t < l->n_topics; t++) {
        lane_topic_t *tp = &l->topics[t];
        if (!tp->featurised)
            continue;
        if (lane_group_by_partition(l, b, tp, from, to) < 0)
            goto oom;
        for (size_t p = 0; p < tp->n_parts; p++) {
            lane_partition_t *part = &tp->parts[p];
            size_t start = p == 0 ? 0 : l->part_count[p], end = l->part_count[p + 1], n = 0;
            if (start == end)
                continue;
            if (part->state_broken)
                return -1; /* its vectors cannot be trusted: never write this batch */
            for (size_t k = start; k < end; k++) {
                lane_item_t *it = &b->items[l->order[k]];
                featurize_view(sh->fz, &it->rec.event, l->fz_num + n * nf, l->fz_str + n * nf,
                               &l->fz_events[n]);
                l->fz_outs[n++] = b->features + l->order[k] * sh->fz_width;
                /* Marked now: should the computation fail, the partition's state is broken and
                 * this batch is never written. */
                it->featured = 1;
            }
            int64_t t0 = lane_now_ns();
            if (features_compute_batch(featurize_spec(sh->fz), part->state, l->fz_events, n,
                                       l->fz_outs) != 0) {
                part->state_broken = 1;
                log_error("out of memory updating the entity state; stopping",
                          "topic=%s partition=%d entities_max=%u", tp->name, (int)p,
                          (unsigned)sh->max_entities);
                goto fail;
            }
            metrics_observe_n(&metrics.featurize_seconds,
                              (double)(lane_now_ns() - t0) / 1e9 / (double)n, n);
            part->state_next = part->open_next;
        }
    }
    return 0;
oom:
    log_error("out of memory grouping events by partition; stopping", "lane=%s", l->name);
fail:
    l->failed = 1;
    lane_request_stop(l);
    return -1;
}

/* Risk scores of the featurised events in [from, to): one job on the risk model's server, over
 * the rows' contiguous vectors (dead letters' rows are zeros, scored and ignored). */
static void lane_enrich_risk(lane_t *l, lane_batch_t *b, size_t from, size_t to)
{
    const char *version = NULL;
    char err[512], q[600];
    size_t n = to - from;

    for (size_t i = from; i < to; i++)
        b->items[i].model_version = NULL;
    if (n == 0 || !l->sh->rt)
        return;
    int64_t t0 = lane_now_ns();
    int rc = model_runtime_risk_score(l->sh->rt, b->features + from * l->sh->fz_width, n,
                                      l->sh->fz_width, b->scores + from, &version, err, sizeof err);
    if (rc < 0) {
        log_error("risk model failed; writing these events unscored", "events=%zu error=\"%s\"", n,
                  log_quote(err, q, sizeof q));
        metrics_add(&metrics.inference_errors, 1);
        return;
    }
    if (rc > 0)
        return; /* no risk model active */
    metrics_observe_n(&metrics.infer_seconds, (double)(lane_now_ns() - t0) / 1e9 / (double)n, n);
    for (size_t i = from; i < to; i++) {
        lane_item_t *it = &b->items[i];
        if (it->featured && !it->dead) {
            it->score = b->scores[i];
            it->model_version = version;
        }
    }
}

/* Room for n alerted events' vectors and attributions, doubling: a burst of alerts must not
 * reallocate per event. */
static int lane_alert_reserve(lane_t *l, size_t n)
{
    size_t w = l->sh->fz_width;
    if (n <= l->alert_cap)
        return 0;
    if (n < 2 * l->alert_cap)
        n = 2 * l->alert_cap;
    if (lane_grow((void **)&l->alert_x, n * w * sizeof *l->alert_x) != 0 ||
        lane_grow((void **)&l->alert_attr, n * w * sizeof *l->alert_attr) != 0 ||
        lane_grow((void **)&l->alert_item, n * sizeof *l->alert_item) != 0)
        return -1;
    l->alert_cap = n;
    return 0;
}

/* Item it's explanation from its attributions attr (fz_width): the explain_top columns that
 * pushed its score up most, each with its value and contribution, appended to the batch's
 * explain as one JSON object (docs/alerts.md; PostgreSQL adds the entity's baseline). */
static void lane_alert_explain(lane_t *l, lane_batch_t *b, lane_item_t *it, const float *x,
                               const float *attr)
{
    const features_spec_t *spec = featurize_spec(l->sh->fz);
    size_t w = l->sh->fz_width, k = alert_rules_explain_top(l->sh->alert_rules);
    size_t top[16], n = 0;
    json_buf_t *j = &l->explain_json;
    char num[JSON_DOUBLE_MAX];

    if (k > sizeof top / sizeof top[0])
        k = sizeof top / sizeof top[0];
    /* Selection of the k largest contributions, largest first (k <= 16, w ~ 70). */
    for (; n < k && n < w; n++) {
        size_t best = SIZE_MAX;
        for (size_t c = 0; c < w; c++) {
            int taken = 0;
            for (size_t t = 0; t < n && !taken; t++)
                taken = top[t] == c;
            if (!taken && (best == SIZE_MAX || attr[c] > attr[best]))
                best = c;
        }
        top[n] = best;
    }
    json_buf_reset(j);
    json_buf_puts(j, "{\"method\":\"input x gradient\",\"model_version\":");
    json_buf_string(j, it->model_version);
    json_buf_printf(j, ",\"score\":%s,\"features\":[", json_double_text(it->score, num));
    for (size_t t = 0; t < n; t++) {
        json_buf_puts(j, t ? ",{\"name\":" : "{\"name\":");
        json_buf_string(j, features_spec_column(spec, top[t]));
        json_buf_printf(j, ",\"index\":%zu,\"value\":%s", top[t], json_double_text(x[top[t]], num));
        json_buf_printf(j, ",\"contribution\":%s}", json_double_text(attr[top[t]], num));
    }
    json_buf_puts(j, "]}");
    int ok = !j->failed;
    if (ok && b->explain_len + j->len + 1 > b->explain_cap) {
        size_t cap = (b->explain_cap + j->len + 1) * 2;
        ok = lane_grow((void **)&b->explain, cap) == 0;
        if (ok)
            b->explain_cap = cap;
    }
    if (!ok) {
        log_warn("out of memory explaining an alert; it goes without its explanation",
                 "topic=%s partition=%d offset=%lld", it->topic->name, (int)it->msg->partition,
                 (long long)it->msg->offset);
        return;
    }
    memcpy(b->explain + b->explain_len, j->p, j->len + 1);
    it->explain_at = b->explain_len;
    b->explain_len += j->len + 1;
}

/* The alert rules' verdict on the scored events in [from, to), and for those that alert, why
 * the model scored them so: one explain job on the risk server over their vectors. An event
 * whose explanation fails (or comes from a model swapped in since it was scored) still alerts,
 * without one. */
static void lane_enrich_alerts(lane_t *l, lane_batch_t *b, size_t from, size_t to)
{
    const alert_rules_t *rules = l->sh->alert_rules;
    size_t w = l->sh->fz_width, n = 0;
    const char *version = NULL;
    char err[512], q[600];

    for (size_t i = from; i < to; i++) {
        b->items[i].alert = ALERT_SEVERITY_NONE;
        b->items[i].explain_at = SIZE_MAX;
    }
    if (!rules)
        return;
    float min_score = alert_rules_min_score(rules);
    for (size_t i = from; i < to; i++) {
        lane_item_t *it = &b->items[i];
        if (!it->model_version || it->dead || !it->featured || it->score < min_score)
            continue;
        it->alert = alert_rules_match(rules, it->score, b->features + i * w);
        if (it->alert == ALERT_SEVERITY_NONE)
            continue;
        if (lane_alert_reserve(l, n + 1) != 0)
            continue; /* no memory for its explanation: it alerts without one */
        memcpy(l->alert_x + n * w, b->features + i * w, w * sizeof *l->alert_x);
        l->alert_item[n++] = i;
    }
    if (n == 0)
        return;
    int rc = model_runtime_risk_explain(l->sh->rt, l->alert_x, n, w, l->alert_attr, &version, err,
                                        sizeof err);
    if (rc != 0) {
        log_warn("explaining alerted events failed; their alerts go without an explanation",
                 "events=%zu error=\"%s\"", n,
                 log_quote(rc > 0 ? "no risk model" : err, q, sizeof q));
        return;
    }
    for (size_t k = 0; k < n; k++) {
        lane_item_t *it = &b->items[l->alert_item[k]];
        if (version && strcmp(version, it->model_version) == 0)
            lane_alert_explain(l, b, it, l->alert_x + k * w, l->alert_attr + k * w);
    }
}

/* Gathers the texts of the live articles in [from, to): headline, a line break, the body.
 * Returns how many, or -1 when out of memory. */
static long lane_news_texts(lane_t *l, lane_batch_t *b, size_t from, size_t to)
{
    size_t n = 0, bytes = 0, at = 0;
    for (size_t i = from; i < to; i++) {
        const lane_item_t *it = &b->items[i];
        if (it->dead || it->rec.kind != INGEST_KIND_ARTICLE)
            continue;
        bytes += strlen(it->rec.article.headline) + 2 +
                 (it->rec.article.body ? strlen(it->rec.article.body) : 0);
    }
    if (bytes > l->news_text_cap) {
        if (lane_grow((void **)&l->news_text, bytes) != 0)
            return -1;
        l->news_text_cap = bytes;
    }
    for (size_t i = from; i < to; i++) {
        const lane_item_t *it = &b->items[i];
        if (it->dead || it->rec.kind != INGEST_KIND_ARTICLE)
            continue;
        const ingest_article_t *a = &it->rec.article;
        int len =
            snprintf(l->news_text + at, bytes - at, "%s\n%s", a->headline, a->body ? a->body : "");
        l->news_texts[n] = l->news_text + at;
        l->news_lens[n] = (size_t)len;
        l->news_item[n++] = i;
        at += (size_t)len + 1;
    }
    return (long)n;
}

/* Copies the runtime's answer for article r into the batch: probabilities and embedding into
 * news_floats, labels and version borrowed (they live as long as the runtime). */
static int lane_news_keep(lane_batch_t *b, const model_runtime_news_t *nr, size_t r,
                          lane_item_t *it)
{
    size_t need = nr->n_sentiment + nr->n_topics + nr->dim;
    if (lane_batch_news_reserve(b, need) != 0)
        return -1;
    float *f = b->news_floats + b->news_len;
    memcpy(f, nr->sentiment_probs + r * nr->n_sentiment, nr->n_sentiment * sizeof *f);
    memcpy(f + nr->n_sentiment, nr->topic_probs + r * nr->n_topics, nr->n_topics * sizeof *f);
    memcpy(f + nr->n_sentiment + nr->n_topics, nr->embedding + r * nr->dim, nr->dim * sizeof *f);
    it->news_at = b->news_len;
    b->news_len += need;
    it->n_sentiment = (uint32_t)nr->n_sentiment;
    it->n_topics = (uint32_t)nr->n_topics;
    it->dim = (uint32_t)nr->dim;
    it->sentiment = nr->sentiment[r];
    it->topic_label = nr->topic[r];
    it->news_version = nr->version;
    return 0;
}

/* News scores of the live articles in [from, to): one job on the news model's server. */
static void lane_enrich_news(lane_t *l, lane_batch_t *b, size_t from, size_t to)
{
    char err[512], q[600];
    long n;

    for (size_t i = from; i < to; i++)
        b->items[i].news_version = NULL;
    if (!l->sh->rt)
        return;
    n = lane_news_texts(l, b, from, to);
    if (n < 0) {
        log_error("out of memory gathering article texts; writing them unscored", "articles=%zu",
                  to - from);
        return;
    }
    if (n == 0)
        return;
    int64_t t0 = lane_now_ns();
    int rc = model_runtime_news_score(l->sh->rt, l->news_texts, l->news_lens, (size_t)n, &l->news,
                                      err, sizeof err);
    if (rc < 0) {
        log_error("news model failed; writing these articles unscored", "articles=%ld error=\"%s\"",
                  n, log_quote(err, q, sizeof q));
        metrics_add(&metrics.inference_errors, 1);
        return;
    }
    if (rc > 0)
        return; /* no news model active */
    metrics_observe_n(&metrics.news_infer_seconds, (double)(lane_now_ns() - t0) / 1e9 / (double)n,
                      (uint64_t)n);
    for (long r = 0; r < n; r++)
        if (lane_news_keep(b, &l->news, (size_t)r, &b->items[l->news_item[r]]) != 0) {
            log_error("out of memory keeping article scores; writing them unscored", "articles=%ld",
                      n - r);
            for (long k = r; k < n; k++)
                b->items[l->news_item[k]].news_version = NULL;
            return;
        }
}

int lane_enrich(lane_t *l, lane_batch_t *b)
{
    size_t from, to;

    if (!b || b->n_enriched == b->n_items)
        return 0;
    from = b->n_enriched;
    to = b->n_items;
    int64_t t0 = lane_now_ns();
    if (l->kind == LANE_EVENTS && l->sh->fz) {
        if (lane_enrich_features(l, b, from, to) != 0)
            return -1;
        lane_enrich_risk(l, b, from, to);
        lane_enrich_alerts(l, b, from, to);
    } else if (l->kind == LANE_NEWS) {
        lane_enrich_news(l, b, from, to);
    }
    b->n_enriched = to;
    b->enrich_s += (double)(lane_now_ns() - t0) / 1e9;
    return 0;
}
