/* The model runtime: the active models, and one inference thread per model that runs them.
 *
 * There are two models, the risk MLP and the news encoder with its heads, and each has a server
 * of its own: a thread, a small bounded job queue and a kernels backend. A caller hands its job
 * to the model's server and waits for it, so a risk job never queues behind an encoder job: the
 * fraud lane's latency does not depend on how many articles are being encoded. On a GPU both
 * backends are streams of the same device (kernels.h); on the CPU they share the cores.
 *
 * A model is replaced only between two jobs of its server: a reload loads and checks the new file
 * on that server's thread, and swaps it in only when it is complete and valid; a bad file is
 * refused with the reason and the running model keeps serving. Every result carries the version
 * of the model that produced it.
 *
 * Version strings and label strings handed out stay valid until model_runtime_free (the runtime
 * keeps every model version and every set of heads it has served), so rows may borrow them until
 * they are written. */
#ifndef VIGIL_MODEL_RUNTIME_H
#define VIGIL_MODEL_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

typedef enum model_runtime_priority {
    MODEL_RUNTIME_PRIORITY_NORMAL, /* as the process */
    MODEL_RUNTIME_PRIORITY_LOW,    /* nice + 10 */
    MODEL_RUNTIME_PRIORITY_IDLE,   /* SCHED_IDLE: only CPU time nothing else wants */
} model_runtime_priority_t;

typedef struct model_runtime_options {
    const char *backend;     /* kernels backend: "auto", "cpu", "cuda", "cuda:N" */
    int threads;             /* CPU backend threads (0: OpenBLAS's default) */
    const char *risk_path;   /* risk model file; NULL or "": none (rows stay unscored) */
    const char *spec_hash;   /* the feature spec the daemon computes: the risk model must match */
    size_t max_batch;        /* most rows one model call takes; bigger jobs are split */
    const char *news_path;   /* news heads file; NULL or "": articles stay unscored */
    const char *encoder_dir; /* BERT model folder for heads trained on it; NULL or "": none */
    int max_seq;             /* encoder input limit in tokens (2..512; 0: 256) */
    /* The news server thread's CPU priority (Linux: per thread). On a CPU the encoder keeps a
     * core busy while articles wait; below normal, the threads that score events and write
     * results go first. At idle on a CPU its steps are also paced by the machine's runnable
     * threads, so that PostgreSQL and other processes go first too (model_pace.h). Its BLAS
     * threads (threads > 1) keep the process's priority. */
    model_runtime_priority_t news_priority;
} model_runtime_options_t;

typedef struct model_runtime model_runtime_t;

/* Loads the configured models (a bad file is an error here: a daemon should not start with a
 * model it was told to use and cannot) and starts one server per model. A model's backend is
 * created when its first model is loaded, so a runtime with only a risk model holds no encoder
 * backend. NULL with err. */
model_runtime_t *model_runtime_new(const model_runtime_options_t *o, char *err, size_t errlen);
/* Stops the servers (each after the job it is running) and frees everything. */
void model_runtime_free(model_runtime_t *rt);

/* How the news encoder steps aside for other work (model_pace.h), for the log: "loadavg" (paced:
 * news priority idle on a CPU), "none" (not paced), or "off: " and why pacing was wanted but is
 * not possible. */
const char *model_runtime_news_pace(model_runtime_t *rt);

/* Which backend runs and why (kernels_backend_reason of the first backend created), for the
 * log; "none" before any model is loaded. */
const char *model_runtime_backend(model_runtime_t *rt);
/* The active risk model's version, or NULL when none (a snapshot: it may change right after). */
const char *model_runtime_risk_version(model_runtime_t *rt);

/* Scores n feature vectors x (n x width) into scores (n). *version gets the version of the model
 * that scored them. Returns 0, 1 when no risk model is active (nothing scored, *version NULL),
 * or -1 with err. Blocks until done. @locality: any thread. */
int model_runtime_risk_score(model_runtime_t *rt, const float *x, size_t n, size_t width,
                             float *scores, const char **version, char *err, size_t errlen);

/* Why the active risk model scores n feature vectors x (n x width) as it does: input x gradient
 * (model_risk_explain) into attr (n x width). *version gets the version that explained them, so
 * that a caller can tell a model swapped in since it scored. Returns 0, 1 when no risk model is
 * active, or -1 with err. Blocks until done. @locality: any thread. */
int model_runtime_risk_explain(model_runtime_t *rt, const float *x, size_t n, size_t width,
                               float *attr, const char **version, char *err, size_t errlen);

/* Replaces the risk model with the file at path, between two jobs. Returns 0 when the new model
 * is active (its version in *version when not NULL), or -1 with err when the file was refused
 * (the previous model, if any, stays active). Blocks until the risk server has done it. */
int model_runtime_risk_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen);

/* What the news model made of a batch of articles. The caller owns it (zero it before first
 * use) and its arrays, which model_runtime_news_score grows as needed; free them with
 * model_runtime_news_clear. Label strings and the version are the runtime's (see the top). */
typedef struct model_runtime_news {
    size_t n, dim, n_sentiment, n_topics;
    const char **sentiment; /* (n) labels */
    float *sentiment_probs; /* (n, n_sentiment) */
    const char **topic;     /* (n) labels */
    float *topic_probs;     /* (n, n_topics) */
    float *embedding;       /* (n, dim), L2-normalised */
    const char *version;
    /* The arrays' room, in articles, embedding width and topics. */
    size_t cap, cap_dim, cap_topics;
    int32_t *sentiment_idx, *topic_idx; /* (n) scratch of the classifier */
} model_runtime_news_t;

void model_runtime_news_clear(model_runtime_news_t *out);

/* Encodes and classifies n texts (texts[i], lens[i] bytes of UTF-8) into *out. Returns 0, 1 when
 * no news model is active, or -1 with err. Blocks until done. @locality: any thread. */
int model_runtime_news_score(model_runtime_t *rt, const char *const *texts, const size_t *lens,
                             size_t n, model_runtime_news_t *out, char *err, size_t errlen);
/* Replaces the news heads with the file at path, as model_runtime_risk_reload. */
int model_runtime_news_reload(model_runtime_t *rt, const char *path, const char **version,
                              char *err, size_t errlen);
/* The active news model's version and encoder ("bert" or "ngram"), or NULL when none. */
const char *model_runtime_news_version(model_runtime_t *rt);
const char *model_runtime_news_encoder(model_runtime_t *rt);

/* The two servers, for metrics. */
typedef enum model_runtime_server {
    MODEL_RUNTIME_RISK,
    MODEL_RUNTIME_NEWS,
    MODEL_RUNTIME_SERVERS
} model_runtime_server_t;

typedef struct model_runtime_stats {
    size_t queued;  /* jobs waiting, not counting the one running */
    int busy;       /* a job is running */
    uint64_t jobs;  /* jobs finished so far */
    double seconds; /* time spent running them */
    double yielded; /* of seconds, those a paced encoder spent stepping aside (model_pace.h) */
} model_runtime_stats_t;

/* A snapshot of one server's queue. @locality: any thread. */
void model_runtime_stats(model_runtime_t *rt, model_runtime_server_t which,
                         model_runtime_stats_t *st);

#endif
