/* The Kafka consumer of a set of topics in a consumer group, with offsets owned by the caller.
 *
 * vigil stores offsets in PostgreSQL, in the same transaction as the rows they account for, so
 * this wrapper never lets librdkafka pick a start position on its own: on every assignment it
 * asks the owner (on_assign) for the stored offsets and assigns exactly those; before partitions
 * are taken away it lets the owner finish or drop what it holds for them (on_revoke). Offsets
 * committed to Kafka afterwards (ingest_kafka_commit) are only for lag tools.
 *
 * @locality: everything here, the callbacks included, runs on the one thread that calls
 * ingest_kafka_poll (the lane's), except ingest_kafka_wake and ingest_kafka_group, which any
 * thread may call; librdkafka's own threads only call on_log. */
#ifndef VIGIL_INGEST_KAFKA_H
#define VIGIL_INGEST_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by on_assign for a partition with no stored offset: start at auto.offset.reset. */
#define INGEST_OFFSET_NONE (-1)

typedef struct ingest_kafka_callbacks {
    /* Fills offsets[i] with the next offset to read for partitions[i] (or INGEST_OFFSET_NONE).
     * Returns 0, or -1 when the offsets cannot be read: the consumer then assigns nothing and
     * leaves the group's session to time out, so another member (or a later rejoin) takes over. */
    int (*on_assign)(void *ctx, const char *topic, const int32_t *partitions, size_t n,
                     int64_t *offsets);
    /* The partitions are about to be revoked: finish or drop in-flight work for them now. */
    void (*on_revoke)(void *ctx, const char *topic, const int32_t *partitions, size_t n);
    /* librdkafka's log lines (syslog levels); may be called from librdkafka's threads. */
    void (*on_log)(void *ctx, int level, const char *facility, const char *message);
    void *ctx;
} ingest_kafka_callbacks_t;

typedef struct ingest_kafka ingest_kafka_t;

/* keys/values/origins: the [kafka] pass-through settings, applied after vigil's defaults
 * (enable.auto.commit=false, enable.partition.eof=false, auto.offset.reset=earliest,
 * group.id=vigild, client.id=vigild, and a prefetch queue bounded at
 * queued.max.messages.kbytes=16384), so the user can override any of them; client_id (NULL: keep
 * "vigild") replaces the default client.id, not one the user set. origins[i] names where each
 * came from, for error messages. Subscribes to topics (n_topics of them); the callbacks are
 * called once per topic. Returns NULL and fills err on failure. */
ingest_kafka_t *ingest_kafka_new(const char *const *keys, const char *const *values,
                                 const char *const *origins, size_t n, const char *client_id,
                                 const char *const *topics, size_t n_topics,
                                 const ingest_kafka_callbacks_t *cb, char *err, size_t errlen);

/* Applies the pass-through settings to conf (for any client of ours: the consumer, the
 * dead-letter producer). Returns 0, or -1 with err naming the key and its origin. */
int ingest_kafka_conf_apply(rd_kafka_conf_t *conf, const char *const *keys,
                            const char *const *values, const char *const *origins, size_t n,
                            char *err, size_t errlen);

/* Checks the pass-through settings without creating a consumer, so a bad key or value is a
 * start-up error (exit 2) naming its origin. Returns 0 or -1 with err. */
int ingest_kafka_conf_check(const char *const *keys, const char *const *values,
                            const char *const *origins, size_t n, char *err, size_t errlen);

/* Polls one message (or event) for up to timeout_ms. Returns a message the caller owns and must
 * rd_kafka_message_destroy, or NULL on timeout. Messages with ->err set are errors to log. */
rd_kafka_message_t *ingest_kafka_poll(ingest_kafka_t *k, int timeout_ms);

/* Makes an ingest_kafka_poll in progress on another thread (or the next one) return at once,
 * with NULL: another thread has something for the polling one to do. @locality: any thread, as
 * long as k is not being freed. */
void ingest_kafka_wake(ingest_kafka_t *k);

/* Moves the read position of an assigned partition (after a fenced write: back to the stored
 * offset). Returns 0 or -1 with err. */
int ingest_kafka_seek(ingest_kafka_t *k, const char *topic, int32_t partition, int64_t offset,
                      char *err, size_t errlen);

/* Pauses (pause = 1) or resumes (0) fetching for every partition assigned now. Pausing also
 * drops what librdkafka had prefetched for them, so a stalled sink does not pile messages up in
 * memory; resuming fetches again from the position after the last message polled, so nothing is
 * skipped. Returns the number of partitions affected, or -1 with err. */
int ingest_kafka_pause_all(ingest_kafka_t *k, int pause, char *err, size_t errlen);

/* Asks the partition's leader for its low watermark (the oldest offset retention still holds):
 * a blocking request of at most timeout_ms. Returns 0, or -1 with err. @locality: worker thread
 * (the consumer's). */
int ingest_kafka_query_low(ingest_kafka_t *k, const char *topic, int32_t partition, int timeout_ms,
                           int64_t *low, char *err, size_t errlen);

/* The low and high watermarks of partition as librdkafka last saw them in fetch responses (no
 * request is made; the same figures as its statistics' lo_offset/hi_offset). Returns 0, or -1
 * when not known yet. */
int ingest_kafka_watermarks(ingest_kafka_t *k, const char *topic, int32_t partition, int64_t *low,
                            int64_t *high);

/* Commits next offsets (topics[i], partitions[i]) -> next[i] to Kafka asynchronously, for lag
 * tools only. Best effort. */
void ingest_kafka_commit(ingest_kafka_t *k, const char *const *topics, const int32_t *partitions,
                         const int64_t *next, size_t n);

/* The group id in effect and the number of partitions currently assigned. */
const char *ingest_kafka_group(const ingest_kafka_t *k);
int ingest_kafka_assigned_count(const ingest_kafka_t *k);

/* Leaves the group (revoking through on_revoke) and closes the consumer. Safe to call twice. */
void ingest_kafka_close(ingest_kafka_t *k);
void ingest_kafka_free(ingest_kafka_t *k);

#endif
