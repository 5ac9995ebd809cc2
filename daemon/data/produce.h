/* The synthetic generator behind `vigil produce` (daemon/cli/produce_cmd.c): BehaviorEvents,
 * news articles, fraud and news labels, for demos, load tests, integration tests and training
 * data.
 *
 * The generator is pure and deterministic: message i of a run with a given seed is the same on
 * every run (except event_time, which the caller passes), so a test can predict what a consumer
 * must see. About 1.5% of events belong to fraud episodes (card testing, account takeover,
 * amount spikes; docs/synthetic-data.md), and fraud label i says whether event i does. A chosen
 * fraction of messages is deliberately malformed, in kinds a consumer always fails to decode, to
 * exercise the dead-letter path. Its files: produce_internal.h. */
#ifndef VIGIL_PRODUCE_H
#define VIGIL_PRODUCE_H

#include <stddef.h>
#include <stdint.h>

#include "ingest_avro.h"
#include "ingest_record.h"

/* Upper bound of --users; each user costs 32 bytes. */
#define PRODUCE_USERS_MAX 10000000

/* Seeded state: users (home city, devices, ip, typical spend, categories), merchants, the fraud
 * episodes of the current window of indices, and the strings of the last event. */
typedef struct produce_gen produce_gen_t;

/* n_users: 1..PRODUCE_USERS_MAX. Returns NULL and fills err on a bad count or out of memory. */
produce_gen_t *produce_gen_new(uint64_t seed, int n_users, char *err, size_t errlen);
void produce_gen_free(produce_gen_t *g);
/* Articles take their headlines from the file at path (one per line, blank lines skipped, at
 * most 254 bytes each), cycled, with no body. Returns 0, or -1 with err. */
int produce_gen_load_headlines(produce_gen_t *g, const char *path, char *err, size_t errlen);
/* A negative-news burst: articles from .. from + count - 1 are bad news about ticker (1 to 15
 * characters), tagged with it alone and published when they are made, where the others are
 * published up to an hour before. Returns 0, or -1 with err. */
int produce_gen_set_burst(produce_gen_t *g, const char *ticker, uint64_t from, uint64_t count,
                          char *err, size_t errlen);
/* A news timeline: article i of count is published at start_ms + i * span_ms / count, up to
 * 30 s earlier, instead of up to an hour before it is made; a burst's articles at the time of its
 * first, 100 ms apart. A feed in order, as sentiment baselines expect. */
void produce_gen_set_span(produce_gen_t *g, int64_t start_ms, int64_t span_ms, uint64_t count);
/* Whether article i is one of the burst's. */
int produce_gen_article_in_burst(const produce_gen_t *g, uint64_t i);

/* Fills ev for message number i, with event_time now_ms. Its strings point into g's buffers,
 * valid until the next call. */
void produce_gen_event(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_event_t *ev);

/* Ground truth: 1 when event i of g's seed is fraudulent (it belongs to a fraud episode), else 0.
 */
int produce_gen_event_is_fraud(produce_gen_t *g, uint64_t i);

typedef enum produce_fraud_pattern {
    PRODUCE_FRAUD_NONE = 0,         /* a legitimate event */
    PRODUCE_FRAUD_CARD_TESTING,     /* a burst of small web purchases, maybe a cash-out */
    PRODUCE_FRAUD_ACCOUNT_TAKEOVER, /* failed logins, a login and purchases from a new device */
    PRODUCE_FRAUD_AMOUNT_SPIKE,     /* one purchase at 10-50x the user's typical spend */
    PRODUCE_FRAUD_PATTERNS
} produce_fraud_pattern_t;

/* The pattern of the episode event i belongs to (PRODUCE_FRAUD_NONE: legitimate) and, when
 * episode is not NULL, a number for that episode, the same for all its events and different for
 * every other episode of the seed (0 for a legitimate event). For tests and statistics. */
produce_fraud_pattern_t produce_gen_event_pattern(produce_gen_t *g, uint64_t i, uint64_t *episode);

/* Fills rec with record number i of kind (rec->kind set). Strings as produce_gen_event's;
 * rec->buf and rec->list are left untouched (they belong to a decoder, if any). A fraud label i
 * is about event i of the same seed (its is_fraud is produce_gen_event_is_fraud(g, i)), a news
 * label i about article i. */
void produce_gen_record(produce_gen_t *g, ingest_kind_t kind, uint64_t i, int64_t now_ms,
                        ingest_record_t *rec);

/* The Kafka message key produce uses for rec: the user (events), the article, the event. */
const char *produce_record_key(const ingest_record_t *rec);

/* Whether message i is malformed for fraction f (0..1): deterministic in (seed, i); never for 0,
 * always for 1. */
int produce_gen_is_malformed(const produce_gen_t *g, uint64_t i, double fraction);

/* The kinds of malformed message; message i gets kind i % PRODUCE_MALFORMED_KINDS. */
typedef enum produce_malformed_kind {
    PRODUCE_MALFORMED_BAD_MAGIC = 0,  /* valid encoding with the first byte set to 0x7b */
    PRODUCE_MALFORMED_TRUNCATED,      /* the first half of a valid encoding */
    PRODUCE_MALFORMED_UNKNOWN_SCHEMA, /* Confluent header with id 999999, then a valid body */
    PRODUCE_MALFORMED_RANDOM,         /* random bytes (first byte 0x01: never a valid start) */
    PRODUCE_MALFORMED_EMPTY,          /* zero-length value */
    PRODUCE_MALFORMED_KINDS
} produce_malformed_kind_t;

/* The schema id PRODUCE_MALFORMED_UNKNOWN_SCHEMA writes (999998 when schema_id is 999999). */
#define PRODUCE_UNKNOWN_SCHEMA_ID 999999

/* Writes malformed message i into out (out_cap bytes; 4096 is plenty) so that a consumer always
 * fails to decode it, in either wire format. rec is record i from produce_gen_record: the
 * kinds that carry a valid body encode it with enc and schema_id. Returns the length (0 for the
 * empty kind), or -1 and fills err when encoding fails. */
long produce_gen_malformed(produce_gen_t *g, ingest_avro_t *enc, int32_t schema_id, uint64_t i,
                           const ingest_record_t *rec, void *out, size_t out_cap, char *err,
                           size_t errlen);

#endif
