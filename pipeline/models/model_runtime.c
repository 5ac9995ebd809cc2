/* The model servers, their job queues and the hot swap of models (see model_runtime.h).
 *
 * A server is a thread with a queue of at most RUNTIME_QUEUE jobs and its own kernels backend; the
 * risk server runs risk jobs only and the news server news jobs only. A job lives on its
 * submitter's stack, which waits for it. Whatever a server's models hold (weights on its backend,
 * the encoder's scratch) is touched only by that server's thread once it has started. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "model_runtime.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"
#include "kernels.h"
#include "model_bert.h"
#include "model_news.h"
#include "model_ngram.h"
#include "model_pace.h"
#include "model_risk.h"

#define RUNTIME_QUEUE 8
#define RUNTIME_ERR_MAX 512
/* The longest a paced encoder steps aside at one step (model_pace.h): on a machine that never has
 * a CPU to spare it still does a step every so often, so that articles are scored, slowly. */
#define RUNTIME_PACE_MAX_WAIT_MS 100

typedef enum job_kind { JOB_SCORE, JOB_EXPLAIN, JOB_RELOAD } job_kind_t;

/* A request and its answer. */
typedef struct runtime_job {
    job_kind_t kind;
    const float *x; /* risk */
    size_t n, width;
    float *scores;            /* risk scores, or (n, width) attributions for JOB_EXPLAIN */
    const char *path;         /* reload */
    const char *const *texts; /* news */
    const size_t *lens;
    model_runtime_news_t *news;
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

/* A news model that served: kept until the runtime is freed, since rows borrow its labels. */
typedef struct runtime_news {
    struct runtime_news *next;
    model_news_t *m;
} runtime_news_t;

typedef struct rt_server rt_server_t;

struct rt_server {
    model_runtime_t *rt;
    void (*run)(rt_server_t *s, runtime_job_t *j); /* on the server's thread */
    pthread_t thread;
    int started;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the server: a job or stop */
    pthread_cond_t done; /* submitters: a job finished, or there is room in the queue */
    runtime_job_t *queue[RUNTIME_QUEUE];
    size_t head, count;
    int stop, busy;
    int running; /* the thread has set its priority and takes jobs */
    uint64_t jobs;
    double seconds;
    double yielded;      /* of seconds, those the pace made the thread step aside */
    const char *version; /* the active model's, interned; read under mu */
    const char *encoder; /* news: "bert" or "ngram" of the active heads; read under mu */
    model_runtime_priority_t priority; /* taken by the thread when it starts */

    /* The server's thread only, once started (before: model_runtime_new). */
    kernels_backend_t *be; /* made with the server's first model */
    runtime_version_t *versions;
    model_pace_t *pace; /* news at idle priority on a CPU: the encoder's steps are paced */
};

struct model_runtime {
    char *backend_name;
    int threads;
    char *spec_hash;
    size_t max_batch;

    pthread_mutex_t mu;  /* guards reason */
    char reason[512];    /* the first backend's kernels_backend_reason */
    char pace_note[256]; /* how the encoder is paced, for the log; set before the servers start */

    rt_server_t servers[MODEL_RUNTIME_SERVERS];

    /* Risk server. */
    model_risk_t *risk;
    /* News server: the encoders and the active heads (the newest of `retired`). */
    model_bert_t *bert;      /* NULL: no BERT encoder configured */
    model_ngram_t *ngram;    /* made for heads trained on the n-gram encoder */
    model_news_t *news;      /* NULL: none active */
    runtime_news_t *retired; /* every news model loaded, news included */
};

static double rt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *rt_intern(rt_server_t *s, const char *name)
{
    for (runtime_version_t *v = s->versions; v; v = v->next)
        if (strcmp(v->name, name) == 0)
            return v->name;
    size_t n = strlen(name) + 1;
    runtime_version_t *v = malloc(sizeof *v + n);
    if (!v)
        return NULL;
    memcpy(v->name, name, n);
    v->next = s->versions;
    s->versions = v;
    return v->name;
}

/* The server's backend, made on first use. @locality: the server's thread (or
 * model_runtime_new before it starts). */
static kernels_backend_t *rt_backend(rt_server_t *s, char *err, size_t errlen)
{
    model_runtime_t *rt = s->rt;
    if (s->be)
        return s->be;
    s->be = kernels_backend_new(rt->backend_name, rt->threads, err, errlen);
    if (!s->be)
        return NULL;
    pthread_mutex_lock(&rt->mu);
    if (!rt->reason[0])
        snprintf(rt->reason, sizeof rt->reason, "%s", kernels_backend_reason(s->be));
    pthread_mutex_unlock(&rt->mu);
    return s->be;
}

static void rt_set_active(rt_server_t *s, const char *version, const char *encoder)
{
    pthread_mutex_lock(&s->mu);
    s->version = version;
    s->encoder = encoder;
    pthread_mutex_unlock(&s->mu);
}

/* --- risk ------------------------------------------------------------------------------- */

/* Loads and checks a risk model; on success it replaces the active one. @locality: the risk
 * server's thread (or model_runtime_new before it starts). */
static int rt_risk_load(rt_server_t *s, const char *path, const char **version, char *err,
                        size_t errlen)
{
    model_runtime_t *rt = s->rt;
    kernels_backend_t *be = rt_backend(s, err, errlen);
    model_risk_t *m = be ? model_risk_load(be, path, err, errlen) : NULL;
    const char *v;
    if (!m)
        return -1;
    if (rt->spec_hash && strcmp(model_risk_spec_hash(m), rt->spec_hash) != 0) {
        errbuf_printf(err, errlen,
                      "%s: trained with feature spec %s but this daemon computes spec %s; retrain "
                      "with this daemon's features.spec",
                      path, model_risk_spec_hash(m), rt->spec_hash);
        model_risk_free(m);
        return -1;
    }
    if (!(v = rt_intern(s, model_risk_version(m)))) {
        errbuf_printf(err, errlen, "out of memory");
        model_risk_free(m);
        return -1;
    }
    model_risk_free(rt->risk);
    rt->risk = m;
    rt_set_active(s, v, NULL);
    if (version)
        *version = v;
    return 0;
}

/* Scores (or explains: JOB_EXPLAIN) in micro-batches of at most max_batch rows: bounds the work
 * area whatever the caller's batch size. */
static void rt_risk_score(rt_server_t *s, runtime_job_t *j)
{
    model_runtime_t *rt = s->rt;
    if (!rt->risk) {
        j->rc = 1;
        return;
    }
    if (j->width != model_risk_width(rt->risk)) {
        errbuf_printf(j->err, sizeof j->err, "feature vectors have %zu columns, the model %zu",
                      j->width, model_risk_width(rt->risk));
        j->rc = -1;
        return;
    }
    for (size_t s0 = 0; s0 < j->n; s0 += rt->max_batch) {
        size_t nb = j->n - s0 < rt->max_batch ? j->n - s0 : rt->max_batch;
        const float *x = j->x + s0 * j->width;
        int rc = j->kind == JOB_EXPLAIN
                     ? model_risk_explain(rt->risk, x, nb, j->scores + s0 * j->width, j->err,
                                          sizeof j->err)
                     : model_risk_score(rt->risk, x, nb, j->scores + s0, j->err, sizeof j->err);
        if (rc != 0) {
            j->rc = -1;
            return;
        }
    }
    j->version = s->version;
}

static void rt_risk_run(rt_server_t *s, runtime_job_t *j)
{
    if (j->kind == JOB_RELOAD)
        j->rc = rt_risk_load(s, j->path, &j->version, j->err, sizeof j->err);
    else
        rt_risk_score(s, j);
}

/* --- news ------------------------------------------------------------------------------- */

/* Checks heads m against the encoders this runtime has, making the n-gram encoder they were
 * trained on (into *ng) when they need one. */
static int rt_news_check(model_runtime_t *rt, const char *path, model_news_t *m, model_ngram_t **ng,
                         char *err, size_t errlen)
{
    if (strcmp(model_news_encoder(m), "bert") != 0) {
        uint32_t buckets;
        uint64_t seed;
        model_news_ngram_params(m, &buckets, &seed);
        *ng = model_ngram_new(buckets, model_news_dim(m), seed, err, errlen);
        return *ng ? 0 : -1;
    }
    if (!rt->bert) {
        errbuf_printf(err, errlen,
                      "%s: heads trained on the BERT encoder, but no encoder is configured (set "
                      "model.encoder_dir)",
                      path);
        return -1;
    }
    if (strcmp(model_news_encoder_sha256(m), model_bert_weights_sha256(rt->bert)) != 0) {
        errbuf_printf(err, errlen,
                      "%s: heads trained on encoder weights %.12s..., the configured encoder is "
                      "%.12s...; retrain them (vigil train news) on this encoder",
                      path, model_news_encoder_sha256(m), model_bert_weights_sha256(rt->bert));
        return -1;
    }
    if (model_news_dim(m) != model_bert_dim(rt->bert)) {
        errbuf_printf(err, errlen, "%s: heads take %zu-wide embeddings, the encoder makes %zu",
                      path, model_news_dim(m), model_bert_dim(rt->bert));
        return -1;
    }
    return 0;
}

/* Loads and checks news heads; on success they become the active heads (the previous ones stay
 * allocated: rows may still borrow their labels). @locality: the news server's thread (or
 * model_runtime_new before it starts). */
static int rt_news_load(rt_server_t *s, const char *path, const char **version, char *err,
                        size_t errlen)
{
    model_runtime_t *rt = s->rt;
    model_news_t *m = model_news_load(path, NULL, err, errlen);
    model_ngram_t *ng = NULL;
    runtime_news_t *keep = NULL;
    const char *v;

    if (!m)
        return -1;
    if (rt_news_check(rt, path, m, &ng, err, errlen) != 0)
        goto err;
    keep = malloc(sizeof *keep);
    if (!keep || !(v = rt_intern(s, model_news_version(m)))) {
        errbuf_printf(err, errlen, "out of memory");
        goto err;
    }
    keep->m = m;
    keep->next = rt->retired;
    rt->retired = keep;
    if (ng) {
        model_ngram_free(rt->ngram);
        rt->ngram = ng;
    }
    rt->news = m;
    rt_set_active(s, v, model_news_encoder(m));
    if (version)
        *version = v;
    return 0;
err:
    free(keep);
    model_ngram_free(ng);
    model_news_free(m);
    return -1;
}

/* Makes room in the caller's answer for n articles of the active heads' shape. */
static int rt_news_reserve(model_runtime_news_t *o, size_t n, size_t dim, size_t topics)
{
    if (n <= o->cap && dim <= o->cap_dim && topics <= o->cap_topics)
        return 0;
    n = n > o->cap ? n : o->cap;
    dim = dim > o->cap_dim ? dim : o->cap_dim;
    topics = topics > o->cap_topics ? topics : o->cap_topics;
    model_runtime_news_clear(o);
    o->embedding = malloc(n * dim * sizeof *o->embedding);
    o->sentiment_probs = malloc(n * MODEL_NEWS_N_SENTIMENT * sizeof *o->sentiment_probs);
    o->topic_probs = malloc(n * topics * sizeof *o->topic_probs);
    o->sentiment_idx = malloc(n * sizeof *o->sentiment_idx);
    o->topic_idx = malloc(n * sizeof *o->topic_idx);
    o->sentiment = malloc(n * sizeof *o->sentiment);
    o->topic = malloc(n * sizeof *o->topic);
    if (!o->embedding || !o->sentiment_probs || !o->topic_probs || !o->sentiment_idx ||
        !o->topic_idx || !o->sentiment || !o->topic) {
        model_runtime_news_clear(o);
        return -1;
    }
    o->cap = n;
    o->cap_dim = dim;
    o->cap_topics = topics;
    return 0;
}

static void rt_news_score(rt_server_t *s, runtime_job_t *j)
{
    model_runtime_t *rt = s->rt;
    model_news_t *m = rt->news;
    model_runtime_news_t *o = j->news;
    size_t n = j->n, dim, topics;
    if (!m) {
        j->rc = 1;
        return;
    }
    dim = model_news_dim(m);
    topics = model_news_n_topics(m);
    if (rt_news_reserve(o, n, dim, topics) != 0) {
        errbuf_printf(j->err, sizeof j->err, "out of memory for %zu articles", n);
        j->rc = -1;
        return;
    }
    int rc = strcmp(model_news_encoder(m), "bert") == 0
                 ? model_bert_encode(rt->bert, j->texts, j->lens, n, 1, o->embedding, j->err,
                                     sizeof j->err)
                 : model_ngram_encode(rt->ngram, j->texts, j->lens, n, o->embedding, j->err,
                                      sizeof j->err);
    if (rc != 0) {
        j->rc = -1;
        return;
    }
    model_news_classify(m, o->embedding, n, o->sentiment_idx, o->sentiment_probs, o->topic_idx,
                        o->topic_probs);
    for (size_t i = 0; i < n; i++) {
        o->sentiment[i] = model_news_sentiment_label(m, (size_t)o->sentiment_idx[i]);
        o->topic[i] = model_news_topic_label(m, (size_t)o->topic_idx[i]);
    }
    o->n = n;
    o->dim = dim;
    o->n_sentiment = MODEL_NEWS_N_SENTIMENT;
    o->n_topics = topics;
    o->version = s->version;
    j->version = s->version;
}

static void rt_news_run(rt_server_t *s, runtime_job_t *j)
{
    if (j->kind == JOB_RELOAD)
        j->rc = rt_news_load(s, j->path, &j->version, j->err, sizeof j->err);
    else
        rt_news_score(s, j);
}

/* --- servers ---------------------------------------------------------------------------- */

/* Lowers the calling thread's CPU priority. On Linux a thread's nice value and scheduling
 * policy are its own (setpriority on the thread id; sched_setscheduler(0) is the calling
 * thread). Lowering is always allowed; should it fail anyway, the thread keeps the process's
 * priority. A SCHED_IDLE thread is preempted at once by any other that wakes on its CPU, which is
 * what keeps the encoder out of the way of the fraud lane and PostgreSQL; the price is that on a
 * machine busy with other work it only gets the CPU time left over. */
static void rt_priority_take(model_runtime_priority_t priority)
{
    if (priority == MODEL_RUNTIME_PRIORITY_IDLE) {
        struct sched_param sp = {0};
        (void)sched_setscheduler(0, SCHED_IDLE, &sp);
    } else if (priority == MODEL_RUNTIME_PRIORITY_LOW) {
        pid_t tid = (pid_t)syscall(SYS_gettid);
        errno = 0;
        int now = getpriority(PRIO_PROCESS, (id_t)tid);
        if (errno == 0)
            (void)setpriority(PRIO_PROCESS, (id_t)tid, now + 10);
    }
}

static void *rt_server_main(void *arg)
{
    rt_server_t *s = arg;
    pthread_setname_np(pthread_self(), s->run == rt_risk_run ? "model-risk" : "model-news");
    rt_priority_take(s->priority);
    pthread_mutex_lock(&s->mu);
    s->running = 1;
    pthread_cond_broadcast(&s->done); /* rt_server_start waits for this */
    for (;;) {
        while (s->count == 0 && !s->stop)
            pthread_cond_wait(&s->wake, &s->mu);
        if (s->count == 0)
            break; /* stopping, and nothing left to answer */
        runtime_job_t *j = s->queue[s->head];
        s->head = (s->head + 1) % RUNTIME_QUEUE;
        s->count--;
        s->busy = 1;
        pthread_mutex_unlock(&s->mu);
        double t0 = rt_now();
        j->rc = 0;
        j->version = NULL;
        s->run(s, j);
        double took = rt_now() - t0, yielded = s->pace ? model_pace_take_waited(s->pace) : 0;
        pthread_mutex_lock(&s->mu);
        s->busy = 0;
        s->jobs++;
        s->seconds += took;
        s->yielded += yielded;
        j->done = 1;
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Queues j on s and waits for its answer: j->rc, with the job's message in err when it is < 0. */
static int rt_submit(rt_server_t *s, runtime_job_t *j, char *err, size_t errlen)
{
    j->done = 0;
    j->err[0] = '\0';
    pthread_mutex_lock(&s->mu);
    while (s->count == RUNTIME_QUEUE && !s->stop)
        pthread_cond_wait(&s->done, &s->mu);
    if (s->stop || !s->started) { /* the thread is gone or going: nobody would answer */
        pthread_mutex_unlock(&s->mu);
        errbuf_printf(err, errlen, "the model runtime is stopping");
        return -1;
    }
    s->queue[(s->head + s->count) % RUNTIME_QUEUE] = j;
    s->count++;
    pthread_cond_signal(&s->wake);
    while (!j->done)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (j->rc < 0)
        errbuf_printf(err, errlen, "%s", j->err);
    return j->rc;
}

static int rt_server_init(model_runtime_t *rt, rt_server_t *s,
                          void (*run)(rt_server_t *, runtime_job_t *), char *err, size_t errlen)
{
    s->rt = rt;
    s->run = run;
    if (pthread_mutex_init(&s->mu, NULL) != 0 || pthread_cond_init(&s->wake, NULL) != 0 ||
        pthread_cond_init(&s->done, NULL) != 0) {
        errbuf_printf(err, errlen, "cannot create the model server's locks");
        return -1;
    }
    return 0;
}

static int rt_server_start(rt_server_t *s, char *err, size_t errlen)
{
    int rc = pthread_create(&s->thread, NULL, rt_server_main, s);
    if (rc != 0) {
        errbuf_printf(err, errlen, "cannot start a model server thread: %s", strerror(rc));
        return -1;
    }
    /* Started once the thread runs, so that a caller sees it as it will serve (priority set). */
    pthread_mutex_lock(&s->mu);
    s->started = 1;
    while (!s->running)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void rt_server_stop(rt_server_t *s)
{
    pthread_mutex_lock(&s->mu);
    int started = s->started;
    s->stop = 1;
    pthread_cond_signal(&s->wake);
    pthread_cond_broadcast(&s->done); /* submitters waiting for room give up */
    pthread_mutex_unlock(&s->mu);
    if (started)
        pthread_join(s->thread, NULL);
}

static void rt_server_free(rt_server_t *s)
{
    if (!s->rt)
        return; /* never initialised */
    kernels_backend_free(s->be);
    model_pace_free(s->pace);
    while (s->versions) {
        runtime_version_t *v = s->versions;
        s->versions = v->next;
        free(v);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
}

/* --- API -------------------------------------------------------------------------------- */

/* Paces the BERT encoder when the news server runs at idle priority on a CPU (model_pace.h). On
 * a GPU the encoder's thread mostly waits for the device, and at low or normal priority sharing
 * the CPU is what was asked for. Without /proc/loadavg (a sandbox can hide it) the encoder runs
 * at SCHED_IDLE alone, which the log says. @locality: model_runtime_new, before the servers. */
static void rt_news_pace(model_runtime_t *rt, rt_server_t *news, kernels_backend_t *be)
{
    char why[200] = "";
    if (news->priority != MODEL_RUNTIME_PRIORITY_IDLE || strcmp(kernels_backend_name(be), "cpu"))
        return;
    if (!(news->pace = model_pace_new(RUNTIME_PACE_MAX_WAIT_MS, why, sizeof why))) {
        snprintf(rt->pace_note, sizeof rt->pace_note, "off: %s", why);
        return;
    }
    model_bert_set_yield(rt->bert, model_pace_step, news->pace);
    snprintf(rt->pace_note, sizeof rt->pace_note, "loadavg");
}

/* The configured models, loaded before the servers start. */
static int rt_load_configured(model_runtime_t *rt, const model_runtime_options_t *o, char *err,
                              size_t errlen)
{
    rt_server_t *risk = &rt->servers[MODEL_RUNTIME_RISK], *news = &rt->servers[MODEL_RUNTIME_NEWS];
    if (o->risk_path && o->risk_path[0] && rt_risk_load(risk, o->risk_path, NULL, err, errlen))
        return -1;
    if (o->encoder_dir && o->encoder_dir[0]) {
        kernels_backend_t *be = rt_backend(news, err, errlen);
        if (!be || !(rt->bert = model_bert_load(be, o->encoder_dir, o->max_seq ? o->max_seq : 256,
                                                err, errlen)))
            return -1;
        rt_news_pace(rt, news, be);
    }
    if (o->news_path && o->news_path[0] && rt_news_load(news, o->news_path, NULL, err, errlen))
        return -1;
    return 0;
}

model_runtime_t *model_runtime_new(const model_runtime_options_t *o, char *err, size_t errlen)
{
    model_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt) {
        errbuf_printf(err, errlen, "out of memory");
        return NULL;
    }
    rt->threads = o->threads;
    rt->max_batch = o->max_batch ? o->max_batch : 1024;
    if (pthread_mutex_init(&rt->mu, NULL) != 0) {
        free(rt);
        errbuf_printf(err, errlen, "cannot create the model runtime's lock");
        return NULL;
    }
    if (!(rt->backend_name = strdup(o->backend ? o->backend : "auto")) ||
        (o->spec_hash && !(rt->spec_hash = strdup(o->spec_hash)))) {
        errbuf_printf(err, errlen, "out of memory");
        goto err;
    }
    if (rt_server_init(rt, &rt->servers[MODEL_RUNTIME_RISK], rt_risk_run, err, errlen) != 0 ||
        rt_server_init(rt, &rt->servers[MODEL_RUNTIME_NEWS], rt_news_run, err, errlen) != 0)
        goto err;
    rt->servers[MODEL_RUNTIME_NEWS].priority = o->news_priority;
    snprintf(rt->pace_note, sizeof rt->pace_note, "none");
    if (rt_load_configured(rt, o, err, errlen) != 0)
        goto err;
    for (int i = 0; i < MODEL_RUNTIME_SERVERS; i++)
        if (rt_server_start(&rt->servers[i], err, errlen) != 0)
            goto err;
    return rt;
err:
    model_runtime_free(rt);
    return NULL;
}

void model_runtime_free(model_runtime_t *rt)
{
    if (!rt)
        return;
    for (int i = 0; i < MODEL_RUNTIME_SERVERS; i++)
        if (rt->servers[i].rt)
            rt_server_stop(&rt->servers[i]);
    /* The models before the backends they live on. */
    model_risk_free(rt->risk);
    model_bert_free(rt->bert);
    model_ngram_free(rt->ngram);
    while (rt->retired) {
        runtime_news_t *r = rt->retired;
        rt->retired = r->next;
        model_news_free(r->m);
        free(r);
    }
    for (int i = 0; i < MODEL_RUNTIME_SERVERS; i++)
        rt_server_free(&rt->servers[i]);
    free(rt->spec_hash);
    free(rt->backend_name);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

const char *model_runtime_news_pace(model_runtime_t *rt)
{
    return rt->pace_note; /* set before the servers start, never changed after */
}

const char *model_runtime_backend(model_runtime_t *rt)
{
    pthread_mutex_lock(&rt->mu);
    const char *r = rt->reason[0] ? rt->reason : "none";
    pthread_mutex_unlock(&rt->mu);
    return r; /* set once, never changed after */
}

/* A field the server sets under its mu, read under it. */
static const char *rt_snapshot(rt_server_t *s, const char *const *field)
{
    pthread_mutex_lock(&s->mu);
    const char *v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

const char *model_runtime_risk_version(model_runtime_t *rt)
{
    rt_server_t *s = &rt->servers[MODEL_RUNTIME_RISK];
    return rt_snapshot(s, &s->version);
}

int model_runtime_risk_score(model_runtime_t *rt, const float *x, size_t n, size_t width,
                             float *scores, const char **version, char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_SCORE, .x = x, .n = n, .width = width, .scores = scores};
    int rc = rt_submit(&rt->servers[MODEL_RUNTIME_RISK], &j, err, errlen);
    *version = j.version;
    return rc;
}

int model_runtime_risk_explain(model_runtime_t *rt, const float *x, size_t n, size_t width,
                               float *attr, const char **version, char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_EXPLAIN, .x = x, .n = n, .width = width, .scores = attr};
    int rc = rt_submit(&rt->servers[MODEL_RUNTIME_RISK], &j, err, errlen);
    *version = j.version;
    return rc;
}

int model_runtime_risk_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_RELOAD, .path = path};
    int rc = rt_submit(&rt->servers[MODEL_RUNTIME_RISK], &j, err, errlen);
    if (version)
        *version = j.version;
    return rc;
}

void model_runtime_news_clear(model_runtime_news_t *o)
{
    free(o->embedding);
    free(o->sentiment_probs);
    free(o->topic_probs);
    free(o->sentiment_idx);
    free(o->topic_idx);
    free((void *)o->sentiment);
    free((void *)o->topic);
    memset(o, 0, sizeof *o);
}

int model_runtime_news_score(model_runtime_t *rt, const char *const *texts, const size_t *lens,
                             size_t n, model_runtime_news_t *out, char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_SCORE, .texts = texts, .lens = lens, .n = n, .news = out};
    return rt_submit(&rt->servers[MODEL_RUNTIME_NEWS], &j, err, errlen);
}

int model_runtime_news_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_RELOAD, .path = path};
    int rc = rt_submit(&rt->servers[MODEL_RUNTIME_NEWS], &j, err, errlen);
    if (version)
        *version = j.version;
    return rc;
}

const char *model_runtime_news_version(model_runtime_t *rt)
{
    rt_server_t *s = &rt->servers[MODEL_RUNTIME_NEWS];
    return rt_snapshot(s, &s->version);
}

const char *model_runtime_news_encoder(model_runtime_t *rt)
{
    rt_server_t *s = &rt->servers[MODEL_RUNTIME_NEWS];
    return rt_snapshot(s, &s->encoder);
}

void model_runtime_stats(model_runtime_t *rt, model_runtime_server_t which,
                         model_runtime_stats_t *st)
{
    rt_server_t *s = &rt->servers[which];
    pthread_mutex_lock(&s->mu);
    *st = (model_runtime_stats_t){s->count, s->busy, s->jobs, s->seconds, s->yielded};
    pthread_mutex_unlock(&s->mu);
}
