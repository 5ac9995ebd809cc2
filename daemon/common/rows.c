/* Decoded records to stored rows (see rows.h). */
#include "rows.h"

#include <stdlib.h>
#include <string.h>

int rows_batch_reserve(rows_batch_t *b, size_t cap)
{
    sink_risk_row_t *risk = NULL;
    sink_article_row_t *articles = NULL;
    sink_label_row_t *labels = NULL;
    tickers_symbol_t *tickers = NULL;
    const char **ptrs = NULL;
    int rc = -1;

    if (cap <= b->cap)
        return 0;
    /* Each array that grows may move; the view is re-pointed on every path. */
    if ((risk = realloc(b->risk, cap * sizeof(*risk))) != NULL)
        b->risk = risk;
    if (risk && (articles = realloc(b->articles, cap * sizeof(*articles))) != NULL)
        b->articles = articles;
    if (articles && (labels = realloc(b->labels, cap * sizeof(*labels))) != NULL)
        b->labels = labels;
    if (labels && (tickers = realloc(b->tickers, cap * ROWS_TICKERS_MAX * sizeof(*tickers))))
        b->tickers = tickers;
    if (tickers && (ptrs = realloc(b->ticker_ptrs, cap * ROWS_TICKERS_MAX * sizeof(*ptrs)))) {
        b->ticker_ptrs = ptrs;
        b->cap = cap;
        rc = 0;
    }
    b->view.risk = b->risk;
    b->view.articles = b->articles;
    b->view.labels = b->labels;
    return rc;
}

void rows_batch_reset(rows_batch_t *b)
{
    b->view = (sink_rows_t){b->risk, 0, b->articles, 0, b->labels, 0};
}

static void rows_risk_from_event(const ingest_event_t *e, sink_risk_row_t *r)
{
    r->event_id = e->event_id;
    r->event_type = e->event_type;
    r->user_id = e->user_id;
    r->account_id = e->account_id;
    r->device_id = e->device_id;
    r->ip = e->ip;
    r->has_amount = e->has_amount;
    r->amount = e->amount;
    r->currency = e->currency;
    r->merchant_id = e->merchant_id;
    r->merchant_category = e->merchant_category;
    r->country = e->country;
    r->has_geo = e->has_geo;
    r->latitude = e->latitude;
    r->longitude = e->longitude;
    r->event_time_ms = e->event_time_ms;
    r->channel = e->channel;
    r->features = NULL; /* the worker adds them (rows_batch_set_features) */
    r->n_features = 0;
    r->feature_spec = NULL;
    r->score = 0.0f; /* and the score (rows_batch_set_score) */
    r->model_version = NULL;
}

void rows_batch_set_features(rows_batch_t *b, const float *features, size_t n,
                             const char *spec_hash)
{
    sink_risk_row_t *r = &b->risk[b->view.n_risk - 1];
    r->features = features;
    r->n_features = n;
    r->feature_spec = spec_hash;
}

void rows_batch_set_score(rows_batch_t *b, float score, const char *model_version)
{
    sink_risk_row_t *r = &b->risk[b->view.n_risk - 1];
    r->score = score;
    r->model_version = model_version;
}

void rows_batch_set_alert(rows_batch_t *b, const char *severity, const char *explanation)
{
    sink_risk_row_t *r = &b->risk[b->view.n_risk - 1];
    r->alert_severity = severity;
    r->alert_explanation = explanation;
}

void rows_batch_set_news(rows_batch_t *b, const rows_news_result_t *r)
{
    sink_article_row_t *a = &b->articles[b->view.n_articles - 1];
    a->sentiment = r->sentiment;
    a->sentiment_probs = r->sentiment_probs;
    a->n_sentiment = r->n_sentiment;
    a->topic_label = r->topic_label;
    a->topic_probs = r->topic_probs;
    a->n_topics = r->n_topics;
    a->embedding = r->embedding;
    a->n_embedding = r->n_embedding;
    a->model_version = r->model_version;
}

void rows_batch_add(rows_batch_t *b, const ingest_record_t *rec, const char *topic,
                    int32_t partition, int64_t offset, int64_t kafka_timestamp_ms)
{
    const sink_coords_t at = {topic, partition, offset, kafka_timestamp_ms};

    switch (rec->kind) {
    case INGEST_KIND_EVENT: {
        sink_risk_row_t *r = &b->risk[b->view.n_risk++];
        *r = (sink_risk_row_t){.at = at};
        rows_risk_from_event(&rec->event, r);
        break;
    }
    case INGEST_KIND_ARTICLE: {
        const ingest_article_t *a = &rec->article;
        size_t row = b->view.n_articles, n = 0;
        tickers_symbol_t *syms = b->tickers + row * ROWS_TICKERS_MAX;
        const char **ptrs = b->ticker_ptrs + row * ROWS_TICKERS_MAX;
        char err[128];
        /* It refuses only malformed arguments, which a decoded article never has; store no
         * tickers rather than half a list if it ever did. */
        if (tickers_extract(a->tickers, a->n_tickers, a->headline, strlen(a->headline), a->body,
                            a->body ? strlen(a->body) : 0, syms, ROWS_TICKERS_MAX, &n, err,
                            sizeof(err)) != 0)
            n = 0;
        for (size_t i = 0; i < n; i++)
            ptrs[i] = syms[i].sym;
        b->articles[b->view.n_articles++] = (sink_article_row_t){
            .at = at,
            .article_id = a->article_id,
            .published_time_ms = a->published_time_ms,
            .source = a->source,
            .language = a->language,
            .headline = a->headline,
            .body = a->body,
            .tickers = ptrs,
            .n_tickers = n,
        };
        break;
    }
    case INGEST_KIND_FRAUD_LABEL: {
        const ingest_fraud_label_t *l = &rec->fraud_label;
        b->labels[b->view.n_labels++] = (sink_label_row_t){
            .at = at,
            .kind = SINK_LABEL_FRAUD,
            .event_id = l->event_id,
            .is_fraud = l->is_fraud,
            .label_source = l->label_source,
            .label_time_ms = l->label_time_ms,
        };
        break;
    }
    case INGEST_KIND_NEWS_LABEL: {
        const ingest_news_label_t *l = &rec->news_label;
        b->labels[b->view.n_labels++] = (sink_label_row_t){
            .at = at,
            .kind = SINK_LABEL_NEWS,
            .article_id = l->article_id,
            .sentiment = l->sentiment,
            .topic_label = l->topic,
            .label_time_ms = l->label_time_ms,
        };
        break;
    }
    case INGEST_KIND_COUNT:
        break;
    }
}

void rows_batch_free(rows_batch_t *b)
{
    free(b->risk);
    free(b->articles);
    free(b->labels);
    free(b->tickers);
    free(b->ticker_ptrs);
    *b = (rows_batch_t){0};
}
