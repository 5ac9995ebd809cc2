/* Prometheus Alertmanager as a delivery sink (delivery.h; docs/alerts.md, "Delivery"). */
#ifndef VIGIL_DELIVERY_AM_H
#define VIGIL_DELIVERY_AM_H

#include <stdint.h>

#include "delivery.h"

/* The sink for the Alertmanager at url (http://HOST[:PORT][/PREFIX], default port 9093): open
 * alerts are sent again every resend_ms; each POST has timeout_ms for connecting, sending and
 * the answer together. 0 with *out filled, or -1 with err (a URL it cannot use). */
int delivery_am_sink(const char *url, int64_t resend_ms, int timeout_ms, delivery_sink_t *out,
                     char *err, size_t errlen);

#endif
