/* The news heads: file layout, loading with every check, classification on the host (see
 * model_news.h). */
#include "model_news.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "json.h"
#include "model_file.h"
#include "train.h"

#define NEWS_VERSION_MAX 128
#define NEWS_DIM_MAX 65536
/* model_ngram_new's limits on its dimension. */
#define NEWS_NGRAM_DIM_MIN 64
#define NEWS_NGRAM_DIM_MAX 4096

const char *const model_news_sentiment_names[MODEL_NEWS_N_SENTIMENT] = {"negative", "neutral",
                                                                        "positive"};

struct model_news {
    char version[NEWS_VERSION_MAX];
    const char *encoder;     /* "bert" or "ngram", static */
    char encoder_sha256[65]; /* bert; "" for ngram */
    uint32_t ngram_buckets;  /* ngram */
    uint64_t ngram_seed;     /* ngram */
    size_t dim, n_topic;
    float *sent_w, *sent_b;   /* (dim, 3), (3) */
    float *topic_w, *topic_b; /* (dim, n_topic), (n_topic) */
    char **topic_labels;      /* (n_topic) */
};

static int news_is_sha256(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 64;
}

static int news_all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Topic labels: 1..MODEL_NEWS_TOPICS_MAX non-empty, unique names. NULL when fine, else what is
 * wrong (a static string). */
static const char *news_check_topics(const char *const *labels, size_t n)
{
    if (n < 1 || n > MODEL_NEWS_TOPICS_MAX)
        return "must list 1..1024 topics";
    for (size_t i = 0; i < n; i++) {
        if (!labels[i] || !labels[i][0])
            return "has an empty topic name";
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                return "names a topic twice";
    }
    return NULL;
}

/* ---- writing ---- */

static int news_check_heads(const char *path, const model_news_heads_t *h, char *err, size_t errlen)
{
    const char *why;
    if (h->dim < 1 || h->dim > NEWS_DIM_MAX) {
        errbuf_printf(err, errlen, "%s: embedding width %zu is outside 1..%d", path, h->dim,
                      NEWS_DIM_MAX);
        return -1;
    }
    if (h->n_sentiment != MODEL_NEWS_N_SENTIMENT || !h->sentiment_labels) {
        errbuf_printf(err, errlen, "%s: the sentiment head must have 3 classes, not %zu", path,
                      h->n_sentiment);
        return -1;
    }
    for (size_t i = 0; i < MODEL_NEWS_N_SENTIMENT; i++)
        if (!h->sentiment_labels[i] ||
            strcmp(h->sentiment_labels[i], model_news_sentiment_names[i]) != 0) {
            errbuf_printf(
                err, errlen,
                "%s: the sentiment labels must be negative, neutral, positive in that order", path);
            return -1;
        }
    if (!h->topic_labels) {
        errbuf_printf(err, errlen, "%s: the topic labels are missing", path);
        return -1;
    }
    if ((why = news_check_topics((const char *const *)h->topic_labels, h->n_topic)) != NULL) {
        errbuf_printf(err, errlen, "%s: the topic labels %s", path, why);
        return -1;
    }
    if (!h->sent_w || !h->sent_b || !h->topic_w || !h->topic_b) {
        errbuf_printf(err, errlen, "%s: a head's weights are missing", path);
        return -1;
    }
    if (!news_all_finite(h->sent_w, h->dim * MODEL_NEWS_N_SENTIMENT) ||
        !news_all_finite(h->sent_b, MODEL_NEWS_N_SENTIMENT) ||
        !news_all_finite(h->topic_w, h->dim * h->n_topic) ||
        !news_all_finite(h->topic_b, h->n_topic)) {
        errbuf_printf(err, errlen, "%s: the weights hold a NaN or an infinity", path);
        return -1;
    }
    return 0;
}

/* Writes the heads for the bert encoder (encoder_sha256) or, when it is NULL, the ngram one. */
static int news_save(const char *path, const model_news_heads_t *h, const char *version,
                     const char *encoder_sha256, uint32_t buckets, uint64_t seed,
                     const char *training_json, char *version_out, size_t cap, char *err,
                     size_t errlen)
{
    char sha[65], ver[NEWS_VERSION_MAX], dim[32], jerr[200], nb[32], ns[32];
    char *sent_labels = NULL, *topic_labels = NULL;
    json_value_t *tj = NULL;
    int rc = -1;

    if (news_check_heads(path, h, err, errlen) != 0)
        return -1;
    if (!training_json)
        training_json = "{}";
    tj = json_parse(training_json, strlen(training_json), jerr, sizeof jerr);
    if (!tj || tj->type != JSON_OBJECT) {
        errbuf_printf(err, errlen, "%s: the training record is not a JSON object%s%s", path,
                      tj ? "" : ": ", tj ? "" : jerr);
        goto out;
    }
    if (version && (!version[0] || strlen(version) >= NEWS_VERSION_MAX)) {
        errbuf_printf(err, errlen, "%s: the version must be 1..%d characters", path,
                      NEWS_VERSION_MAX - 1);
        goto out;
    }
    int64_t e = (int64_t)h->dim, t = (int64_t)h->n_topic;
    model_file_tensor_out_t ts[4] = {
        {"sentiment.weight", h->sent_w, 2, {e, MODEL_NEWS_N_SENTIMENT}},
        {"sentiment.bias", h->sent_b, 1, {MODEL_NEWS_N_SENTIMENT}},
        {"topic.weight", h->topic_w, 2, {e, t}},
        {"topic.bias", h->topic_b, 1, {t}},
    };
    if (version) {
        snprintf(ver, sizeof ver, "%s", version);
    } else {
        if (model_file_tensors_sha256(ts, 4, sha, err, errlen) != 0)
            goto out;
        snprintf(ver, sizeof ver, "news-%.12s", sha);
    }
    sent_labels = json_string_array((const char *const *)h->sentiment_labels, h->n_sentiment);
    topic_labels = json_string_array((const char *const *)h->topic_labels, h->n_topic);
    if (!sent_labels || !topic_labels) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    snprintf(dim, sizeof dim, "%zu", h->dim);
    const char *keys[9] = {"vigil.arch",          "vigil.version",          "vigil.encoder",
                           "vigil.embedding_dim", "vigil.labels.sentiment", "vigil.labels.topic",
                           "vigil.training"};
    const char *vals[9] = {"news_heads", ver,         encoder_sha256 ? "bert" : "ngram",
                           dim,          sent_labels, topic_labels,
                           training_json};
    size_t nk = 7;
    if (encoder_sha256) {
        keys[nk] = "vigil.encoder_sha256";
        vals[nk++] = encoder_sha256;
    } else {
        snprintf(nb, sizeof nb, "%" PRIu32, buckets);
        snprintf(ns, sizeof ns, "%" PRIu64, seed);
        keys[nk] = "vigil.ngram_buckets";
        vals[nk++] = nb;
        keys[nk] = "vigil.ngram_seed";
        vals[nk++] = ns;
    }
    if (model_file_write(path, keys, vals, nk, ts, 4, NULL, err, errlen) != 0)
        goto out;
    if (version_out)
        snprintf(version_out, cap, "%s", ver);
    rc = 0;
out:
    json_free(tj);
    free(sent_labels);
    free(topic_labels);
    return rc;
}

int model_news_save(const char *path, const model_news_heads_t *h, const char *version,
                    const char *encoder_sha256, const char *training_json, char *version_out,
                    size_t cap, char *err, size_t errlen)
{
    if (!encoder_sha256 || !news_is_sha256(encoder_sha256)) {
        errbuf_printf(err, errlen, "%s: the encoder sha256 must be 64 lower-case hex digits", path);
        return -1;
    }
    return news_save(path, h, version, encoder_sha256, 0, 0, training_json, version_out, cap, err,
                     errlen);
}

/* Whether the n-gram encoder makes dim dimensions: a multiple of 64 in 64..4096. */
static int news_ngram_dim_ok(size_t dim)
{
    return dim >= NEWS_NGRAM_DIM_MIN && dim <= NEWS_NGRAM_DIM_MAX && dim % 64 == 0;
}

int model_news_save_ngram(const char *path, const model_news_heads_t *h, const char *version,
                          uint32_t buckets, uint64_t seed, const char *training_json,
                          char *version_out, size_t cap, char *err, size_t errlen)
{
    if (buckets == 0) {
        errbuf_printf(err, errlen, "%s: the n-gram encoder needs at least one bucket", path);
        return -1;
    }
    if (!news_ngram_dim_ok(h->dim)) {
        errbuf_printf(err, errlen,
                      "%s: heads for the n-gram encoder take a multiple of 64 in 64..4096 "
                      "dimensions, not %zu",
                      path, h->dim);
        return -1;
    }
    return news_save(path, h, version, NULL, buckets, seed, training_json, version_out, cap, err,
                     errlen);
}

/* ---- loading ---- */

void model_news_free(model_news_t *m)
{
    if (!m)
        return;
    if (m->topic_labels)
        for (size_t i = 0; i < m->n_topic; i++)
            free(m->topic_labels[i]);
    free(m->topic_labels);
    free(m->sent_w);
    free(m->sent_b);
    free(m->topic_w);
    free(m->topic_b);
    free(m);
}

/* A decimal without sign, leading zeros or anything around it that fits 64 bits. */
static int news_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!s[0] || (s[0] == '0' && s[1]))
        return -1;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The metadata key as a JSON array of strings; NULL with err. */
static json_value_t *news_meta_strings(const model_file_t *mf, const char *key, char *err,
                                       size_t errlen)
{
    char jerr[200];
    const char *s = model_file_meta_need(mf, key, err, errlen);
    json_value_t *v;
    if (!s)
        return NULL;
    if (!(v = json_parse(s, strlen(s), jerr, sizeof jerr))) {
        errbuf_printf(err, errlen, "%s: metadata %s: %s", mf->path, key, jerr);
        return NULL;
    }
    int ok = v->type == JSON_ARRAY;
    for (size_t i = 0; ok && i < v->n; i++)
        ok = v->items[i].type == JSON_STRING;
    if (!ok) {
        errbuf_printf(err, errlen, "%s: metadata %s must be a JSON array of strings", mf->path,
                      key);
        json_free(v);
        return NULL;
    }
    return v;
}

/* A copy of the F32 tensor name of the given shape, checked finite; NULL with err. */
static float *news_tensor(model_file_t *mf, const char *name, int ndim, const int64_t *shape,
                          char *err, size_t errlen)
{
    const float *src = model_file_f32(mf, name, ndim, shape, err, errlen);
    size_t n = (size_t)shape[0] * (ndim == 2 ? (size_t)shape[1] : 1);
    float *dst;
    if (!src)
        return NULL;
    if (!news_all_finite(src, n)) {
        errbuf_printf(err, errlen, "%s: tensor %s holds a NaN or an infinity", mf->path, name);
        return NULL;
    }
    if (!(dst = malloc(n * sizeof *dst))) {
        errbuf_printf(err, errlen, "%s: out of memory", mf->path);
        return NULL;
    }
    memcpy(dst, src, n * sizeof *dst);
    return dst;
}

/* vigil.encoder "bert": the encoder's weights sha256, which must be encoder_sha256 when the caller
 * gives one. */
static int news_load_bert(model_news_t *m, const model_file_t *mf, const char *encoder_sha256,
                          char *err, size_t errlen)
{
    const char *path = mf->path;
    const char *enc_sha = model_file_meta_need(mf, "vigil.encoder_sha256", err, errlen);

    if (!enc_sha)
        return -1;
    if (!news_is_sha256(enc_sha)) {
        errbuf_printf(err, errlen, "%s: vigil.encoder_sha256 must be 64 lower-case hex digits",
                      path);
        return -1;
    }
    if (encoder_sha256 && strcmp(enc_sha, encoder_sha256) != 0) {
        errbuf_printf(err, errlen,
                      "%s: the heads were trained on another encoder (weights sha256 %.12s..., "
                      "this encoder's is %.12s...): retrain them with `vigil train news`",
                      path, enc_sha, encoder_sha256);
        return -1;
    }
    m->encoder = "bert";
    snprintf(m->encoder_sha256, sizeof m->encoder_sha256, "%s", enc_sha);
    return 0;
}

/* vigil.encoder "ngram": its buckets and seed. m->dim must be a width the n-gram encoder makes,
 * and refused when the caller runs a BERT encoder (encoder_sha256 not NULL). */
static int news_load_ngram(model_news_t *m, const model_file_t *mf, const char *encoder_sha256,
                           char *err, size_t errlen)
{
    const char *path = mf->path;
    const char *nb = model_file_meta_need(mf, "vigil.ngram_buckets", err, errlen);
    const char *ns = nb ? model_file_meta_need(mf, "vigil.ngram_seed", err, errlen) : NULL;
    uint64_t b = 0, sd = 0;

    if (!ns)
        return -1;
    if (news_parse_u64(nb, &b) != 0 || b < 1 || b > UINT32_MAX) {
        errbuf_printf(err, errlen, "%s: vigil.ngram_buckets \"%s\" is not a count in 1..%" PRIu32,
                      path, nb, UINT32_MAX);
        return -1;
    }
    if (news_parse_u64(ns, &sd) != 0) {
        errbuf_printf(err, errlen, "%s: vigil.ngram_seed \"%s\" is not a decimal 64-bit number",
                      path, ns);
        return -1;
    }
    if (!news_ngram_dim_ok(m->dim)) {
        errbuf_printf(err, errlen,
                      "%s: vigil.embedding_dim %zu: the n-gram encoder makes a multiple of 64 in "
                      "64..4096",
                      path, m->dim);
        return -1;
    }
    if (encoder_sha256) {
        errbuf_printf(err, errlen,
                      "%s: the heads were trained on the n-gram encoder, not a BERT encoder", path);
        return -1;
    }
    m->encoder = "ngram";
    m->ngram_buckets = (uint32_t)b;
    m->ngram_seed = sd;
    return 0;
}

/* vigil.labels.sentiment, which must be the three of model_news_sentiment_names in order, and
 * vigil.labels.topic, checked and copied into m->topic_labels. */
static int news_load_labels(model_news_t *m, const model_file_t *mf, char *err, size_t errlen)
{
    const char *path = mf->path;
    json_value_t *sv = NULL, *tv = NULL;
    int rc = -1;

    if (!(sv = news_meta_strings(mf, "vigil.labels.sentiment", err, errlen)) ||
        !(tv = news_meta_strings(mf, "vigil.labels.topic", err, errlen)))
        goto out;
    int sent_ok = sv->n == MODEL_NEWS_N_SENTIMENT;
    for (size_t i = 0; sent_ok && i < sv->n; i++)
        sent_ok = strcmp(sv->items[i].string, model_news_sentiment_names[i]) == 0;
    if (!sent_ok) {
        errbuf_printf(err, errlen,
                      "%s: vigil.labels.sentiment must be [\"negative\",\"neutral\",\"positive\"]",
                      path);
        goto out;
    }
    const char **names = malloc((tv->n ? tv->n : 1) * sizeof *names);
    if (!names) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < tv->n; i++)
        names[i] = tv->items[i].string;
    const char *why = news_check_topics(names, tv->n);
    free(names);
    if (why) {
        errbuf_printf(err, errlen, "%s: vigil.labels.topic %s", path, why);
        goto out;
    }
    if (!(m->topic_labels = calloc(tv->n, sizeof *m->topic_labels))) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    m->n_topic = tv->n;
    for (size_t i = 0; i < tv->n; i++)
        if (!(m->topic_labels[i] = strdup(tv->items[i].string))) {
            errbuf_printf(err, errlen, "%s: out of memory", path);
            goto out;
        }
    rc = 0;
out:
    json_free(sv);
    json_free(tv);
    return rc;
}

/* mf's metadata into m, checked (the tensors are model_news_load's): the version, the embedding
 * width, the encoder the heads were trained on (against encoder_sha256, as model_news_load says),
 * the training record (a JSON object), the labels. */
static int news_load_meta(model_news_t *m, const model_file_t *mf, const char *encoder_sha256,
                          char *err, size_t errlen)
{
    const char *path = mf->path, *version, *enc, *dim, *training;
    char jerr[200], *end = NULL;

    if (!(version = model_file_meta_need(mf, "vigil.version", err, errlen)) ||
        !(enc = model_file_meta_need(mf, "vigil.encoder", err, errlen)) ||
        !(dim = model_file_meta_need(mf, "vigil.embedding_dim", err, errlen)) ||
        !(training = model_file_meta_need(mf, "vigil.training", err, errlen)))
        return -1;
    if (!version[0] || strlen(version) >= NEWS_VERSION_MAX) {
        errbuf_printf(err, errlen, "%s: vigil.version must be 1..%d characters", path,
                      NEWS_VERSION_MAX - 1);
        return -1;
    }
    snprintf(m->version, sizeof m->version, "%s", version);
    unsigned long d = dim[0] >= '1' && dim[0] <= '9' ? strtoul(dim, &end, 10) : 0;
    if (d < 1 || d > NEWS_DIM_MAX || !end || *end) {
        errbuf_printf(err, errlen, "%s: vigil.embedding_dim \"%s\" is not a width in 1..%d", path,
                      dim, NEWS_DIM_MAX);
        return -1;
    }
    m->dim = d;
    if (strcmp(enc, "bert") == 0) {
        if (news_load_bert(m, mf, encoder_sha256, err, errlen) != 0)
            return -1;
    } else if (strcmp(enc, "ngram") == 0) {
        if (news_load_ngram(m, mf, encoder_sha256, err, errlen) != 0)
            return -1;
    } else {
        errbuf_printf(err, errlen, "%s: vigil.encoder \"%s\" is not supported (bert, ngram)", path,
                      enc);
        return -1;
    }
    json_value_t *tr = json_parse(training, strlen(training), jerr, sizeof jerr);
    int tr_ok = tr && tr->type == JSON_OBJECT;
    json_free(tr);
    if (!tr_ok) {
        errbuf_printf(err, errlen, "%s: metadata vigil.training must be a JSON object", path);
        return -1;
    }
    return news_load_labels(m, mf, err, errlen);
}

model_news_t *model_news_load(const char *path, const char *encoder_sha256, char *err,
                              size_t errlen)
{
    model_file_t *mf = model_file_read(path, err, errlen);
    model_news_t *m = NULL;
    const char *arch;

    if (!mf)
        return NULL;
    if (model_file_verify(mf, err, errlen) != 0 ||
        !(arch = model_file_meta_need(mf, "vigil.arch", err, errlen)))
        goto err;
    if (strcmp(arch, "news_heads") != 0) {
        errbuf_printf(err, errlen, "%s: vigil.arch is \"%s\", not news heads (news_heads)", path,
                      arch);
        goto err;
    }
    if (!(m = calloc(1, sizeof *m))) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto err;
    }
    if (news_load_meta(m, mf, encoder_sha256, err, errlen) != 0)
        goto err;
    /* The label counts decide the shapes: a tensor that disagrees is refused by name. */
    int64_t e = (int64_t)m->dim, t = (int64_t)m->n_topic;
    int64_t sw[2] = {e, MODEL_NEWS_N_SENTIMENT}, sb[1] = {MODEL_NEWS_N_SENTIMENT};
    int64_t tw[2] = {e, t}, tb[1] = {t};
    if (!(m->sent_w = news_tensor(mf, "sentiment.weight", 2, sw, err, errlen)) ||
        !(m->sent_b = news_tensor(mf, "sentiment.bias", 1, sb, err, errlen)) ||
        !(m->topic_w = news_tensor(mf, "topic.weight", 2, tw, err, errlen)) ||
        !(m->topic_b = news_tensor(mf, "topic.bias", 1, tb, err, errlen)) ||
        model_file_check_all_used(mf, err, errlen) != 0)
        goto err;
    model_file_free(mf);
    return m;
err:
    model_news_free(m);
    model_file_free(mf);
    return NULL;
}

const char *model_news_version(const model_news_t *m)
{
    return m->version;
}

const char *model_news_encoder(const model_news_t *m)
{
    return m->encoder;
}

const char *model_news_encoder_sha256(const model_news_t *m)
{
    return m->encoder_sha256;
}

void model_news_ngram_params(const model_news_t *m, uint32_t *buckets, uint64_t *seed)
{
    *buckets = m->ngram_buckets;
    *seed = m->ngram_seed;
}

size_t model_news_dim(const model_news_t *m)
{
    return m->dim;
}

size_t model_news_n_topics(const model_news_t *m)
{
    return m->n_topic;
}

const char *model_news_sentiment_label(const model_news_t *m, size_t i)
{
    (void)m;
    return i < MODEL_NEWS_N_SENTIMENT ? model_news_sentiment_names[i] : NULL;
}

const char *model_news_topic_label(const model_news_t *m, size_t i)
{
    return i < m->n_topic ? m->topic_labels[i] : NULL;
}

void model_news_classify(const model_news_t *m, const float *emb, size_t n, int32_t *sentiment,
                         float *sent_probs, int32_t *topic, float *topic_probs)
{
    /* The trainer's own prediction: serving computes bit for bit what training evaluated. */
    train_softmax_predict(m->sent_w, m->sent_b, m->dim, MODEL_NEWS_N_SENTIMENT, emb, n, sentiment,
                          sent_probs);
    train_softmax_predict(m->topic_w, m->topic_b, m->dim, m->n_topic, emb, n, topic, topic_probs);
}
