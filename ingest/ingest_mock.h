/* The embedded Kafka: librdkafka's mock cluster (real wire protocol on 127.0.0.1 ports), for
 * demos and tests. Real clients, kcat included, connect to it like to any broker. It lives as long
 * as this object, in this process. */
#ifndef VIGIL_INGEST_MOCK_H
#define VIGIL_INGEST_MOCK_H

#include <stddef.h>

typedef struct ingest_mock ingest_mock_t;

ingest_mock_t *ingest_mock_new(int brokers, char *err, size_t errlen);
/* Creates topic with the given partition count (replication factor min(3, brokers)). */
int ingest_mock_topic_create(ingest_mock_t *m, const char *topic, int partitions, char *err,
                             size_t errlen);
/* Injects a fault or changes the cluster, from a one-line command (what tests send to
 * `vigil kafka-mock --control FIFO`):
 *   broker-down ID | broker-up ID        a broker stops / resumes accepting connections
 *   leader TOPIC PARTITION ID            moves a partition's leader
 *   coordinator group KEY ID             moves the coordinator of consumer group KEY
 *   errors API COUNT CODE                the next COUNT requests of API (Fetch, OffsetCommit,
 *                                        JoinGroup, Heartbeat, SyncGroup, OffsetFetch,
 *                                        Metadata, FindCoordinator, ListOffsets, or a number)
 *                                        fail with Kafka error CODE (a number, e.g. 6, 15, 27)
 * Returns 0, or -1 with err naming what was wrong with the line. */
int ingest_mock_command(ingest_mock_t *m, const char *line, char *err, size_t errlen);

/* "127.0.0.1:port,..." */
const char *ingest_mock_bootstraps(const ingest_mock_t *m);
void ingest_mock_free(ingest_mock_t *m);

#endif
