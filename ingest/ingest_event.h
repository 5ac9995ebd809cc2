/* A decoded BehaviorEvent (ingest/schemas/BehaviorEvent.avsc) as plain C.
 *
 * Strings point into ev->buf, which the decoder grows as needed and reuses on the next decode into
 * the same struct, so steady-state decoding allocates nothing. NULL means absent (Avro null). */
#ifndef VIGIL_INGEST_EVENT_H
#define VIGIL_INGEST_EVENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ingest_event {
    const char *event_id;   /* never NULL after a successful decode, never empty */
    const char *event_type; /* the enum symbol, e.g. "TRANSACTION"; never NULL */
    const char *user_id;    /* never NULL, never empty */
    const char *account_id;
    const char *device_id;
    const char *ip;
    int has_amount;
    double amount;
    const char *currency;
    const char *merchant_id;
    const char *merchant_category;
    const char *country;
    int has_geo; /* latitude and longitude both present */
    double latitude, longitude;
    int64_t event_time_ms; /* epoch milliseconds */
    const char *channel;

    char *buf; /* owned: backing store of the strings above */
    size_t buf_cap;
} ingest_event_t;

/* Frees ev->buf; the struct can be reused afterwards. */
void ingest_event_clear(ingest_event_t *ev);

#endif
