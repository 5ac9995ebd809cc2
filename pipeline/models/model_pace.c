/* Pacing of idle-priority model work by the machine's runnable threads (see model_pace.h). */
#include "model_pace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"

/* One nap: short against a fraud-lane transaction (a few milliseconds), long against the cost of
 * one look at /proc/loadavg (about a microsecond). */
#define PACE_NAP_NS 200000L

struct model_pace {
    int fd;        /* /proc/loadavg, read again from its start at every look */
    long busy_at;  /* runnable threads, the caller included, from which the CPUs count as busy */
    long max_naps; /* per step */
    double waited; /* seconds napped since model_pace_take_waited */
};

model_pace_t *model_pace_new(int max_wait_ms, char *err, size_t errlen)
{
    model_pace_t *p = calloc(1, sizeof *p);
    if (!p) {
        errbuf_printf(err, errlen, "out of memory");
        return NULL;
    }
    p->fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) {
        errbuf_printf(err, errlen, "cannot open /proc/loadavg: %s", strerror(errno));
        goto err;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) {
        errbuf_printf(err, errlen, "cannot tell how many CPUs are online");
        goto err;
    }
    /* A CPU is kept free for threads that wake: a waking thread goes to an idle CPU at once,
     * while on the paced thread's CPU it would wait for that thread's next step. With one CPU
     * that one is ours, and only other runnable threads count. */
    p->busy_at = cpus > 2 ? cpus : 2;
    p->max_naps = max_wait_ms > 0 ? (long)max_wait_ms * 1000000L / PACE_NAP_NS : 0;
    if (model_pace_contended(p) < 0) {
        errbuf_printf(err, errlen, "cannot read the runnable threads from /proc/loadavg");
        goto err;
    }
    return p;
err:
    model_pace_free(p);
    return NULL;
}

void model_pace_free(model_pace_t *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

/* /proc/loadavg is "1.00 0.70 0.40 R/T LASTPID": R, the threads running or runnable now, is
 * summed over every CPU's run queue by the kernel at each read. */
int model_pace_contended(model_pace_t *p)
{
    char buf[128];
    ssize_t n = pread(p->fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *f = buf;
    for (int i = 0; i < 3; i++) { /* past the three load averages */
        f = strchr(f, ' ');
        if (!f)
            return -1;
        f++;
    }
    char *end;
    errno = 0;
    long running = strtol(f, &end, 10);
    if (errno != 0 || end == f || *end != '/')
        return -1;
    return running >= p->busy_at;
}

void model_pace_step(void *pace)
{
    model_pace_t *p = pace;
    struct timespec nap = {0, PACE_NAP_NS}, t0, t1;
    if (p->max_naps == 0 || model_pace_contended(p) != 1)
        return;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long naps = 0;
    do {
        (void)nanosleep(&nap, NULL); /* interrupted early: we look again, no harm */
    } while (++naps < p->max_naps && model_pace_contended(p) == 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    p->waited += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

double model_pace_take_waited(model_pace_t *p)
{
    double w = p->waited;
    p->waited = 0;
    return w;
}
