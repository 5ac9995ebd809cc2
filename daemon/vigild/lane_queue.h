/* A bounded FIFO of pointers between two threads of a lane (the reader and the writer): a mutex,
 * a condition variable and a ring. Pushing never blocks: a lane's queues have room for every
 * batch it owns, so a push that finds the ring full is a bug and is refused. Popping waits up to
 * a timeout, so the waiting thread can keep its heartbeat and notice a stop. */
#ifndef VIGIL_LANE_QUEUE_H
#define VIGIL_LANE_QUEUE_H

#include <pthread.h>
#include <stddef.h>

typedef struct lane_queue {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    void **ring; /* (cap) */
    size_t cap, head, n;
    int closed;
} lane_queue_t;

/* Returns 0, or -1 with err (out of memory, or the lock cannot be made). */
int lane_queue_init(lane_queue_t *q, size_t cap, char *err, size_t errlen);
void lane_queue_destroy(lane_queue_t *q);

/* Appends p and wakes a waiting pop. Returns 0, or -1 when the queue is full or closed. */
int lane_queue_push(lane_queue_t *q, void *p);

/* The oldest pointer, waiting up to timeout_ms (0: no wait) for one; NULL when none came or the
 * queue is closed and empty. */
void *lane_queue_pop(lane_queue_t *q, int timeout_ms);

/* No more pushes: a pop on the empty queue returns NULL at once. */
void lane_queue_close(lane_queue_t *q);
int lane_queue_closed(lane_queue_t *q);
size_t lane_queue_depth(lane_queue_t *q);

#endif
