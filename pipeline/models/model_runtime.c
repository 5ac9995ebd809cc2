/* The inference thread, its job queue and the hot swap of models (see model_runtime.h). */
#include "model_runtime.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "kernels.h"
#include "model_bert.h"
#include "model_news.h"
#include "model_ngram.h"
#include "model_risk.h"

#define RUNTIME_QUEUE 8
#define RUNTIME_ERR_MAX 512

typedef enum job_kind {
    JOB_RISK_SCORE,
    JOB_RISK_RELOAD,
    JOB_NEWS_SCORE,
    JOB_NEWS_RELOAD
} job_kind_t;

/* A request and its answer; lives on the submitter's stack until done. */
typedef struct runtime_job {
    job_kind_t kind;
    const float *x;
    size_t n, width;
    float *scores;
    const char *path;
    const char *const *texts;
    const size_t *lens;
    model_runtime_news_t *news; /* out, JOB_NEWS_SCORE */
    const char *version;        /* out */
    int rc;                     /* out */
    int done;
    char err[RUNTIME_ERR_MAX];
} runtime_job_t;

/* A news model that served: kept until the runtime is freed, since rows borrow its labels. */
typedef struct runtime_news {
    struct runtime_news *next;
    model_news_t *m;
} runtime_news_t;

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

    /* News: the encoders and the active heads (the newest of `retired`). */
    model_bert_t *bert;                      /* NULL: no BERT encoder configured */
    model_ngram_t *ngram;                    /* made for heads trained on the n-gram encoder */
    model_news_t *news;                      /* NULL: none active */
    const char *news_version, *news_encoder; /* read under mu */
    runtime_news_t *retired;                 /* every news model loaded, news included */
    /* Outputs of the last news job (n x ...), grown on demand. */
    size_t news_cap, news_cap_topics, news_cap_dim;
    float *emb, *sent_probs, *topic_probs;
    int32_t *sent_idx, *topic_idx;
    const char **sent_label, **topic_label;
};

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
        errbuf_printf(err, errlen,
                      "%s: trained with feature spec %s but this daemon computes spec %s; retrain "
                      "with this daemon's features.spec",
                      path, model_risk_spec_hash(m), rt->spec_hash);
        model_risk_free(m);
        return -1;
    }
    if (!(v = rt_intern(rt, model_risk_version(m)))) {
        errbuf_printf(err, errlen, "out of memory");
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

/* Loads and checks news heads against the encoders this runtime has; on success they become
 * the active heads (the previous ones stay allocated: rows may still borrow their labels).
 * @locality: the inference thread (or model_runtime_new before it starts). */
static int rt_news_load(model_runtime_t *rt, const char *path, const char **version, char *err,
                        size_t errlen)
{
    model_news_t *m = model_news_load(path, NULL, err, errlen);
    model_ngram_t *ng = NULL;
    runtime_news_t *keep = NULL;
    const char *v, *enc;

    if (!m)
        return -1;
    enc = model_news_encoder(m);
    if (strcmp(enc, "bert") == 0) {
        if (!rt->bert) {
            errbuf_printf(
                err, errlen,
                "%s: heads trained on the BERT encoder, but no encoder is configured (set "
                "model.encoder_dir)",
                path);
            goto err;
        }
        if (strcmp(model_news_encoder_sha256(m), model_bert_weights_sha256(rt->bert)) != 0) {
            errbuf_printf(
                err, errlen,
                "%s: heads trained on encoder weights %.12s..., the configured encoder is "
                "%.12s...; retrain them (vigil train news) on this encoder",
                path, model_news_encoder_sha256(m), model_bert_weights_sha256(rt->bert));
            goto err;
        }
        if (model_news_dim(m) != model_bert_dim(rt->bert)) {
            errbuf_printf(err, errlen, "%s: heads take %zu-wide embeddings, the encoder makes %zu",
                          path, model_news_dim(m), model_bert_dim(rt->bert));
            goto err;
        }
    } else {
        uint32_t buckets;
        uint64_t seed;
        model_news_ngram_params(m, &buckets, &seed);
        if (!(ng = model_ngram_new(buckets, model_news_dim(m), seed, err, errlen)))
            goto err;
    }
    keep = malloc(sizeof *keep);
    if (!keep || !(v = rt_intern(rt, model_news_version(m)))) {
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
    pthread_mutex_lock(&rt->mu);
    rt->news_version = v;
    rt->news_encoder = enc;
    pthread_mutex_unlock(&rt->mu);
    if (version)
        *version = v;
    return 0;
err:
    free(keep);
    model_ngram_free(ng);
    model_news_free(m);
    return -1;
}

/* The news answer buffers (rt_news_reserve sizes them). */
static void rt_news_buffers_free(model_runtime_t *rt)
{
    free(rt->emb);
    free(rt->sent_probs);
    free(rt->topic_probs);
    free(rt->sent_idx);
    free(rt->topic_idx);
    free(rt->sent_label);
    free(rt->topic_label);
}

/* Output arrays for n articles of the active heads' shape. */
static int rt_news_reserve(model_runtime_t *rt, size_t n, size_t dim, size_t topics)
{
    if (n <= rt->news_cap && dim <= rt->news_cap_dim && topics <= rt->news_cap_topics)
        return 0;
    n = n > rt->news_cap ? n : rt->news_cap;
    dim = dim > rt->news_cap_dim ? dim : rt->news_cap_dim;
    topics = topics > rt->news_cap_topics ? topics : rt->news_cap_topics;
    rt_news_buffers_free(rt);
    rt->emb = malloc(n * dim * sizeof *rt->emb);
    rt->sent_probs = malloc(n * MODEL_NEWS_N_SENTIMENT * sizeof *rt->sent_probs);
    rt->topic_probs = malloc(n * topics * sizeof *rt->topic_probs);
    rt->sent_idx = malloc(n * sizeof *rt->sent_idx);
    rt->topic_idx = malloc(n * sizeof *rt->topic_idx);
    rt->sent_label = malloc(n * sizeof *rt->sent_label);
    rt->topic_label = malloc(n * sizeof *rt->topic_label);
    if (!rt->emb || !rt->sent_probs || !rt->topic_probs || !rt->sent_idx || !rt->topic_idx ||
        !rt->sent_label || !rt->topic_label) {
        rt->news_cap = rt->news_cap_dim = rt->news_cap_topics = 0;
        return -1;
    }
    rt->news_cap = n;
    rt->news_cap_dim = dim;
    rt->news_cap_topics = topics;
    return 0;
}

static void rt_news_score(model_runtime_t *rt, runtime_job_t *j)
{
    model_news_t *m = rt->news;
    size_t n = j->n, dim, topics;
    if (!m) {
        j->rc = 1;
        return;
    }
    dim = model_news_dim(m);
    topics = model_news_n_topics(m);
    if (rt_news_reserve(rt, n, dim, topics) != 0) {
        errbuf_printf(j->err, sizeof j->err, "out of memory for %zu articles", n);
        j->rc = -1;
        return;
    }
    int rc =
        strcmp(model_news_encoder(m), "bert") == 0
            ? model_bert_encode(rt->bert, j->texts, j->lens, n, 1, rt->emb, j->err, sizeof j->err)
            : model_ngram_encode(rt->ngram, j->texts, j->lens, n, rt->emb, j->err, sizeof j->err);
    if (rc != 0) {
        j->rc = -1;
        return;
    }
    model_news_classify(m, rt->emb, n, rt->sent_idx, rt->sent_probs, rt->topic_idx,
                        rt->topic_probs);
    for (size_t i = 0; i < n; i++) {
        rt->sent_label[i] = model_news_sentiment_label(m, (size_t)rt->sent_idx[i]);
        rt->topic_label[i] = model_news_topic_label(m, (size_t)rt->topic_idx[i]);
    }
    *j->news = (model_runtime_news_t){n,
                                      dim,
                                      MODEL_NEWS_N_SENTIMENT,
                                      topics,
                                      rt->sent_label,
                                      rt->sent_probs,
                                      rt->topic_label,
                                      rt->topic_probs,
                                      rt->emb,
                                      rt->news_version};
    j->version = rt->news_version;
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
            errbuf_printf(j->err, sizeof j->err, "feature vectors have %zu columns, the model %zu",
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
    case JOB_NEWS_SCORE:
        rt_news_score(rt, j);
        return;
    case JOB_NEWS_RELOAD:
        j->rc = rt_news_load(rt, j->path, &j->version, j->err, sizeof j->err);
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

/* Queues j and waits for its answer: j->rc, with the job's message in err when it is < 0. */
static int rt_submit(model_runtime_t *rt, runtime_job_t *j, char *err, size_t errlen)
{
    j->done = 0;
    j->err[0] = '\0';
    pthread_mutex_lock(&rt->mu);
    while (rt->count == RUNTIME_QUEUE && !rt->stop)
        pthread_cond_wait(&rt->done, &rt->mu);
    if (rt->stop) { /* the thread is gone or going: nobody would answer */
        pthread_mutex_unlock(&rt->mu);
        errbuf_printf(err, errlen, "the model runtime is stopping");
        return -1;
    }
    rt->queue[(rt->head + rt->count) % RUNTIME_QUEUE] = j;
    rt->count++;
    pthread_cond_signal(&rt->wake);
    while (!j->done)
        pthread_cond_wait(&rt->done, &rt->mu);
    pthread_mutex_unlock(&rt->mu);
    if (j->rc < 0)
        errbuf_printf(err, errlen, "%s", j->err);
    return j->rc;
}

model_runtime_t *model_runtime_new(const model_runtime_options_t *o, char *err, size_t errlen)
{
    model_runtime_t *rt = calloc(1, sizeof *rt);
    if (!rt) {
        errbuf_printf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->wake, NULL);
    pthread_cond_init(&rt->done, NULL);
    rt->max_batch = o->max_batch ? o->max_batch : 1024;
    if (o->spec_hash && !(rt->spec_hash = strdup(o->spec_hash))) {
        errbuf_printf(err, errlen, "out of memory");
        goto err;
    }
    rt->be = kernels_backend_new(o->backend ? o->backend : "auto", o->threads, err, errlen);
    if (!rt->be)
        goto err;
    if (o->risk_path && o->risk_path[0] && rt_risk_load(rt, o->risk_path, NULL, err, errlen) != 0)
        goto err;
    if (o->encoder_dir && o->encoder_dir[0] &&
        !(rt->bert =
              model_bert_load(rt->be, o->encoder_dir, o->max_seq ? o->max_seq : 256, err, errlen)))
        goto err;
    if (o->news_path && o->news_path[0] && rt_news_load(rt, o->news_path, NULL, err, errlen) != 0)
        goto err;
    if (pthread_create(&rt->thread, NULL, rt_main, rt) != 0) {
        errbuf_printf(err, errlen, "cannot start the inference thread");
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
        pthread_cond_broadcast(&rt->done); /* submitters waiting for room give up */
        pthread_mutex_unlock(&rt->mu);
        pthread_join(rt->thread, NULL);
    }
    model_risk_free(rt->risk);
    model_bert_free(rt->bert);
    model_ngram_free(rt->ngram);
    while (rt->retired) {
        runtime_news_t *r = rt->retired;
        rt->retired = r->next;
        model_news_free(r->m);
        free(r);
    }
    rt_news_buffers_free(rt);
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

/* A field the inference thread sets under mu, read under it. */
static const char *rt_snapshot(model_runtime_t *rt, const char *const *field)
{
    pthread_mutex_lock(&rt->mu);
    const char *v = *field;
    pthread_mutex_unlock(&rt->mu);
    return v;
}

const char *model_runtime_risk_version(model_runtime_t *rt)
{
    return rt_snapshot(rt, &rt->risk_version);
}

int model_runtime_risk_score(model_runtime_t *rt, const float *x, size_t n, size_t width,
                             float *scores, const char **version, char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_RISK_SCORE, .x = x, .n = n, .width = width, .scores = scores};
    int rc = rt_submit(rt, &j, err, errlen);
    *version = j.version;
    return rc;
}

int model_runtime_risk_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_RISK_RELOAD, .path = path};
    int rc = rt_submit(rt, &j, err, errlen);
    if (version)
        *version = j.version;
    return rc;
}

int model_runtime_news_score(model_runtime_t *rt, const char *const *texts, const size_t *lens,
                             size_t n, model_runtime_news_t *out, char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_NEWS_SCORE, .texts = texts, .lens = lens, .n = n, .news = out};
    return rt_submit(rt, &j, err, errlen);
}

int model_runtime_news_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen)
{
    runtime_job_t j = {.kind = JOB_NEWS_RELOAD, .path = path};
    int rc = rt_submit(rt, &j, err, errlen);
    if (version)
        *version = j.version;
    return rc;
}

const char *model_runtime_news_version(model_runtime_t *rt)
{
    return rt_snapshot(rt, &rt->news_version);
}

const char *model_runtime_news_encoder(model_runtime_t *rt)
{
    return rt_snapshot(rt, &rt->news_encoder);
}
