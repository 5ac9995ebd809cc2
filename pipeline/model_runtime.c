/* The inference thread, its job queue and the hot swap of models (see model_runtime.h). */
#include "model_runtime.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_risk.h"

#define RUNTIME_QUEUE 8
#define RUNTIME_ERR_MAX 512

typedef enum job_kind { JOB_RISK_SCORE, JOB_RISK_RELOAD } job_kind_t;

/* A request and its answer; lives on the submitter's stack until done. */
typedef struct runtime_job {
    job_kind_t kind;
    const float *x;
    size_t n, width;
    float *scores;
    const char *path;
    const char *version; /* out */
    int rc;              /* out */
    int done;
    char err[RUNTIME_ERR_MAX];
} runtime_job_t;

/* An interned version string: kept until the runtime is freed, so rows may borrow it. */
typedef struct runtime_version {
    struct runtime_version *next;
    char name[];
} runtime_version_t;

struct model_runtime {
    kernels_backend_t *be;
    char *spec_hash;
    size_t max_batch;
    pthread_t thread;
    int started;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the inference thread: a job or stop */
    pthread_cond_t done; /* submitters: some job finished; or there is room in the queue */
    runtime_job_t *queue[RUNTIME_QUEUE];
    size_t head, count;
    int stop;

    /* Owned by the inference thread once started (before: by model_runtime_new). */
    model_risk_t *risk;
    const char *risk_version; /* interned; read under mu by model_runtime_risk_version */
    runtime_version_t *versions;
};

static void rt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *rt_intern(model_runtime_t *rt, const char *name)
{
    for (runtime_version_t *v = rt->versions; v; v = v->next)
        if (strcmp(v->name, name) == 0)
            return v->name;
    size_t n = strlen(name) + 1;
    runtime_version_t *v = malloc(sizeof *v + n);
    if (!v)
        return NULL;
    memcpy(v->name, name, n);
    v->next = rt->versions;
    rt->versions = v;
    return v->name;
}

/* Loads and checks a risk model; on success it replaces the active one. @locality: the
 * inference thread (or model_runtime_new before it starts). */
static int rt_risk_load(model_runtime_t *rt, const char *path, const char **version, char *err,
                        size_t errlen)
{
    model_risk_t *m = model_risk_load(rt->be, path, err, errlen);
    const char *v;
    if (!m)
        return -1;
    if (rt->spec_hash && strcmp(model_risk_spec_hash(m), rt->spec_hash) != 0) {
        rt_err(err, errlen,
               "%s: trained with feature spec %s but this daemon computes spec %s; retrain "
               "with this daemon's features.spec",
               path, model_risk_spec_hash(m), rt->spec_hash);
        model_risk_free(m);
        return -1;
    }
    if (!(v = rt_intern(rt, model_risk_version(m)))) {
        rt_err(err, errlen, "out of memory");
        model_risk_free(m);
        return -1;
    }
    model_risk_free(rt->risk);
    rt->risk = m;
    pthread_mutex_lock(&rt->mu);
    rt->risk_version = v;
    pthread_mutex_unlock(&rt->mu);
    if (version)
        *version = v;
    return 0;
}

static void rt_run(model_runtime_t *rt, runtime_job_t *j)
{
    j->rc = 0;
    j->version = NULL;
    switch (j->kind) {
    case JOB_RISK_SCORE:
        if (!rt->risk) {
            j->rc = 1;
            return;
        }
        if (j->width != model_risk_width(rt->risk)) {
            rt_err(j->err, sizeof j->err, "feature vectors have %zu columns, the model %zu",
                   j->width, model_risk_width(rt->risk));
            j->rc = -1;
            return;
        }
        /* Micro-batches of at most max_batch rows: bounds the work area whatever the caller's
         * batch size. */
        for (size_t s0 = 0; s0 < j->n; s0 += rt->max_batch) {
            size_t nb = j->n - s0 < rt->max_batch ? j->n - s0 : rt->max_batch;
            if (model_risk_score(rt->risk, j->x + s0 * j->width, nb, j->scores + s0, j->err,
                                 sizeof j->err) != 0) {
                j->rc = -1;
                return;
            }
        }
        j->version = rt->risk_version;
        return;
    case JOB_RISK_RELOAD:
        j->rc = rt_risk_load(rt, j->path, &j->version, j->err, sizeof j->err);
        return;
    }
}

static void *rt_main(void *arg)
{
    model_runtime_t *rt = arg;
    pthread_mutex_lock(&rt->mu);
    for (;;) {
        while (rt->count == 0 && !rt->stop)
            pthread_cond_wait(&rt->wake, &rt->mu);
        if (rt->count == 0)
            break; /* stopping, and nothing left to answer */
        runtime_job_t *j = rt->queue[rt->head];
        rt->head = (rt->head + 1) % RUNTIME_QUEUE;
        rt->count--;
        pthread_mutex_unlock(&rt->mu);
        rt_run(rt, j);
        pthread_mutex_lock(&rt->mu);
        j->done = 1;
        pthread_cond_broadcast(&rt->done);
    }
    pthread_mutex_unlock(&rt->mu);
    return NULL;
}

/* Queues j and waits for its answer. */
static void rt_submit(model_runtime_t *rt, runtime_job_t *j)
{
    j->done = 0;
    j->err[0] = '\0';
    pthread_mutex_lock(&rt->mu);
    while (rt->count == RUNTIME_QUEUE)
        pthread_cond_wait(&rt->done, &rt->mu);
    rt->queue[(rt->head + rt->count) % RUNTIME_QUEUE] = j;
    rt->count++;
    pthread_cond_signal(&rt->wake);
    while (!j->done)
        pthread_cond_wait(&rt->done, &rt->mu);
    pthread_mutex_unlock(&rt->mu);
}

model_runtime_t *model_runtime_new(const model_runtime_options_t *o, char *err, size_t errlen)
{
    model_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt) {
        rt_err(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->wake, NULL);
    pthread_cond_init(&rt->done, NULL);
    rt->max_batch = o->max_batch ? o->max_batch : 1024;
    if (o->spec_hash && !(rt->spec_hash = strdup(o->spec_hash))) {
        rt_err(err, errlen, "out of memory");
        goto err;
    }
    rt->be = kernels_backend_new(o->backend ? o->backend : "auto", o->threads, err, errlen);
    if (!rt->be)
        goto err;
    if (o->risk_path && o->risk_path[0] && rt_risk_load(rt, o->risk_path, NULL, err, errlen) != 0)
        goto err;
    if (pthread_create(&rt->thread, NULL, rt_main, rt) != 0) {
        rt_err(err, errlen, "cannot start the inference thread");
        goto err;
    }
    rt->started = 1;
    return rt;
err:
    model_runtime_free(rt);
    return NULL;
}

void model_runtime_free(model_runtime_t *rt)
{
    if (!rt)
        return;
    if (rt->started) {
        pthread_mutex_lock(&rt->mu);
        rt->stop = 1;
        pthread_cond_signal(&rt->wake);
        pthread_mutex_unlock(&rt->mu);
        pthread_join(rt->thread, NULL);
    }
    model_risk_free(rt->risk);
    kernels_backend_free(rt->be);
    while (rt->versions) {
        runtime_version_t *v = rt->versions;
        rt->versions = v->next;
        free(v);
    }
    free(rt->spec_hash);
    pthread_mutex_destroy(&rt->mu);
    pthread_cond_destroy(&rt->wake);
    pthread_cond_destroy(&rt->done);
    free(rt);
}

const char *model_runtime_backend(const model_runtime_t *rt)
{
    return kernels_backend_reason(rt->be);
}

const char *model_runtime_risk_version(model_runtime_t *rt)
{
    pthread_mutex_lock(&rt->mu);
    const char *v = rt->risk_version;
    pthread_mutex_unlock(&rt->mu);
    return v;
}

int model_runtime_risk_score(model_runtime_t *rt, const float *x, size_t n, size_t width,
                             float *scores, const char **version, char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_RISK_SCORE, .x = x, .n = n, .width = width, .scores = scores};
    rt_submit(rt, &j);
    *version = j.version;
    if (j.rc < 0)
        rt_err(err, errlen, "%s", j.err);
    return j.rc;
}

int model_runtime_risk_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_RISK_RELOAD, .path = path};
    rt_submit(rt, &j);
    if (version)
        *version = j.version;
    if (j.rc != 0)
        rt_err(err, errlen, "%s", j.err);
    return j.rc;
}
