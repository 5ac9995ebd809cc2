/* The alerts topic as a delivery sink (delivery.h; docs/alerts.md, "Delivery"). */
#ifndef VIGIL_DELIVERY_KAFKA_H
#define VIGIL_DELIVERY_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "delivery.h"

/* A producer to topic with the [kafka] pass-through settings (as the dead-letter producer), and
 * the sink that uses it: each delivery waits up to timeout_ms for the acknowledgements. 0 with
 * *out filled, or -1 with err. */
int delivery_kafka_sink(const char *const *keys, const char *const *values,
                        const char *const *origins, size_t n_kafka, const char *topic,
                        int32_t schema_id, int timeout_ms, delivery_sink_t *out, char *err,
                        size_t errlen);

/* One alert (sink_pg_delivery_pending's row) as the Confluent-framed Avro record of
 * ingest/schemas/Alert.avsc. Returns its length, or 0 when it does not fit in cap. */
size_t delivery_kafka_encode(const sink_alert_t *a, int32_t schema_id, unsigned char *out,
                             size_t cap);

#endif
