/* From a decoded event to the row vigil stores for it: one mapping, used by the worker and by
 * `vigil dlq replay`, so both write the same thing. */
#ifndef VIGIL_ROWS_H
#define VIGIL_ROWS_H

#include <stdint.h>

#include "ingest_event.h"
#include "sink_pg.h"

/* Fills r from e and the message's coordinates. r borrows e's strings and topic. The sink
 * stores a Kafka timestamp it cannot represent (-1, or outside years 1..9999) as NULL. */
void rows_risk_from_event(const ingest_event_t *e, const char *topic, int32_t partition,
                          int64_t offset, int64_t kafka_timestamp_ms, sink_risk_row_t *r);

#endif
