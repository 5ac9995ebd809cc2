/* The pace of idle model work: with as many spinning threads as the machine has CPUs, every CPU is
 * busy, so model_pace_contended must say so and a step must nap up to its limit, counting the time;
 * a pace without a wait never naps. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "model_pace.h"
#include "test.h"

#define MAX_SPINNERS 256

static atomic_int stop;

static void *spin(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        ;
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    char err[256] = "";
    model_pace_t *p = model_pace_new(20, err, sizeof err);
    CHECK_MSG(p != NULL, "%s", err);
    if (!p)
        return TEST_DONE();
    int c = model_pace_contended(p);
    CHECK_MSG(c == 0 || c == 1, "model_pace_contended gave %d on an open /proc/loadavg", c);
    CHECK(model_pace_take_waited(p) == 0.0);

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus < 1 ? 1 : cpus > MAX_SPINNERS ? MAX_SPINNERS : (int)cpus;
    pthread_t t[MAX_SPINNERS];
    int started = 0;
    for (int i = 0; i < n; i++)
        started += pthread_create(&t[i], NULL, spin, NULL) == 0;
    CHECK(started == n);

    /* The spinners are runnable from their first instruction; until the scheduler has started
     * them all, the count may be short, so look until it is seen (bounded, not a sleep). */
    double until = now() + 10;
    while ((c = model_pace_contended(p)) != 1 && now() < until)
        ;
    CHECK_MSG(c == 1, "%d spinning threads on %ld CPUs, yet not contended", n, cpus);

    /* Contended the whole time: the step naps until its 20 ms are up, and says so. */
    double t0 = now();
    model_pace_step(p);
    double took = now() - t0, waited = model_pace_take_waited(p);
    CHECK_MSG(waited >= 0.019 && waited <= took + 1e-6,
              "a contended step napped %.6f s of the %.6f s it took; 0.020 s expected", waited,
              took);
    CHECK_MSG(took < 2.0, "a step with a 20 ms limit took %.3f s", took);
    CHECK(model_pace_take_waited(p) == 0.0); /* taken: the count restarts */

    /* No wait allowed: the step returns at once, napping nothing. */
    model_pace_t *q = model_pace_new(0, err, sizeof err);
    CHECK_MSG(q != NULL, "%s", err);
    if (q) {
        model_pace_step(q);
        CHECK(model_pace_take_waited(q) == 0.0);
        model_pace_free(q);
    }

    atomic_store(&stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    model_pace_free(p);
    return TEST_DONE();
}
