/* Alert delivery after the commit: a thread per sink (the Kafka alerts topic, Prometheus
 * Alertmanager) with a PostgreSQL connection of its own that hands the sink what it has not taken
 * yet, as vigil.alert_deliveries records it, and records what it took. Scoring never waits for
 * it: the lanes only write vigil.alerts; a sink that is down or slow makes this thread wait and
 * retry (backing off up to DELIVERY_BACKOFF_MAX_MS), and what it has not taken stays in the table,
 * re-sent after a restart. The queue is the table, read DELIVERY_BATCH alerts at a time: bounded
 * in memory whatever the backlog. Of all instances, one delivers to a sink at a time (a session
 * advisory lock); the others wait to take over. LISTEN vigil_alerts wakes it as soon as an alert
 * changes. Delivery is at least once: a sink may see a revision twice (after a crash between the
 * sink's acknowledgement and the record), never a revision before its predecessor.
 *
 * @locality: delivery_new and delivery_free on the main thread; everything else, and the sink's
 * functions, on the delivery thread. */
#ifndef VIGIL_DELIVERY_H
#define VIGIL_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "sink_pg.h"

#define DELIVERY_BATCH 100
#define DELIVERY_BACKOFF_MAX_MS 30000

/* A sink, as a struct of functions (each sink's file fills one). */
typedef struct delivery_sink {
    const char *name;  /* vigil.alert_deliveries.sink and the metrics' sink label */
    int metrics_index; /* METRICS_SINK_* */
    int64_t resend_ms; /* open alerts are given again this long after they were; 0: never */
    void *ctx;         /* owned: freed by free_ctx */
    /* Hands the sink n alerts (sink_pg_delivery_pending's rows: times in epoch ms) and sets
     * delivered[i] for each it acknowledged. Returns 0, or -1 with err when the sink took none
     * (the whole batch is tried again later). */
    int (*send)(void *ctx, const sink_alert_t *alerts, size_t n, int *delivered, char *err,
                size_t errlen);
    void (*free_ctx)(void *ctx);
} delivery_sink_t;

typedef struct delivery delivery_t;

/* Starts the thread for sink (taken over: its ctx is freed with the delivery, or here on
 * failure). conninfo is copied. NULL with err. */
delivery_t *delivery_new(const char *conninfo, delivery_sink_t sink, char *err, size_t errlen);
/* Stops the thread after the step in progress (a send waits at most its sink's timeout). */
void delivery_free(delivery_t *d);

#endif
