/* The bounded queue between a lane's reader and writer (daemon/vigild/lane_queue.c): FIFO order,
 * a full queue refuses instead of blocking, a pop waits at most its timeout, close wakes a
 * waiting pop, and every pointer pushed by one thread reaches the other exactly once and in
 * order. */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "lane_queue.h"
#include "test.h"

#define PASSES 100000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_order_and_bounds(void)
{
    lane_queue_t q;
    char err[256];
    int a, b, c;
    CHECK(lane_queue_init(&q, 2, err, sizeof err) == 0);
    CHECK(lane_queue_pop(&q, 0) == NULL);
    CHECK(lane_queue_push(&q, &a) == 0);
    CHECK(lane_queue_push(&q, &b) == 0);
    CHECK(lane_queue_push(&q, &c) == -1); /* full: refused, not blocked */
    CHECK(lane_queue_depth(&q) == 2);
    CHECK(lane_queue_pop(&q, 0) == &a);
    CHECK(lane_queue_push(&q, &c) == 0); /* the ring wraps */
    CHECK(lane_queue_pop(&q, 0) == &b);
    CHECK(lane_queue_pop(&q, 0) == &c);
    CHECK(lane_queue_depth(&q) == 0);

    double t0 = now_s();
    CHECK(lane_queue_pop(&q, 150) == NULL);
    double waited = now_s() - t0;
    CHECK_MSG(waited >= 0.149 && waited < 2.0, "a 150 ms pop on an empty queue took %.3f s",
              waited);

    lane_queue_close(&q);
    CHECK(lane_queue_closed(&q));
    CHECK(lane_queue_push(&q, &a) == -1);
    t0 = now_s();
    CHECK(lane_queue_pop(&q, 5000) == NULL); /* closed and empty: at once */
    CHECK(now_s() - t0 < 1.0);
    lane_queue_destroy(&q);
}

/* Pointers left in a closed queue still come out: the writer drains what the reader closed. */
static void test_close_keeps_items(void)
{
    lane_queue_t q;
    char err[256];
    int a;
    CHECK(lane_queue_init(&q, 4, err, sizeof err) == 0);
    CHECK(lane_queue_push(&q, &a) == 0);
    lane_queue_close(&q);
    CHECK(lane_queue_pop(&q, 0) == &a);
    CHECK(lane_queue_pop(&q, 0) == NULL);
    lane_queue_destroy(&q);
}

typedef struct ping_pong {
    lane_queue_t to, back;
    uintptr_t slots[4];
    int out_of_order;
} ping_pong_t;

/* The other side: takes each slot, checks it comes in order, sends it back. */
static void *echo(void *arg)
{
    ping_pong_t *pp = arg;
    uintptr_t want = 0;
    for (;;) {
        uintptr_t *slot = lane_queue_pop(&pp->to, 1000);
        if (!slot) {
            if (lane_queue_closed(&pp->to))
                break;
            continue;
        }
        if (*slot != want)
            pp->out_of_order++;
        want++;
        while (lane_queue_push(&pp->back, slot) != 0)
            ; /* cannot be full: there are as many slots as room */
    }
    return NULL;
}

/* Two threads pass four slots back and forth PASSES times, as a reader and writer pass batches:
 * nothing lost, nothing doubled, order kept. */
static void test_two_threads(void)
{
    static ping_pong_t pp;
    char err[256];
    pthread_t th;
    uintptr_t next = 0, back = 0;
    size_t free_slots = 4, lost = 0;
    uintptr_t *free_list[4];

    CHECK(lane_queue_init(&pp.to, 4, err, sizeof err) == 0);
    CHECK(lane_queue_init(&pp.back, 4, err, sizeof err) == 0);
    for (int i = 0; i < 4; i++)
        free_list[i] = &pp.slots[i];
    CHECK(pthread_create(&th, NULL, echo, &pp) == 0);
    while (back < PASSES) {
        while (free_slots > 0 && next < PASSES) {
            uintptr_t *s = free_list[--free_slots];
            *s = next++;
            CHECK(lane_queue_push(&pp.to, s) == 0);
        }
        uintptr_t *s = lane_queue_pop(&pp.back, 1000);
        if (!s) {
            lost++;
            break;
        }
        back++;
        free_list[free_slots++] = s;
    }
    lane_queue_close(&pp.to);
    pthread_join(th, NULL);
    CHECK(lost == 0);
    CHECK(back == PASSES);
    CHECK(pp.out_of_order == 0);
    CHECK(lane_queue_depth(&pp.back) == 0);
    lane_queue_destroy(&pp.to);
    lane_queue_destroy(&pp.back);
}

int main(void)
{
    test_order_and_bounds();
    test_close_keeps_items();
    test_two_threads();
    return TEST_DONE();
}
