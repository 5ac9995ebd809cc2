/* From decoded records to the rows vigil stores for them: one mapping per record kind, used by
 * the worker and by `vigil dlq replay`, so both write the same thing.
 *
 *   BehaviorEvent -> vigil.risk_scores   NewsArticle -> vigil.news_scores
 *   FraudLabel    -> vigil.labels        NewsLabel   -> vigil.labels
 *
 * An article's stored tickers are its tickers field plus the cashtags of its headline and body,
 * upper-cased and de-duplicated (pipeline/text/tickers.h). */
#ifndef VIGIL_ROWS_H
#define VIGIL_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "ingest_record.h"
#include "sink_pg.h"
#include "tickers.h"

/* Rows of one batch, per table, with room for `cap` of each: a batch may hold any mix of
 * kinds. `view` counts what was added and is what sink_pg_write and the replay take. */
/* Most tickers stored per article (its field's plus the cashtags of its text). */
#define ROWS_TICKERS_MAX 32

typedef struct rows_batch {
    sink_risk_row_t *risk;        /* (cap) */
    sink_article_row_t *articles; /* (cap) */
    tickers_symbol_t *tickers;    /* (cap, ROWS_TICKERS_MAX) each article's extracted tickers */
    const char **ticker_ptrs;     /* (cap, ROWS_TICKERS_MAX) pointing into tickers */
    sink_label_row_t *labels;     /* (cap) */
    size_t cap;
    sink_rows_t view;
} rows_batch_t;

/* Makes room for cap rows of each kind (keeps what is there). Returns 0 or -1 (out of
 * memory; the batch is as it was). */
int rows_batch_reserve(rows_batch_t *b, size_t cap);
/* Empties the batch, keeping its memory. */
void rows_batch_reset(rows_batch_t *b);
/* Appends the row for rec, a message at (topic, partition, offset) with Kafka timestamp
 * kafka_timestamp_ms (-1: none; the sink stores what it cannot represent as NULL). The row
 * borrows rec's strings and topic. There must be room (rows_batch_reserve). */
void rows_batch_add(rows_batch_t *b, const ingest_record_t *rec, const char *topic,
                    int32_t partition, int64_t offset, int64_t kafka_timestamp_ms);
/* Gives the last risk row added its feature vector (borrowed) and the spec's hash. */
void rows_batch_set_features(rows_batch_t *b, const float *features, size_t n,
                             const char *spec_hash);
/* Gives the last risk row added its score and the version (borrowed) of the model that made it. */
void rows_batch_set_score(rows_batch_t *b, float score, const char *model_version);
/* Gives the last risk row added the alert rules' severity ("low" .. "critical") and the model's
 * explanation (a JSON object or NULL), both borrowed: it raises or grows a fraud alert. */
void rows_batch_set_alert(rows_batch_t *b, const char *severity, const char *explanation);
/* What the news model said of an article (all borrowed until the batch is written). */
typedef struct rows_news_result {
    const char *sentiment;
    const float *sentiment_probs;
    size_t n_sentiment;
    const char *topic_label;
    const float *topic_probs;
    size_t n_topics;
    const float *embedding;
    size_t n_embedding;
    const char *model_version; /* NULL: not scored */
} rows_news_result_t;

/* Gives the last article row added the news model's output. */
void rows_batch_set_news(rows_batch_t *b, const rows_news_result_t *r);
void rows_batch_free(rows_batch_t *b);

#endif
