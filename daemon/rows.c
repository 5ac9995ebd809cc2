/* Decoded events to stored rows (see rows.h). */
#include "rows.h"

void rows_risk_from_event(const ingest_event_t *e, const char *topic, int32_t partition,
                          int64_t offset, int64_t kafka_timestamp_ms, sink_risk_row_t *r)
{
    *r = (sink_risk_row_t){
        .topic = topic,
        .partition = partition,
        .offset = offset,
        .kafka_timestamp_ms = kafka_timestamp_ms,
        .event_id = e->event_id,
        .event_type = e->event_type,
        .user_id = e->user_id,
        .account_id = e->account_id,
        .device_id = e->device_id,
        .ip = e->ip,
        .has_amount = e->has_amount,
        .amount = e->amount,
        .currency = e->currency,
        .merchant_id = e->merchant_id,
        .merchant_category = e->merchant_category,
        .country = e->country,
        .has_geo = e->has_geo,
        .latitude = e->latitude,
        .longitude = e->longitude,
        .event_time_ms = e->event_time_ms,
        .channel = e->channel,
    };
}
