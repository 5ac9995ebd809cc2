/* The alert delivery thread of one sink (see delivery.h): take the sink's lock, then, for as
 * long as this process runs, hand the sink what vigil.alert_deliveries says it has not taken,
 * record what it took, and sleep until an alert changes (LISTEN) or a second passes. A failure
 * of PostgreSQL or of the sink backs off and tries again; nothing is dropped. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "delivery.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "log.h"
#include "metrics.h"

#define DELIVERY_IDLE_MS 1000   /* the longest sleep without a notification */
#define DELIVERY_STEP_MS 100    /* how often a sleep looks at the stop flag */
#define DELIVERY_BACKOFF_MS 500 /* the first wait after a failure; doubles to the max */

struct delivery {
    char *conninfo;
    delivery_sink_t sink;
    sink_pg_t *pg;       /* the thread's */
    int held, listening; /* the sink's lock is ours; LISTEN is on */
    int64_t backoff_ms;  /* 0: the last step succeeded */
    pthread_t thread;
    atomic_int stop;
};

/* Sleeps up to ms, in steps, waking early for a notification when listening (1) or for the
 * stop flag. */
static void delivery_sleep(delivery_t *d, int64_t ms)
{
    char err[512];
    for (int64_t left = ms; left > 0 && !atomic_load(&d->stop); left -= DELIVERY_STEP_MS) {
        int step = left < DELIVERY_STEP_MS ? (int)left : DELIVERY_STEP_MS;
        if (!d->listening) {
            struct timespec ts = {0, step * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        int rc = sink_pg_wait_notify(d->pg, step, err, sizeof err);
        if (rc == 1)
            return;
        if (rc == SINK_PG_ERR) {
            d->listening = 0; /* reconnected and listening again by the next step */
            d->held = 0;
        }
    }
}

/* The connection, the migrations (this thread may be the first to reach the database), the
 * sink's lock, LISTEN. 0 when this thread delivers now, 1 when another session holds the lock,
 * -1 with err. */
static int delivery_connect(delivery_t *d, char *err, size_t errlen)
{
    if (!d->pg && !(d->pg = sink_pg_new(d->conninfo, err, errlen)))
        return -1;
    if (d->held && d->listening)
        return 0;
    d->held = d->listening = 0; /* a new session holds nothing */
    if (sink_pg_reconnect(d->pg, err, errlen) != SINK_PG_OK ||
        sink_pg_migrate(d->pg, err, errlen) != SINK_PG_OK ||
        sink_pg_delivery_lock(d->pg, d->sink.name, &d->held, err, errlen) != SINK_PG_OK)
        return -1;
    if (!d->held)
        return 1;
    if (sink_pg_listen(d->pg, "vigil_alerts", err, errlen) != SINK_PG_OK)
        return -1;
    d->listening = 1;
    log_info("delivering alerts", "sink=%s", d->sink.name);
    return 0;
}

/* One round: what the sink has to take, to the sink, recorded. Returns how many it took, or -1
 * with err. */
static int delivery_round(delivery_t *d, char *err, size_t errlen)
{
    sink_alert_t *alerts = NULL;
    size_t n = 0;
    int delivered[DELIVERY_BATCH] = {0}, taken = -1;
    metrics_alert_sink_t *m = &metrics.sinks[d->sink.metrics_index];

    if (sink_pg_delivery_pending(d->pg, d->sink.name, d->sink.resend_ms, DELIVERY_BATCH, &alerts,
                                 &n, err, errlen) != SINK_PG_OK) {
        d->held = d->listening = 0; /* reconnect: the lock went with a lost session */
        return -1;
    }
    if (n == 0) {
        atomic_store(&m->queued, 0);
        taken = 0;
        goto out;
    }
    if (d->sink.send(d->sink.ctx, alerts, n, delivered, err, errlen) != 0) {
        atomic_store(&m->queued, (int64_t)n);
        metrics_add(&m->failed, 1);
        goto out;
    }
    taken = 0;
    for (size_t i = 0; i < n; i++)
        taken += delivered[i] != 0;
    if (sink_pg_delivery_done(d->pg, d->sink.name, alerts, delivered, n, err, errlen) !=
        SINK_PG_OK) {
        /* Taken but not recorded: given again once PostgreSQL answers (at least once). */
        d->held = d->listening = 0;
        taken = -1;
        goto out;
    }
    metrics_add(&m->delivered, (uint64_t)taken);
    atomic_store(&m->queued, (int64_t)(n - (size_t)taken));
    if ((size_t)taken < n) {
        errbuf_printf(err, errlen, "%s took %d of %zu alerts", d->sink.name, taken, n);
        metrics_add(&m->failed, 1);
        taken = -1;
    }
out:
    sink_pg_alerts_free(alerts, n);
    return taken;
}

static void *delivery_main(void *arg)
{
    delivery_t *d = arg;
    char err[1024], q[1100], name[16];

    snprintf(name, sizeof name, "deliver-%.7s", d->sink.name);
    pthread_setname_np(pthread_self(), name);
    while (!atomic_load(&d->stop)) {
        int c = delivery_connect(d, err, sizeof err);
        if (c == 1) {
            delivery_sleep(d,
                           5 * DELIVERY_IDLE_MS); /* another instance delivers; wait to take over */
            continue;
        }
        int taken = c == 0 ? delivery_round(d, err, sizeof err) : -1;
        if (taken < 0) {
            d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : DELIVERY_BACKOFF_MS;
            if (d->backoff_ms > DELIVERY_BACKOFF_MAX_MS)
                d->backoff_ms = DELIVERY_BACKOFF_MAX_MS;
            log_warn("alert delivery failed; trying again", "sink=%s retry_ms=%lld error=\"%s\"",
                     d->sink.name, (long long)d->backoff_ms, log_quote(err, q, sizeof q));
            delivery_sleep(d, d->backoff_ms);
            continue;
        }
        if (d->backoff_ms)
            log_info("alert delivery works again", "sink=%s", d->sink.name);
        d->backoff_ms = 0;
        if (taken < DELIVERY_BATCH) /* a full batch: more are waiting, go on at once */
            delivery_sleep(d, DELIVERY_IDLE_MS);
    }
    sink_pg_free(d->pg); /* the lock goes with the session */
    d->pg = NULL;
    return NULL;
}

delivery_t *delivery_new(const char *conninfo, delivery_sink_t sink, char *err, size_t errlen)
{
    delivery_t *d = calloc(1, sizeof *d);
    if (!d || !(d->conninfo = strdup(conninfo))) {
        errbuf_printf(err, errlen, "alert delivery: out of memory");
        goto err;
    }
    d->sink = sink;
    int rc = pthread_create(&d->thread, NULL, delivery_main, d);
    if (rc != 0) {
        errbuf_printf(err, errlen, "alert delivery to %s: cannot start its thread: %s", sink.name,
                      strerror(rc));
        goto err;
    }
    return d;
err:
    if (sink.free_ctx)
        sink.free_ctx(sink.ctx);
    if (d)
        free(d->conninfo);
    free(d);
    return NULL;
}

void delivery_free(delivery_t *d)
{
    if (!d)
        return;
    atomic_store(&d->stop, 1);
    pthread_join(d->thread, NULL);
    if (d->sink.free_ctx)
        d->sink.free_ctx(d->sink.ctx);
    free(d->conninfo);
    free(d);
}
