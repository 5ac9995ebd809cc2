/* The checkpoint writer thread (see checkpointer.h): a queue of at most CHECKPOINTER_QUEUE
 * snapshots, a thread that writes them one at a time on its own connection. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "checkpointer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "log.h"
#include "metrics.h"

/* Two: one being written and one waiting. More would only hold more megabytes of snapshots
 * while PostgreSQL is slow; a partition refused now is offered again at the next batch. */
#define CHECKPOINTER_QUEUE 2

typedef struct checkpointer_item {
    sink_checkpoint_t cp; /* topic, spec_hash and state owned */
} checkpointer_item_t;

struct checkpointer {
    sink_pg_t *pg; /* used by the thread only, once started */
    char *group, *instance_id;
    pthread_t thread;
    int started;

    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t wake;
    checkpointer_item_t queue[CHECKPOINTER_QUEUE];
    size_t head, n;
    int stop;
    int busy; /* the thread holds an item it is writing (it counts against the queue) */
};

static void checkpointer_item_free(checkpointer_item_t *it)
{
    free((void *)it->cp.topic);
    free((void *)it->cp.spec_hash);
    free((void *)it->cp.state);
    memset(it, 0, sizeof *it);
}

/* Writes one checkpoint, reconnecting first when the last write broke the connection. A failure
 * is logged and the checkpoint dropped. @locality: checkpointer thread. */
static void checkpointer_write(checkpointer_t *c, const sink_checkpoint_t *cp)
{
    char err[1024], q[1100];
    int rc = sink_pg_reconnect(c->pg, err, sizeof err);

    if (rc == SINK_PG_OK)
        rc = sink_pg_checkpoint_save(c->pg, c->group, c->instance_id, cp, err, sizeof err);
    if (rc == SINK_PG_OK) {
        metrics_add(&metrics.checkpoints, 1);
        atomic_store(&metrics.checkpoint_bytes, (int64_t)cp->state_len);
    } else if (rc == SINK_PG_FENCED) {
        log_info("entity state checkpoint superseded; not written", "error=\"%s\"",
                 log_quote(err, q, sizeof q));
    } else {
        metrics_add(&metrics.pg_errors, 1);
        log_warn("entity state checkpoint not written; the previous one stays, the next comes "
                 "an interval later",
                 "topic=%s partition=%d error=\"%s\"", cp->topic, (int)cp->partition,
                 log_quote(err, q, sizeof q));
    }
}

static void *checkpointer_main(void *arg)
{
    checkpointer_t *c = arg;

    pthread_setname_np(pthread_self(), "checkpointer");
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->stop && c->n == 0)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->stop)
            break;
        checkpointer_item_t it = c->queue[c->head];
        memset(&c->queue[c->head], 0, sizeof c->queue[c->head]);
        c->head = (c->head + 1) % CHECKPOINTER_QUEUE;
        c->n--;
        c->busy = 1;
        pthread_mutex_unlock(&c->lock);
        checkpointer_write(c, &it.cp);
        checkpointer_item_free(&it);
        pthread_mutex_lock(&c->lock);
        c->busy = 0;
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

checkpointer_t *checkpointer_new(const char *conninfo, const char *group, const char *instance_id,
                                 char *err, size_t errlen)
{
    checkpointer_t *c = calloc(1, sizeof *c);

    if (!c) {
        errbuf_printf(err, errlen, "checkpointer: out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        errbuf_printf(err, errlen, "checkpointer: cannot create its lock");
        free(c);
        return NULL;
    }
    if (pthread_cond_init(&c->wake, NULL) != 0) {
        errbuf_printf(err, errlen, "checkpointer: cannot create its condition variable");
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
    }
    c->group = strdup(group);
    c->instance_id = strdup(instance_id);
    if (!c->group || !c->instance_id) {
        errbuf_printf(err, errlen, "checkpointer: out of memory");
        goto err;
    }
    c->pg = sink_pg_new(conninfo, err, errlen);
    if (!c->pg)
        goto err;
    if (pthread_create(&c->thread, NULL, checkpointer_main, c) != 0) {
        errbuf_printf(err, errlen, "checkpointer: cannot start its thread");
        goto err;
    }
    c->started = 1;
    return c;

err:
    checkpointer_free(c);
    return NULL;
}

size_t checkpointer_room(checkpointer_t *c)
{
    pthread_mutex_lock(&c->lock);
    size_t used = c->n + (size_t)c->busy;
    pthread_mutex_unlock(&c->lock);
    return used < CHECKPOINTER_QUEUE ? CHECKPOINTER_QUEUE - used : 0;
}

int checkpointer_offer(checkpointer_t *c, const sink_checkpoint_t *cp)
{
    checkpointer_item_t it = {.cp = *cp};

    it.cp.topic = strdup(cp->topic);
    it.cp.spec_hash = strdup(cp->spec_hash);
    if (!it.cp.topic || !it.cp.spec_hash) {
        free((void *)it.cp.topic);
        free((void *)it.cp.spec_hash);
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    if (c->stop || c->n + (size_t)c->busy >= CHECKPOINTER_QUEUE) {
        pthread_mutex_unlock(&c->lock);
        free((void *)it.cp.topic);
        free((void *)it.cp.spec_hash);
        return -1;
    }
    /* Ownership of cp->state passes to the queue here. */
    c->queue[(c->head + c->n) % CHECKPOINTER_QUEUE] = it;
    c->n++;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void checkpointer_free(checkpointer_t *c)
{
    if (!c)
        return;
    if (c->started) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    for (size_t i = 0; i < CHECKPOINTER_QUEUE; i++)
        checkpointer_item_free(&c->queue[i]);
    sink_pg_free(c->pg);
    free(c->group);
    free(c->instance_id);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
