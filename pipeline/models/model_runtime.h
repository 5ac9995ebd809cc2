/* The model runtime: the kernels backend, the active models, and the inference thread that runs
 * them.
 *
 * Every model call is a job handed to the inference thread through a small bounded queue; the
 * caller waits for its job. So the backend (a CUDA stream, OpenBLAS's threads) is only ever
 * driven from one thread, and a model is replaced only between two jobs: a reload loads and
 * checks the new file on the inference thread, and swaps it in only when it is complete and
 * valid; a bad file is refused with the reason and the running model keeps serving. Every
 * result carries the version of the model that produced it.
 *
 * Version strings handed out stay valid until model_runtime_free (the runtime keeps every version
 * it has served), so rows may borrow them until they are written. */
#ifndef VIGIL_MODEL_RUNTIME_H
#define VIGIL_MODEL_RUNTIME_H

#include <stddef.h>

typedef struct model_runtime_options {
    const char *backend;     /* kernels backend: "auto", "cpu", "cuda", "cuda:N" */
    int threads;             /* CPU backend threads (0: OpenBLAS's default) */
    const char *risk_path;   /* risk model file; NULL or "": none (rows stay unscored) */
    const char *spec_hash;   /* the feature spec the daemon computes: the risk model must match */
    size_t max_batch;        /* most rows one model call takes; bigger jobs are split */
    const char *news_path;   /* news heads file; NULL or "": articles stay unscored */
    const char *encoder_dir; /* BERT model folder for heads trained on it; NULL or "": none */
    int max_seq;             /* encoder input limit in tokens (2..512; 0: 256) */
} model_runtime_options_t;

typedef struct model_runtime model_runtime_t;

/* Creates the backend, loads the configured models (a bad file is an error here: a daemon should
 * not start with a model it was told to use and cannot) and starts the inference thread. NULL
 * with err. */
model_runtime_t *model_runtime_new(const model_runtime_options_t *o, char *err, size_t errlen);
/* Stops the inference thread (after the job it is running) and frees everything. */
void model_runtime_free(model_runtime_t *rt);

/* Which backend runs and why (kernels_backend_reason), for the log. */
const char *model_runtime_backend(const model_runtime_t *rt);
/* The active risk model's version, or NULL when none (a snapshot: it may change right after). */
const char *model_runtime_risk_version(model_runtime_t *rt);

/* Scores n feature vectors x (n x width) into scores (n). *version gets the version of the model
 * that scored them. Returns 0, 1 when no risk model is active (nothing scored, *version NULL),
 * or -1 with err. Blocks until done. */
int model_runtime_risk_score(model_runtime_t *rt, const float *x, size_t n, size_t width,
                             float *scores, const char **version, char *err, size_t errlen);

/* Replaces the risk model with the file at path, between two jobs. Returns 0 when the new model
 * is active (its version in *version when not NULL), or -1 with err when the file was refused
 * (the previous model, if any, stays active). Blocks until the inference thread has done it. */
int model_runtime_risk_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen);

/* What the news model made of a batch of articles; runtime-owned, valid until the next
 * model_runtime_news_score. Label strings and the version stay valid until model_runtime_free. */
typedef struct model_runtime_news {
    size_t n, dim, n_sentiment, n_topics;
    const char *const *sentiment; /* (n) labels */
    const float *sentiment_probs; /* (n, n_sentiment) */
    const char *const *topic;     /* (n) labels */
    const float *topic_probs;     /* (n, n_topics) */
    const float *embedding;       /* (n, dim), L2-normalised */
    const char *version;
} model_runtime_news_t;

/* Encodes and classifies n texts (texts[i], lens[i] bytes of UTF-8). Returns 0 with *out filled,
 * 1 when no news model is active, or -1 with err. Blocks until done. */
int model_runtime_news_score(model_runtime_t *rt, const char *const *texts, const size_t *lens,
                             size_t n, model_runtime_news_t *out, char *err, size_t errlen);
/* Replaces the news heads with the file at path, as model_runtime_risk_reload. */
int model_runtime_news_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen);
/* The active news model's version and encoder ("bert" or "ngram"), or NULL when none. */
const char *model_runtime_news_version(model_runtime_t *rt);
const char *model_runtime_news_encoder(model_runtime_t *rt);

#endif
