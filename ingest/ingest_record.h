/* The four kinds of record vigil consumes, as plain C: what the Avro decoder produces and the
 * encoder takes. One struct per schema in ingest/schemas/, in one tagged union.
 *
 * Strings point into rec->buf and string arrays into rec->list, both grown as needed by the
 * decoder and reused on the next decode into the same record, so steady-state decoding
 * allocates nothing. NULL means absent (Avro null). */
#ifndef VIGIL_INGEST_RECORD_H
#define VIGIL_INGEST_RECORD_H

#include <stddef.h>
#include <stdint.h>

typedef enum ingest_kind {
    INGEST_KIND_EVENT,       /* BehaviorEvent: a user action, scored by the risk model */
    INGEST_KIND_ARTICLE,     /* NewsArticle: scored by the news model */
    INGEST_KIND_FRAUD_LABEL, /* FraudLabel: the verdict on a BehaviorEvent */
    INGEST_KIND_NEWS_LABEL,  /* NewsLabel: sentiment and/or topic of a NewsArticle */
    INGEST_KIND_COUNT
} ingest_kind_t;

/* BehaviorEvent (ingest/schemas/BehaviorEvent.avsc). */
typedef struct ingest_event {
    const char *event_id;   /* never NULL after a successful decode, never empty */
    const char *event_type; /* the enum symbol, e.g. "TRANSACTION"; never NULL */
    const char *user_id;    /* never NULL, never empty */
    const char *account_id;
    const char *device_id;
    const char *ip;
    int has_amount;
    double amount;
    const char *currency;
    const char *merchant_id;
    const char *merchant_category;
    const char *country;
    int has_geo; /* latitude and longitude both present */
    double latitude, longitude;
    int64_t event_time_ms; /* epoch milliseconds */
    const char *channel;
    /* Fields the reader schema has beyond the ones above (a user's own columns, for the feature
     * spec), in reader-schema order; their names and types come from ingest_avro_extra_*().
     * extra_num[i]: the value of a numeric or boolean field, NaN when null or the field is a
     * string. extra_str[i]: the value of a string or enum field, NULL when null or numeric.
     * Both point into the record's own buffers (buf and list below, like the strings), valid
     * until the next decode into this record; n_extra 0 and both NULL when the reader schema
     * has no extra fields. To encode, set all three (n_extra as the schema has), or n_extra 0
     * to write each extra field's default. */
    size_t n_extra;
    const double *extra_num;
    const char *const *extra_str;
} ingest_event_t;

/* NewsArticle (ingest/schemas/NewsArticle.avsc). */
typedef struct ingest_article {
    const char *article_id; /* never NULL, never empty */
    int64_t published_time_ms;
    const char *source;   /* never NULL, never empty */
    const char *language; /* BCP 47 tag or NULL */
    const char *headline; /* never NULL, never empty */
    const char *body;
    const char *const *tickers; /* n_tickers strings, as the message had them */
    size_t n_tickers;
} ingest_article_t;

/* FraudLabel (ingest/schemas/FraudLabel.avsc). */
typedef struct ingest_fraud_label {
    const char *event_id; /* never NULL, never empty */
    int is_fraud;         /* 0 or 1 */
    int64_t label_time_ms;
    const char *label_source;
} ingest_fraud_label_t;

/* NewsLabel (ingest/schemas/NewsLabel.avsc): at least one of sentiment and topic is set. */
typedef struct ingest_news_label {
    const char *article_id; /* never NULL, never empty */
    const char *sentiment;  /* the enum symbol ("NEGATIVE", "NEUTRAL", "POSITIVE") or NULL */
    const char *topic;
    int64_t label_time_ms;
} ingest_news_label_t;

typedef struct ingest_record {
    ingest_kind_t kind; /* which member of the union holds the record */
    union {
        ingest_event_t event;
        ingest_article_t article;
        ingest_fraud_label_t fraud_label;
        ingest_news_label_t news_label;
    };
    char *buf; /* owned: backing store of the strings above */
    size_t buf_cap;
    const char **list; /* owned: backing store of string arrays (tickers) */
    size_t list_cap;
} ingest_record_t;

/* Frees the record's buffers; the struct can be reused afterwards. */
void ingest_record_clear(ingest_record_t *rec);

/* The Avro record name of kind ("BehaviorEvent", ...), which is also its reader schema's file
 * name without ".avsc". */
const char *ingest_kind_schema_name(ingest_kind_t kind);

#endif
