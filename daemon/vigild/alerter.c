/* The alerter thread (see alerter.h): wakes every ALERTER_PERIOD_MS, or sooner for a short quiet
 * period, and resolves what has been quiet long enough. @locality: everything below runs on the
 * alerter thread, but alerter_new and alerter_free (the main thread). */
#define _GNU_SOURCE /* pthread_setname_np */
#include "alerter.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "log.h"
#include "metrics.h"
#include "sink_pg.h"

/* How often quiet alerts are looked for: an alert resolves at most this long after its quiet
 * period ends (or a tenth of the period, when that is shorter, but not below ALERTER_MIN_MS). */
#define ALERTER_PERIOD_MS 10000
#define ALERTER_MIN_MS 100

struct alerter {
    char *conninfo, *instance_id;
    int64_t resolve_after_ms, period_ms;
    sink_pg_t *pg; /* the thread's */
    int migrated;  /* sink_pg_migrate has run on pg */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the main thread: stop */
    int stop;
};

/* One pass: resolves the quiet alerts of every kind, counting them. */
static void alerter_resolve(alerter_t *a)
{
    char err[1024], q[1100];
    uint64_t resolved[SINK_ALERT_SEVERITIES];

    if (!a->pg && !(a->pg = sink_pg_new(a->conninfo, err, sizeof err)))
        goto fail;
    if (sink_pg_reconnect(a->pg, err, sizeof err) != SINK_PG_OK)
        goto fail;
    /* Like every lane, on a database it may be the first to reach (the lanes apply them as
     * they open; the advisory lock makes whoever comes second wait and find nothing to do). */
    if (!a->migrated && sink_pg_migrate(a->pg, err, sizeof err) != SINK_PG_OK)
        goto fail;
    a->migrated = 1;
    for (int k = 0; k < SINK_ALERT_KINDS; k++) { /* the sink's kinds are the metrics' */
        if (sink_pg_alerts_resolve_quiet(a->pg, sink_alert_kinds[k], a->resolve_after_ms,
                                         a->instance_id, resolved, err, sizeof err) != SINK_PG_OK)
            goto fail;
        for (int s = 0; s < SINK_ALERT_SEVERITIES; s++)
            metrics_add(&metrics.alerts[k].resolved[s], resolved[s]);
    }
    return;
fail:
    metrics_add(&metrics.pg_errors, 1);
    log_warn("resolving quiet alerts failed; trying again later", "error=\"%s\"",
             log_quote(err, q, sizeof q));
}

static void *alerter_main(void *arg)
{
    alerter_t *a = arg;
    struct timespec until;

    pthread_setname_np(pthread_self(), "alerter");
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += a->period_ms / 1000;
        until.tv_nsec += (a->period_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!a->stop && pthread_cond_timedwait(&a->wake, &a->lock, &until) != ETIMEDOUT)
            ;
        if (a->stop)
            break;
        pthread_mutex_unlock(&a->lock);
        alerter_resolve(a);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    sink_pg_free(a->pg);
    a->pg = NULL;
    return NULL;
}

alerter_t *alerter_new(const char *conninfo, const char *instance_id, int64_t resolve_after_ms,
                       char *err, size_t errlen)
{
    alerter_t *a = calloc(1, sizeof *a);
    if (!a || !(a->conninfo = strdup(conninfo)) || !(a->instance_id = strdup(instance_id))) {
        errbuf_printf(err, errlen, "alerter: out of memory");
        goto err;
    }
    a->resolve_after_ms = resolve_after_ms;
    a->period_ms =
        resolve_after_ms / 10 < ALERTER_PERIOD_MS ? resolve_after_ms / 10 : ALERTER_PERIOD_MS;
    if (a->period_ms < ALERTER_MIN_MS)
        a->period_ms = ALERTER_MIN_MS;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    int rc = pthread_create(&a->thread, NULL, alerter_main, a);
    if (rc != 0) {
        errbuf_printf(err, errlen, "alerter: cannot start its thread: %s", strerror(rc));
        pthread_cond_destroy(&a->wake);
        pthread_mutex_destroy(&a->lock);
        goto err;
    }
    return a;
err:
    if (a) {
        free(a->conninfo);
        free(a->instance_id);
    }
    free(a);
    return NULL;
}

void alerter_free(alerter_t *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = 1;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
    free(a->conninfo);
    free(a->instance_id);
    free(a);
}
