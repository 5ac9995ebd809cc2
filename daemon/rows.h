/* From a decoded event to the row vigil stores for it: one mapping, used by the worker and by
 * `vigil dlq replay`, so both write the same thing. */
#ifndef VIGIL_ROWS_H
#define VIGIL_ROWS_H

#include <stdint.h>

#include "ingest_event.h"
#include "sink_pg.h"

/* Fills r from e and the message's coordinates. r borrows e's strings and topic. Kafka
 * timestamps that are missing (-1) or cannot be a PostgreSQL timestamptz (outside years
 * 1..9999: producers set CreateTime to anything) become NULL. */
void rows_risk_from_event(const ingest_event_t *e, const char *topic, int32_t partition,
                          int64_t offset, int64_t kafka_timestamp_ms, sink_risk_row_t *r);

/* The Kafka timestamp as stored: ms, or -1 for NULL (see rows_risk_from_event). */
int64_t rows_kafka_timestamp(int64_t ms);

#endif
