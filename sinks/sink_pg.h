/* PostgreSQL sink: migrations, Kafka offsets stored beside the results, and batch writes.
 *
 * Tables written: vigil.risk_scores (behavior events), vigil.news_scores (news articles),
 * vigil.labels (fraud and news labels), vigil.dead_letters, vigil.kafka_offsets, and apart from
 * batches vigil.entity_state (checkpoints) and vigil.feature_specs.
 *
 * One sink_pg_t is one connection, used by one thread at a time (@locality: its owner; the worker
 * and the checkpoint writer each have their own). The implementation is split by job over
 * sinks/sink_pg_*.c (sinks/README.md). A batch is written as ONE transaction: a COPY per table that
 * has rows, a COPY of dead letters, and for each partition a conditional update of
 * vigil.kafka_offsets that succeeds only if the stored offset is still the one this instance
 * expects. That last condition is what fences an instance that lost a partition in a rebalance: its
 * transaction is rolled back and nothing it holds is written.
 *
 * Conventions: functions return SINK_PG_OK (0) or SINK_PG_ERR (-1) and fill err (errlen bytes)
 * with what failed, on what, and what to do. */
#ifndef VIGIL_SINK_PG_H
#define VIGIL_SINK_PG_H

#include <stddef.h>
#include <stdint.h>

enum { SINK_PG_OK = 0, SINK_PG_ERR = -1, SINK_PG_FENCED = 1, SINK_PG_REJECTED = 2 };

/* "No offset stored yet" for a partition: the consumer falls back to auto.offset.reset. */
#define SINK_PG_OFFSET_NONE (-1)

typedef struct sink_pg sink_pg_t;

/* Where a stored row or dead letter came from; every table starts with these columns. */
typedef struct sink_coords {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t kafka_timestamp_ms; /* stored NULL when -1 (none) or outside years 1..9999 */
} sink_coords_t;

/* One consumed and decoded event, as it goes into vigil.risk_scores. Strings are borrowed for
 * the duration of sink_pg_write; NULL means SQL NULL. */
typedef struct sink_risk_row {
    sink_coords_t at;
    const char *event_id;
    const char *event_type;
    const char *user_id;
    const char *account_id;
    const char *device_id;
    const char *ip;
    int has_amount;
    double amount;
    const char *currency;
    const char *merchant_id;
    const char *merchant_category;
    const char *country;
    int has_geo;
    double latitude, longitude;
    int64_t event_time_ms; /* epoch milliseconds */
    const char *channel;
    const float *features; /* (n_features) the event's feature vector; NULL: none */
    size_t n_features;
    const char *feature_spec; /* hash of the spec the vector follows (vigil.feature_specs) */
    /* The risk model's verdict and the version of the model that gave it; model_version NULL:
     * not scored (no risk model configured), and score is then stored NULL too. */
    float score;
    const char *model_version;
    /* The fraud alert rules' verdict: the severity of the highest rule the event matched
     * ("low" .. "critical"; NULL: none), and why the model scored it so (a JSON object, NULL:
     * none; docs/alerts.md). An event with a severity raises or grows its user's fraud alert in
     * the batch's own transaction (vigil.alerts). */
    const char *alert_severity;
    const char *alert_explanation;
} sink_risk_row_t;

/* One decoded news article, as it goes into vigil.news_scores with the news model's output.
 * Borrowed, as sink_risk_row_t. */
typedef struct sink_article_row {
    sink_coords_t at;
    const char *article_id;
    int64_t published_time_ms;
    const char *source;
    const char *language;
    const char *headline;
    const char *body;
    const char *const *tickers; /* n_tickers strings, none NULL */
    size_t n_tickers;
    /* The news model's output. model_version NULL: not scored, and the columns below are then
     * stored NULL whatever they hold. */
    const char *sentiment;        /* a sentiment label */
    const float *sentiment_probs; /* (n_sentiment) */
    size_t n_sentiment;
    const char *topic_label;
    const float *topic_probs; /* (n_topics) */
    size_t n_topics;
    const float *embedding; /* (n_embedding) the pooled sentence embedding */
    size_t n_embedding;
    const char *model_version;
} sink_article_row_t;

typedef enum sink_label_kind { SINK_LABEL_FRAUD, SINK_LABEL_NEWS } sink_label_kind_t;

/* One decoded label, as it goes into vigil.labels. Borrowed. A fraud label sets event_id,
 * is_fraud and label_source; a news label article_id, sentiment and topic_label (at least one of
 * those two); the other fields stay NULL / 0. */
typedef struct sink_label_row {
    sink_coords_t at;
    sink_label_kind_t kind;
    const char *event_id;
    int is_fraud;
    const char *label_source;
    const char *article_id;
    const char *sentiment;
    const char *topic_label;
    int64_t label_time_ms;
} sink_label_row_t;

/* The result rows of a batch, by table. */
typedef struct sink_rows {
    const sink_risk_row_t *risk; /* vigil.risk_scores */
    size_t n_risk;
    const sink_article_row_t *articles; /* vigil.news_scores */
    size_t n_articles;
    const sink_label_row_t *labels; /* vigil.labels */
    size_t n_labels;
} sink_rows_t;

/* A message that could not be decoded or validated (vigil.dead_letters). Borrowed. */
typedef struct sink_dead_letter {
    sink_coords_t at;
    const void *key; /* may be NULL (no key) */
    size_t key_len;
    const void *payload; /* may be NULL (empty message) */
    size_t payload_len;
    const char *reason; /* never NULL */
} sink_dead_letter_t;

/* Per partition in a batch: the stored offset this instance expects (SINK_PG_OFFSET_NONE when it
 * found none at assignment) and the next offset to store (last message offset + 1). */
typedef struct sink_offset_advance {
    const char *topic;
    int32_t partition;
    int64_t expected;
    int64_t next;
} sink_offset_advance_t;

/* The entity state of a partition as of next_offset (where a replay starts). */
typedef struct sink_checkpoint {
    const char *topic;
    int32_t partition;
    int64_t next_offset;
    const char *spec_hash;
    uint64_t entities;
    const void *state;
    size_t state_len;
} sink_checkpoint_t;

/* The severities, lowest first, as vigil.alerts spells them. */
#define SINK_ALERT_SEVERITIES 4
extern const char *const sink_alert_severities[SINK_ALERT_SEVERITIES];

/* The kinds of alert, as vigil.alerts spells them (sink_alert_kinds). */
enum { SINK_ALERT_FRAUD, SINK_ALERT_SENTIMENT, SINK_ALERT_KINDS };
extern const char *const sink_alert_kinds[SINK_ALERT_KINDS];

/* What a batch did to vigil.alerts, per kind and severity (sink_alert_severities order), once
 * committed. */
typedef struct sink_alert_changes {
    uint64_t raised[SINK_ALERT_KINDS][SINK_ALERT_SEVERITIES];
    uint64_t updated[SINK_ALERT_KINDS][SINK_ALERT_SEVERITIES];
} sink_alert_changes_t;

/* Sentiment alerts over a batch's articles (vigil.alerts_sentiment_apply, migration 0006): per
 * ticker and/or predicted topic, windows of window_ms of publication time compared with the
 * `history` windows before them. */
typedef struct sink_sentiment_rules {
    int64_t window_ms;
    int history;
    double z;
    int min_articles;
    int by_ticker, by_topic;
} sink_sentiment_rules_t;

typedef struct sink_batch {
    const char *group;       /* Kafka consumer group id: offsets are per group */
    const char *instance_id; /* written to kafka_offsets.updated_by, for operators */
    sink_rows_t rows;
    /* Fraud alerts: an alert-worthy event grows its user's open alert whose newest event is at
     * most this far before it (event time), or raises one. */
    int64_t alert_group_gap_ms;
    /* Sentiment alerts over the batch's articles; NULL: none. */
    const sink_sentiment_rules_t *sentiment;
    sink_alert_changes_t *alert_changes; /* NULL, or filled when SINK_PG_OK is returned */
    const sink_dead_letter_t *dead;
    size_t n_dead;
    const sink_offset_advance_t *offsets;
    size_t n_offsets;
    /* Entity state checkpoints written in the batch's own transaction, as sink_pg_checkpoint_save
     * does (one already stored at a later offset stays). The daemon puts here the empty state at
     * the first offset of a partition's first batch: a partition with committed offsets then
     * always has a checkpoint to replay from, even when the process dies before the checkpoint
     * writer stored one. */
    const sink_checkpoint_t *checkpoints;
    size_t n_checkpoints;
} sink_batch_t;

/* Upserts the entity state checkpoint of (group, c->topic, c->partition) in a transaction of its
 * own, once the events before c->next_offset are committed. SINK_PG_OK when written,
 * SINK_PG_FENCED when a checkpoint at a later offset is stored already (left as it is),
 * SINK_PG_ERR on a database error (call sink_pg_reconnect before the next). */
int sink_pg_checkpoint_save(sink_pg_t *pg, const char *group, const char *instance_id,
                            const sink_checkpoint_t *c, char *err, size_t errlen);

/* The entity state checkpoint of (group, topic, partition), if any: *state (malloc'ed, the
 * caller frees it) and *state_len, the offset it reflects in *next_offset and the spec it was
 * taken under in spec_hash (spec_hash_len bytes). *state is NULL when there is none. */
int sink_pg_checkpoint_load(sink_pg_t *pg, const char *group, const char *topic, int32_t partition,
                            int64_t *next_offset, char *spec_hash, size_t spec_hash_len,
                            uint8_t **state, size_t *state_len, char *err, size_t errlen);

/* Offsets of the dead letters of (topic, partition) in [from, to) that decoding made (not those
 * PostgreSQL refused), ascending, into *offsets (malloc'ed; the caller frees it) and *n. A replay
 * of entity state skips them: live, they never reached the state either. */
int sink_pg_dead_offsets_load(sink_pg_t *pg, const char *topic, int32_t partition, int64_t from,
                              int64_t to, int64_t **offsets, size_t *n, char *err, size_t errlen);

/* The largest entity state checkpoint written: PostgreSQL holds at most 1 GB in one value. */
#define SINK_PG_CHECKPOINT_MAX ((size_t)1000 * 1000 * 1000)

/* Records a feature spec (hash, column names, text) in vigil.feature_specs, once. */
int sink_pg_feature_spec_register(sink_pg_t *pg, const char *spec_hash, const char *const *columns,
                                  size_t n_columns, const char *spec_text, char *err,
                                  size_t errlen);

/* Connects (blocking). Returns NULL and fills err on failure. */
sink_pg_t *sink_pg_new(const char *conninfo, char *err, size_t errlen);
void sink_pg_free(sink_pg_t *pg);

/* Applies the embedded migrations not yet applied, each in its own transaction, under a session
 * advisory lock so that several instances starting together apply each exactly once. */
int sink_pg_migrate(sink_pg_t *pg, char *err, size_t errlen);

/* Reads the stored next offsets for (group, topic, partitions[i]) into next_offsets[i];
 * SINK_PG_OFFSET_NONE where no offset is stored. */
int sink_pg_offsets_load(sink_pg_t *pg, const char *group, const char *topic,
                         const int32_t *partitions, size_t n, int64_t *next_offsets, char *err,
                         size_t errlen);

/* Writes the batch as one transaction. Returns SINK_PG_OK once committed, SINK_PG_FENCED when an
 * offset condition failed (rolled back, nothing written; err names the partition and the stored
 * offset), SINK_PG_REJECTED when the server refused the data itself (SQLSTATE class 22, data
 * exception, or a CHECK / NOT NULL violation: retrying the same batch cannot succeed; write its
 * entries one by one to find the culprit), SINK_PG_ERR on any other failure (rolled back or
 * connection lost; safe to retry the same batch after sink_pg_reconnect). */
int sink_pg_write(sink_pg_t *pg, const sink_batch_t *batch, char *err, size_t errlen);

/* ---- dead-letter tooling (vigil dlq) ---- */

/* One stored dead letter. Everything is owned by the entry (sink_pg_dead_entries_free). */
typedef struct sink_dead_entry {
    int64_t id;
    char *topic;
    int32_t partition;
    int64_t offset;
    int64_t kafka_timestamp_ms; /* -1 when NULL */
    unsigned char *key;         /* NULL when the message had no key */
    size_t key_len;
    unsigned char *payload; /* NULL for an empty message */
    size_t payload_len;
    char *reason;
    char *created_at; /* as PostgreSQL prints it */
} sink_dead_entry_t;

/* Lists up to limit dead letters with id > after_id, oldest first; topic (exact) and
 * reason_like (an SQL LIKE pattern) filter when not NULL. *out is malloc'd (free with
 * sink_pg_dead_entries_free). */
int sink_pg_dead_letters_list(sink_pg_t *pg, const char *topic, const char *reason_like,
                              int64_t after_id, int limit, sink_dead_entry_t **out, size_t *n,
                              char *err, size_t errlen);
void sink_pg_dead_entries_free(sink_dead_entry_t *entries, size_t n);

/* Replaces dead letter id with rows (the row of the same topic, partition and offset, decoded
 * now that the cause is fixed), in one transaction: the dead letter is deleted and the row
 * inserted, or neither. Returns SINK_PG_OK, SINK_PG_FENCED when the dead letter no longer exists
 * (replayed already, by this or another run: nothing written), SINK_PG_REJECTED or SINK_PG_ERR. */
int sink_pg_dead_letter_replace(sink_pg_t *pg, int64_t id, const sink_rows_t *rows, char *err,
                                size_t errlen);

/* ---- alert tooling (vigil alerts, the daemon's quiet-period resolver) ---- */

/* One alert as vigil.alerts holds it, every column as text (timestamps as PostgreSQL prints them;
 * NULL columns as NULL). Owned by the entry (sink_pg_alerts_free). */
typedef struct sink_alert {
    char *alert_id, *kind, *entity, *severity, *status, *revision, *event_count;
    char *first_event_id, *first_event_time, *last_event_id, *last_event_time, *max_score;
    char *event_ids; /* a text[] in PostgreSQL's text form: {e1,e2} */
    char *explanation, *model_version, *raised_at, *updated_at;
    char *acknowledged_at, *acknowledged_by, *resolved_at, *resolved_by, *resolution;
} sink_alert_t;

/* Lists up to limit alerts, most recently updated first; status ("open", "acknowledged",
 * "resolved"; NULL: any) and kind ("fraud", "sentiment"; NULL: any) filter, and id (NULL: any)
 * picks one. *out is malloc'd (free with sink_pg_alerts_free). */
int sink_pg_alerts_list(sink_pg_t *pg, const char *status, const char *kind, const char *id,
                        int limit, sink_alert_t **out, size_t *n, char *err, size_t errlen);
void sink_pg_alerts_free(sink_alert_t *alerts, size_t n);

/* Acknowledges (status "acknowledged") or resolves (status "resolved", how "fraud", "legit" or
 * "manual") alert id on behalf of by, in one transaction with its NOTIFY; resolving a fraud
 * alert as fraud or legit labels its events (vigil.labels, label_source 'analyst'). SINK_PG_OK
 * with the alert as it is now in *out (when not NULL; free with sink_pg_alerts_free(out, 1)),
 * SINK_PG_FENCED when there is no such alert or it is past that step (nothing changed), or
 * SINK_PG_ERR. */
int sink_pg_alert_set_status(sink_pg_t *pg, const char *id, const char *status, const char *by,
                             const char *how, sink_alert_t **out, char *err, size_t errlen);

/* Resolves the alerts of kind with no new event for quiet_ms (wall clock), each with its NOTIFY;
 * resolved[s] (sink_alert_severities order) gets how many of each severity. */
int sink_pg_alerts_resolve_quiet(sink_pg_t *pg, const char *kind, int64_t quiet_ms, const char *by,
                                 uint64_t resolved[SINK_ALERT_SEVERITIES], char *err,
                                 size_t errlen);

/* ---- delivery to the alert sinks (vigil.alert_deliveries, migration 0007) ---- */

/* Whether this connection holds the delivery of sink: at most one session of all instances
 * does (a session advisory lock, let go when the connection ends). *held: 1 or 0. */
int sink_pg_delivery_lock(sink_pg_t *pg, const char *sink, int *held, char *err, size_t errlen);

/* Up to limit alerts sink has not taken at their current revision, or (resend_ms > 0) open or
 * acknowledged ones it took more than resend_ms ago; oldest change first. The time columns
 * (first_event_time, last_event_time, raised_at, updated_at, acknowledged_at, resolved_at) are
 * epoch milliseconds here, not PostgreSQL's text. Free with sink_pg_alerts_free. */
int sink_pg_delivery_pending(sink_pg_t *pg, const char *sink, int64_t resend_ms, int limit,
                             sink_alert_t **out, size_t *n, char *err, size_t errlen);

/* Records that sink took these alerts at these revisions (one statement; a revision older than
 * the one stored is ignored). */
int sink_pg_delivery_done(sink_pg_t *pg, const char *sink, const sink_alert_t *alerts,
                          const int *delivered, size_t n, char *err, size_t errlen);

/* LISTEN on channel, for sink_pg_wait_notify. */
int sink_pg_listen(sink_pg_t *pg, const char *channel, char *err, size_t errlen);
/* Waits up to timeout_ms for a notification on a channel listened to, and drains them.
 * 1: one or more came, 0: none, SINK_PG_ERR: the connection failed (reconnect and listen again). */
int sink_pg_wait_notify(sink_pg_t *pg, int timeout_ms, char *err, size_t errlen);

/* Cheap liveness check (SELECT 1). */
int sink_pg_ping(sink_pg_t *pg, char *err, size_t errlen);

/* Drops and re-opens the connection when it is bad; a no-op on a healthy one. */
int sink_pg_reconnect(sink_pg_t *pg, char *err, size_t errlen);

#endif
