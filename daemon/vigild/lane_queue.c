/* The bounded pointer FIFO between a lane's threads (see lane_queue.h). */
#include "lane_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "errbuf.h"

int lane_queue_init(lane_queue_t *q, size_t cap, char *err, size_t errlen)
{
    pthread_condattr_t attr;
    *q = (lane_queue_t){.cap = cap};
    if (!(q->ring = calloc(cap ? cap : 1, sizeof *q->ring))) {
        errbuf_printf(err, errlen, "lane queue: out of memory");
        return -1;
    }
    /* Timed waits on the monotonic clock: a wall-clock step must not stretch or cut them. */
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&q->cond, &attr) != 0) {
        free(q->ring);
        q->ring = NULL;
        errbuf_printf(err, errlen, "lane queue: cannot create its condition variable");
        return -1;
    }
    pthread_condattr_destroy(&attr);
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        pthread_cond_destroy(&q->cond);
        free(q->ring);
        q->ring = NULL;
        errbuf_printf(err, errlen, "lane queue: cannot create its mutex");
        return -1;
    }
    return 0;
}

void lane_queue_destroy(lane_queue_t *q)
{
    if (!q->ring)
        return; /* never initialised */
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cond);
    free(q->ring);
    q->ring = NULL;
}

int lane_queue_push(lane_queue_t *q, void *p)
{
    pthread_mutex_lock(&q->mu);
    if (q->n == q->cap || q->closed) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    q->ring[(q->head + q->n) % q->cap] = p;
    q->n++;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void *lane_queue_pop(lane_queue_t *q, int timeout_ms)
{
    struct timespec until;
    void *p = NULL;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    while (q->n == 0 && !q->closed && timeout_ms > 0)
        if (pthread_cond_timedwait(&q->cond, &q->mu, &until) == ETIMEDOUT)
            break;
    if (q->n > 0) {
        p = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
    pthread_mutex_unlock(&q->mu);
    return p;
}

void lane_queue_close(lane_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

int lane_queue_closed(lane_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    int closed = q->closed;
    pthread_mutex_unlock(&q->mu);
    return closed;
}

size_t lane_queue_depth(lane_queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}
