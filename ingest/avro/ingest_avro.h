/* Avro decoding of Kafka message values into ingest_record_t, and encoding for `vigil produce`.
 *
 * A decoder reads one kind of record (BehaviorEvent, NewsArticle, FraudLabel, NewsLabel): the
 * kind of the topic it serves.
 *
 * Two wire formats:
 *  - INGEST_FORMAT_CONFLUENT: magic byte 0x00, 4-byte big-endian schema id, Avro binary. The
 *    writer schema for an id comes from the schema registry (ingest_avro_use_registry) or
 *    <schema_dir>/<id>.avsc, and is cached; when it differs from the reader schema, Avro schema
 *    resolution (done by the decoder) reads it into the reader's shape.
 *  - INGEST_FORMAT_PLAIN: the whole value is Avro binary written with the reader schema.
 *
 * A decoder is not thread-safe (@locality: the one thread that owns it). Decoding failure is an
 * expected outcome, not an error of the program: it returns INGEST_AVRO_BAD with a reason short
 * enough for a dead-letter row ("truncated: ...", "bad magic byte 0x7b", "unknown schema id 42",
 * "trailing bytes: ...", "invalid field event_id: empty"). */
#ifndef VIGIL_INGEST_AVRO_H
#define VIGIL_INGEST_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include "ingest_record.h"
#include "ingest_registry.h"

/* INGEST_AVRO_RETRY: the message's writer schema could not be fetched from the schema registry
 * (unreachable, 5xx, refused credentials): neither the message's fault nor a reason to give up;
 * decode it again later. */
enum { INGEST_AVRO_OK = 0, INGEST_AVRO_ERR = -1, INGEST_AVRO_BAD = 1, INGEST_AVRO_RETRY = 2 };

typedef enum ingest_format { INGEST_FORMAT_CONFLUENT = 0, INGEST_FORMAT_PLAIN = 1 } ingest_format_t;

typedef struct ingest_avro ingest_avro_t;

/* kind: the record kind decoded. reader_schema_path: the .avsc vigil decodes into (the kind's
 * schema, e.g. ingest/schemas/NewsArticle.avsc; any field order, extra fields allowed).
 * schema_dir: where <id>.avsc writer schemas live (may be NULL for PLAIN). Returns NULL and
 * fills err on a missing or invalid schema file, naming the file. */
ingest_avro_t *ingest_avro_new(ingest_kind_t kind, ingest_format_t format,
                               const char *reader_schema_path, const char *schema_dir, char *err,
                               size_t errlen);
void ingest_avro_free(ingest_avro_t *dec);

/* Confluent format: look writer schemas up in the schema registry o describes instead of
 * schema_dir. The decoder owns the client. Returns 0, or -1 with err (a bad URL, an unreadable
 * CA file). */
int ingest_avro_use_registry(ingest_avro_t *dec, const ingest_registry_options_t *o, char *err,
                             size_t errlen);

/* Decodes one message value into rec (rec->kind is set to the decoder's kind). Returns
 * INGEST_AVRO_OK, or INGEST_AVRO_BAD with the reason in reason (reason_len bytes). rec's strings
 * stay valid until the next decode into rec.
 * INGEST_AVRO_ERR (reason filled) means the decoder itself failed (out of memory), not the
 * message. */
int ingest_avro_decode(ingest_avro_t *dec, const void *data, size_t len, ingest_record_t *rec,
                       char *reason, size_t reason_len);

/* The kind of record dec reads. */
ingest_kind_t ingest_avro_kind(const ingest_avro_t *dec);

/* Encoder for producers (vigil produce, tests, benchmarks): writes rec (of the encoder's kind)
 * as Avro binary with the
 * reader schema, prefixed with the Confluent header carrying schema_id when format is CONFLUENT.
 * Returns the encoded length, or -1 and fills err when out (out_cap bytes) is too small or a
 * field is invalid. */
long ingest_avro_encode(ingest_avro_t *enc, const ingest_record_t *rec, int32_t schema_id,
                        void *out, size_t out_cap, char *err, size_t errlen);

/* Extra fields: the fields of a BehaviorEvent reader schema that are not BehaviorEvent's own
 * (users add their columns to the reader schema and name them in the feature spec). Allowed
 * types: int, long, float, double, boolean (INGEST_EXTRA_NUMBER), string, enum
 * (INGEST_EXTRA_STRING), each optionally in a union with null; each needs a default in the
 * reader schema if writers may lack it. Other kinds have none. i < ingest_avro_extra_count(). */
typedef enum ingest_extra_type { INGEST_EXTRA_NUMBER, INGEST_EXTRA_STRING } ingest_extra_type_t;
size_t ingest_avro_extra_count(const ingest_avro_t *dec);
const char *ingest_avro_extra_name(const ingest_avro_t *dec, size_t i);
ingest_extra_type_t ingest_avro_extra_type(const ingest_avro_t *dec, size_t i);

/* Parses "confluent" / "plain". Returns 0 or -1. */
int ingest_format_parse(const char *s, ingest_format_t *out);

/* Parses a kind by its short name ("events", "news", "fraud-labels", "news-labels") or its
 * schema name ("BehaviorEvent", ...). Returns 0 or -1. */
int ingest_kind_parse(const char *s, ingest_kind_t *out);

#endif
