/* The optional dead-letter topic: every dead letter, once its batch has committed, is also
 * published to a Kafka topic (key and payload as consumed, the reason and the source
 * coordinates in headers), for teams that route bad data through Kafka tooling.
 *
 * vigil.dead_letters stays the record that counts: publishing happens after the commit and is
 * best effort (a crash between the two leaves a dead letter in the table only; a delivery
 * failure is logged and counted), so the topic is a copy, never the authority.
 *
 * @locality: the worker thread; librdkafka's own threads only call on_log. */
#ifndef VIGIL_INGEST_DLQ_H
#define VIGIL_INGEST_DLQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct ingest_dlq ingest_dlq_t;

/* keys/values/origins: the [kafka] pass-through settings (bootstrap.servers, security, ...).
 * on_log receives librdkafka's log lines and delivery failures (level 3). */
ingest_dlq_t *ingest_dlq_new(const char *const *keys, const char *const *values,
                             const char *const *origins, size_t n, const char *topic,
                             void (*on_log)(void *ctx, int level, const char *facility,
                                            const char *message),
                             void *ctx, char *err, size_t errlen);

/* Queues one dead letter. Returns 0, or -1 with err when librdkafka refuses it (queue full). */
int ingest_dlq_send(ingest_dlq_t *d, const void *key, size_t key_len, const void *payload,
                    size_t payload_len, const char *reason, const char *source_topic,
                    int32_t source_partition, int64_t source_offset, char *err, size_t errlen);

/* Serves delivery reports; returns how many dead letters failed delivery since the last call. */
uint64_t ingest_dlq_poll(ingest_dlq_t *d);

/* Waits up to timeout_ms for queued dead letters to be delivered; returns how many are left. */
int ingest_dlq_flush(ingest_dlq_t *d, int timeout_ms);
void ingest_dlq_free(ingest_dlq_t *d);

#endif
