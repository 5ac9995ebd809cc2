/* The news heads: a saved file loads back with its version, labels and weights, classification
 * equals the trainer's train_softmax_predict bit for bit, and files that do not fit (another
 * encoder, another arch, labels that disagree with the tensors, a missing or extra tensor, a
 * corrupted byte, bad metadata) are refused by name. Small random heads: needs neither the
 * encoder nor the training data. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_file.h"
#include "model_news.h"
#include "test.h"
#include "train.h"

static char dir[] = "/tmp/vigil-test-model-news.XXXXXX";

#define E 8
#define T 5
#define ROWS 200

static const char enc_sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char other_sha[] = "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static char *sent_names[3] = {"negative", "neutral", "positive"};
static char *topic_names[T] = {"Earnings", "M&A | Investments", "Fed | Central Banks", "IPO",
                               "Say \"hi\", \\ \xc3\xa9t\xc3\xa9"};

static float sent_w[E * 3], sent_b[3], topic_w[E * T], topic_b[T];

static uint64_t rng = 7;
static double uniform(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) * 0x1.0p-53;
}

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static model_news_heads_t heads(void)
{
    return (model_news_heads_t){E, 3, T, sent_w, sent_b, topic_w, topic_b, sent_names, topic_names};
}

static void expect_load_refused(const char *path, const char *sha, const char *want)
{
    char err[512] = "";
    model_news_t *m = model_news_load(path, sha, err, sizeof err);
    CHECK_MSG(m == NULL, "%s loaded (expected \"%s\")", path, want);
    CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    CHECK_MSG(strstr(err, path) != NULL, "error \"%s\" does not name the file", err);
    model_news_free(m);
}

static void expect_save_refused(const model_news_heads_t *h, const char *sha, const char *training,
                                const char *want)
{
    char p[512], err[512] = "";
    path_of(p, sizeof p, "refused.safetensors");
    int rc = model_news_save(p, h, NULL, sha, training, NULL, 0, err, sizeof err);
    CHECK_MSG(rc != 0, "saved (expected \"%s\")", want);
    CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
}

/* What a variant file may change: every metadata value and which tensors it holds. */
typedef struct variant {
    const char *arch, *encoder, *sha, *dim, *sent_labels, *topic_labels, *training;
    int drop;                               /* leave out the tensor of this index (1-based) */
    int extra;                              /* add a tensor nobody asked for */
    int64_t topic_shape;                    /* topic.weight's and topic.bias's class count */
    int nan;                                /* a NaN in topic.bias */
    const char *omit_key;                   /* leave out this metadata key */
    const char *ngram_buckets, *ngram_seed; /* added when not NULL */
} variant_t;

static variant_t variant_ok(void)
{
    return (variant_t){"news_heads",
                       "bert",
                       enc_sha,
                       "8",
                       "[\"negative\",\"neutral\",\"positive\"]",
                       "[\"a\",\"b\",\"c\",\"d\",\"e\"]",
                       "{}",
                       0,
                       0,
                       T,
                       0,
                       NULL,
                       NULL,
                       NULL};
}

static void write_variant(const char *path, variant_t v)
{
    static float junk[2], tb[T + 1], tw[E * (T + 1)];
    const char *keys[] = {"vigil.arch",           "vigil.version",       "vigil.encoder",
                          "vigil.encoder_sha256", "vigil.embedding_dim", "vigil.labels.sentiment",
                          "vigil.labels.topic",   "vigil.training"};
    const char *vals[] = {v.arch, "v1",          v.encoder,      v.sha,
                          v.dim,  v.sent_labels, v.topic_labels, v.training};
    const char *k[10], *val[10];
    size_t nk = 0;
    for (size_t i = 0; i < 8; i++)
        if (!v.omit_key || strcmp(keys[i], v.omit_key) != 0) {
            k[nk] = keys[i];
            val[nk++] = vals[i];
        }
    if (v.ngram_buckets) {
        k[nk] = "vigil.ngram_buckets";
        val[nk++] = v.ngram_buckets;
    }
    if (v.ngram_seed) {
        k[nk] = "vigil.ngram_seed";
        val[nk++] = v.ngram_seed;
    }
    memset(tb, 0, sizeof tb);
    tb[0] = v.nan ? NAN : 0.0f;
    model_file_tensor_out_t all[5] = {{"sentiment.weight", sent_w, 2, {E, 3}},
                                      {"sentiment.bias", sent_b, 1, {3}},
                                      {"topic.weight", tw, 2, {E, v.topic_shape}},
                                      {"topic.bias", tb, 1, {v.topic_shape}},
                                      {"junk", junk, 1, {2}}};
    model_file_tensor_out_t t[5];
    size_t nt = 0;
    for (int i = 0; i < (v.extra ? 5 : 4); i++)
        if (i + 1 != v.drop)
            t[nt++] = all[i];
    char err[512];
    CHECK_MSG(model_file_write(path, k, val, nk, t, nt, NULL, err, sizeof err) == 0, "%s", err);
}

/* Writes variant v to p and expects model_news_load to refuse it with want. */
static void expect_variant_refused(const char *p, variant_t v, const char *sha, const char *want)
{
    write_variant(p, v);
    expect_load_refused(p, sha, want);
}

static void test_refusals(void)
{
    char p[512], err[512];
    variant_t v;
    path_of(p, sizeof p, "variant.safetensors");

    write_variant(p, variant_ok());
    model_news_t *m = model_news_load(p, enc_sha, err, sizeof err);
    CHECK_MSG(m != NULL, "the consistent variant: %s", err);
    if (m) {
        CHECK_STR(model_news_version(m), "v1");
        CHECK_STR(model_news_topic_label(m, 4), "e");
    }
    model_news_free(m);

    /* Another encoder. */
    expect_load_refused(p, other_sha, "trained on another encoder");
    /* Another arch. */
    v = variant_ok();
    v.arch = "risk_mlp";
    expect_variant_refused(p, v, enc_sha, "vigil.arch is \"risk_mlp\", not news heads");
    /* Four topic names, five-class tensors. */
    v = variant_ok();
    v.topic_labels = "[\"a\",\"b\",\"c\",\"d\"]";
    expect_variant_refused(p, v, enc_sha, "tensor topic.weight has shape [8, 5], expected [8, 4]");
    /* Five topic names, six-class tensors. */
    v = variant_ok();
    v.topic_shape = T + 1;
    expect_variant_refused(p, v, enc_sha, "tensor topic.weight has shape [8, 6], expected [8, 5]");
    /* Two sentiment labels for a three-class head; or the right ones in another order. */
    v = variant_ok();
    v.sent_labels = "[\"negative\",\"positive\"]";
    expect_variant_refused(p, v, enc_sha, "vigil.labels.sentiment must be");
    v.sent_labels = "[\"positive\",\"neutral\",\"negative\"]";
    expect_variant_refused(p, v, enc_sha, "vigil.labels.sentiment must be");
    /* An embedding width other than the tensors'. */
    v = variant_ok();
    v.dim = "16";
    expect_variant_refused(p, v, enc_sha,
                           "tensor sentiment.weight has shape [8, 3], expected [16, 3]");
    v.dim = "08";
    expect_variant_refused(p, v, enc_sha, "vigil.embedding_dim \"08\" is not a width");
    /* Missing tensors, one by one, and one too many. */
    const char *names[4] = {"sentiment.weight", "sentiment.bias", "topic.weight", "topic.bias"};
    for (int i = 0; i < 4; i++) {
        char want[64];
        v = variant_ok();
        v.drop = i + 1;
        write_variant(p, v);
        snprintf(want, sizeof want, "tensor %s is missing", names[i]);
        expect_load_refused(p, enc_sha, want);
    }
    v = variant_ok();
    v.extra = 1;
    expect_variant_refused(p, v, enc_sha, "unexpected tensor junk");
    /* Metadata. */
    v = variant_ok();
    v.omit_key = "vigil.encoder_sha256";
    expect_variant_refused(p, v, enc_sha, "metadata key vigil.encoder_sha256 is missing");
    v = variant_ok();
    v.omit_key = "vigil.labels.topic";
    expect_variant_refused(p, v, enc_sha, "metadata key vigil.labels.topic is missing");
    v = variant_ok();
    v.encoder = "word2vec";
    expect_variant_refused(p, v, enc_sha,
                           "vigil.encoder \"word2vec\" is not supported (bert, ngram)");
    v = variant_ok();
    v.sha = "ABCDEF";
    expect_variant_refused(p, v, NULL, "vigil.encoder_sha256 must be 64 lower-case hex digits");
    v = variant_ok();
    v.topic_labels = "[\"a\",\"b\",\"c\",\"d\",\"a\"]";
    expect_variant_refused(p, v, enc_sha, "vigil.labels.topic names a topic twice");
    v.topic_labels = "[\"a\",\"b\",\"c\",\"d\",5]";
    expect_variant_refused(p, v, enc_sha, "vigil.labels.topic must be a JSON array of strings");
    v.topic_labels = "[\"a\",\"b\",";
    expect_variant_refused(p, v, enc_sha, "metadata vigil.labels.topic: json:");
    v = variant_ok();
    v.training = "[1]";
    expect_variant_refused(p, v, enc_sha, "vigil.training must be a JSON object");
    v = variant_ok();
    v.nan = 1;
    expect_variant_refused(p, v, enc_sha, "tensor topic.bias holds a NaN");
}

/* Heads for the n-gram encoder: their parameters round-trip; what the encoder could not make, or a
 * BERT encoder's caller, is refused. */
static void test_ngram(void)
{
    enum { ED = 64 };
    static float sw[ED * 3], tw[ED * T];
    char p[512], err[512], version[128];
    uint32_t buckets;
    uint64_t seed;
    for (size_t i = 0; i < ED * 3; i++)
        sw[i] = (float)(uniform() - 0.5);
    for (size_t i = 0; i < ED * T; i++)
        tw[i] = (float)(uniform() - 0.5);
    model_news_heads_t h = {ED, 3, T, sw, sent_b, tw, topic_b, sent_names, topic_names};
    path_of(p, sizeof p, "ngram.safetensors");
    CHECK_MSG(model_news_save_ngram(p, &h, NULL, 1u << 20, 18446744073709551615ULL, NULL, version,
                                    sizeof version, err, sizeof err) == 0,
              "%s", err);
    model_news_t *m = model_news_load(p, NULL, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        CHECK_STR(model_news_encoder(m), "ngram");
        CHECK_STR(model_news_encoder_sha256(m), "");
        CHECK_STR(model_news_version(m), version);
        model_news_ngram_params(m, &buckets, &seed);
        CHECK(buckets == 1u << 20 && seed == 18446744073709551615ULL);
        CHECK(model_news_dim(m) == ED && model_news_n_topics(m) == T);
        model_news_free(m);
    }
    expect_load_refused(p, enc_sha, "trained on the n-gram encoder, not a BERT encoder");
    h.dim = E; /* 8: not a dimension the n-gram encoder makes */
    CHECK(model_news_save_ngram(p, &h, NULL, 1024, 1, NULL, NULL, 0, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "multiple of 64 in 64..4096 dimensions, not 8") != NULL, "%s", err);
    h.dim = ED;
    CHECK(model_news_save_ngram(p, &h, NULL, 0, 1, NULL, NULL, 0, err, sizeof err) != 0);
    CHECK_MSG(strstr(err, "at least one bucket") != NULL, "%s", err);

    /* The BERT heads' loader view: bert, with params 0. */
    variant_t v = variant_ok();
    path_of(p, sizeof p, "ngram-variant.safetensors");
    write_variant(p, v);
    m = model_news_load(p, NULL, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        CHECK_STR(model_news_encoder(m), "bert");
        model_news_ngram_params(m, &buckets, &seed);
        CHECK(buckets == 0 && seed == 0);
        model_news_free(m);
    }
    /* Variants of an n-gram file (E = 8 tensors: a width the n-gram encoder never makes). */
    v.encoder = "ngram";
    v.ngram_buckets = "1024";
    v.ngram_seed = "7";
    expect_variant_refused(p, v, NULL,
                           "vigil.embedding_dim 8: the n-gram encoder makes a multiple of 64");
    v.ngram_seed = NULL;
    expect_variant_refused(p, v, NULL, "metadata key vigil.ngram_seed is missing");
    v.ngram_seed = "07";
    expect_variant_refused(p, v, NULL, "vigil.ngram_seed \"07\" is not a decimal 64-bit number");
    v.ngram_seed = "18446744073709551616";
    expect_variant_refused(p, v, NULL, "vigil.ngram_seed \"18446744073709551616\" is not");
    v.ngram_seed = "7";
    v.ngram_buckets = "4294967296";
    expect_variant_refused(p, v, NULL, "vigil.ngram_buckets \"4294967296\" is not a count");
    v.ngram_buckets = "0";
    expect_variant_refused(p, v, NULL, "vigil.ngram_buckets \"0\" is not a count");
    v.ngram_buckets = NULL;
    expect_variant_refused(p, v, NULL, "metadata key vigil.ngram_buckets is missing");
}

/* A byte of the data section flipped: the checksum refuses it. Truncation too. */
static void test_corruption(const char *good)
{
    char p[512];
    FILE *f = fopen(good, "rb");
    long n = -1;
    unsigned char *buf = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n)) != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = -1;
    if (f)
        fclose(f);
    CHECK(n > 100 && buf);
    if (n > 100 && buf) {
        path_of(p, sizeof p, "flipped.safetensors");
        buf[n - 5] ^= 0x01; /* in topic.weight's last float, by name order */
        f = fopen(p, "wb");
        CHECK(f && fwrite(buf, 1, (size_t)n, f) == (size_t)n);
        if (f)
            fclose(f);
        expect_load_refused(p, enc_sha, "checksum mismatch");
        path_of(p, sizeof p, "short.safetensors");
        f = fopen(p, "wb");
        CHECK(f && fwrite(buf, 1, (size_t)n - 4, f) == (size_t)n - 4);
        if (f)
            fclose(f);
        expect_load_refused(p, enc_sha, "truncated");
    }
    free(buf);
    path_of(p, sizeof p, "absent.safetensors");
    expect_load_refused(p, enc_sha, "cannot open");
}

static void test_save_refusals(void)
{
    model_news_heads_t h = heads();
    h.n_sentiment = 2;
    expect_save_refused(&h, enc_sha, NULL, "the sentiment head must have 3 classes, not 2");
    h = heads();
    char *swapped[3] = {"positive", "neutral", "negative"};
    h.sentiment_labels = swapped;
    expect_save_refused(&h, enc_sha, NULL, "negative, neutral, positive in that order");
    h = heads();
    char *dup[T] = {"a", "b", "a", "c", "d"};
    h.topic_labels = dup;
    expect_save_refused(&h, enc_sha, NULL, "the topic labels names a topic twice");
    h = heads();
    h.n_topic = 0;
    expect_save_refused(&h, enc_sha, NULL, "must list 1..1024 topics");
    h = heads();
    h.dim = 0;
    expect_save_refused(&h, enc_sha, NULL, "embedding width 0 is outside");
    h = heads();
    expect_save_refused(&h, "abc", NULL, "the encoder sha256 must be 64 lower-case hex digits");
    expect_save_refused(&h, NULL, NULL, "the encoder sha256 must be 64 lower-case hex digits");
    expect_save_refused(&h, enc_sha, "[]", "the training record is not a JSON object");
    expect_save_refused(&h, enc_sha, "{", "the training record is not a JSON object: json:");
    float saved = topic_w[3];
    topic_w[3] = INFINITY;
    expect_save_refused(&h, enc_sha, NULL, "the weights hold a NaN or an infinity");
    topic_w[3] = saved;
}

static void test_round_trip(char *path, size_t cap)
{
    char err[512], version[128], v2[128];
    model_news_heads_t h = heads();
    const char *training = "{\"sentiment\": {\"dev_accuracy\": 0.5}, \"topic\": {}}";

    path_of(path, cap, "news.safetensors");
    CHECK_MSG(model_news_save(path, &h, NULL, enc_sha, training, version, sizeof version, err,
                              sizeof err) == 0,
              "%s", err);
    CHECK_MSG(strncmp(version, "news-", 5) == 0 && strlen(version) == 17, "version %s", version);
    /* The default version is named after the weights: the same weights, the same version. */
    char p2[512];
    path_of(p2, sizeof p2, "news2.safetensors");
    CHECK(model_news_save(p2, &h, NULL, other_sha, NULL, v2, sizeof v2, err, sizeof err) == 0);
    CHECK_STR(v2, version);
    CHECK(model_news_save(p2, &h, "news-custom", enc_sha, NULL, v2, sizeof v2, err, sizeof err) ==
          0);
    CHECK_STR(v2, "news-custom");

    /* The file's metadata, as another reader sees it. */
    model_file_t *mf = model_file_read(path, err, sizeof err);
    CHECK_MSG(mf != NULL, "%s", err);
    if (mf) {
        CHECK_STR(model_file_meta(mf, "vigil.arch"), "news_heads");
        CHECK_STR(model_file_meta(mf, "vigil.encoder"), "bert");
        CHECK_STR(model_file_meta(mf, "vigil.encoder_sha256"), enc_sha);
        CHECK_STR(model_file_meta(mf, "vigil.embedding_dim"), "8");
        CHECK_STR(model_file_meta(mf, "vigil.labels.sentiment"),
                  "[\"negative\",\"neutral\",\"positive\"]");
        CHECK_STR(model_file_meta(mf, "vigil.labels.topic"),
                  "[\"Earnings\",\"M&A | Investments\",\"Fed | Central Banks\",\"IPO\","
                  "\"Say \\\"hi\\\", \\\\ \xc3\xa9t\xc3\xa9\"]");
        CHECK_STR(model_file_meta(mf, "vigil.training"), training);
        CHECK_STR(model_file_meta(mf, "vigil.version"), version);
        model_file_free(mf);
    }

    model_news_t *m = model_news_load(path, enc_sha, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (!m)
        return;
    CHECK_STR(model_news_version(m), version);
    CHECK_STR(model_news_encoder_sha256(m), enc_sha);
    CHECK_STR(model_news_encoder(m), "bert");
    CHECK(model_news_dim(m) == E);
    CHECK(model_news_n_topics(m) == T);
    for (size_t i = 0; i < 3; i++)
        CHECK_STR(model_news_sentiment_label(m, i), sent_names[i]);
    CHECK(model_news_sentiment_label(m, 3) == NULL);
    for (size_t i = 0; i < T; i++)
        CHECK_STR(model_news_topic_label(m, i), topic_names[i]);
    CHECK(model_news_topic_label(m, T) == NULL);

    /* Classification: exactly the trainer's prediction from the weights that were saved. */
    float *x = malloc(ROWS * E * sizeof *x);
    float *sp = malloc(ROWS * 3 * sizeof *sp), *tp = malloc(ROWS * T * sizeof *tp);
    float *sp_ref = malloc(ROWS * 3 * sizeof *sp), *tp_ref = malloc(ROWS * T * sizeof *tp);
    int32_t s[ROWS], t[ROWS], s_ref[ROWS], t_ref[ROWS], s2[ROWS], t2[ROWS];
    if (x && sp && tp && sp_ref && tp_ref) {
        for (size_t i = 0; i < ROWS * E; i++)
            x[i] = (float)(uniform() * 2 - 1);
        model_news_classify(m, x, ROWS, s, sp, t, tp);
        train_softmax_predict(sent_w, sent_b, E, 3, x, ROWS, s_ref, sp_ref);
        train_softmax_predict(topic_w, topic_b, E, T, x, ROWS, t_ref, tp_ref);
        CHECK(memcmp(s, s_ref, sizeof s) == 0);
        CHECK(memcmp(t, t_ref, sizeof t) == 0);
        CHECK(memcmp(sp, sp_ref, ROWS * 3 * sizeof *sp) == 0);
        CHECK(memcmp(tp, tp_ref, ROWS * T * sizeof *tp) == 0);
        /* Every class is predicted somewhere (the random heads are not degenerate), the
         * probabilities sum to 1 and the argmax is the most probable class. */
        int seen[T] = {0}, sum_ok = 1, argmax_ok = 1;
        for (size_t r = 0; r < ROWS; r++) {
            double sum = 0;
            seen[t[r]] = 1;
            for (size_t j = 0; j < T; j++) {
                sum += tp[r * T + j];
                argmax_ok &= tp[r * T + j] <= tp[r * T + (size_t)t[r]];
            }
            sum_ok &= fabs(sum - 1) < 1e-5;
        }
        CHECK(sum_ok && argmax_ok);
        CHECK(seen[0] + seen[1] + seen[2] + seen[3] + seen[4] >= 3);
        /* Without probabilities: the same classes. */
        model_news_classify(m, x, ROWS, s2, NULL, t2, NULL);
        CHECK(memcmp(s2, s, sizeof s) == 0 && memcmp(t2, t, sizeof t) == 0);
        /* Row by row: the same as in one batch. */
        for (size_t r = 0; r < ROWS; r += 37) {
            int32_t s1, t1;
            float sp1[3];
            model_news_classify(m, x + r * E, 1, &s1, sp1, &t1, NULL);
            CHECK(s1 == s[r] && t1 == t[r] && memcmp(sp1, sp + r * 3, sizeof sp1) == 0);
        }
        model_news_classify(m, x, 0, s2, NULL, t2, NULL); /* nothing to do */
    } else {
        CHECK(!"out of memory");
    }
    free(x);
    free(sp);
    free(tp);
    free(sp_ref);
    free(tp_ref);
    model_news_free(m);

    /* Not checking the encoder is the caller's choice. */
    m = model_news_load(path, NULL, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    model_news_free(m);
}

/* Heads trained by train_softmax_fit on separable data survive the round trip with their
 * accuracy. */
static void test_trained(void)
{
    enum { N = 600 };
    float *x = malloc(N * E * sizeof *x), w_s[E * 3], b_s[3], w_t[E * T], b_t[T];
    int32_t *ys = malloc(N * sizeof *ys), *yt = malloc(N * sizeof *yt);
    int32_t *ps = malloc(N * sizeof *ps), *pt = malloc(N * sizeof *pt);
    char err[512], p[512];
    if (!x || !ys || !yt || !ps || !pt) {
        CHECK(!"out of memory");
        goto out;
    }
    for (size_t r = 0; r < N; r++) {
        for (size_t i = 0; i < E; i++)
            x[r * E + i] = (float)(uniform() - 0.5) * 0.2f;
        ys[r] = (int32_t)(r % 3);
        yt[r] = (int32_t)(r % T);
        x[r * E + (size_t)ys[r]] += 1.0f;     /* sentiment lives in columns 0..2 */
        x[r * E + 3 + (size_t)yt[r]] += 1.0f; /* topic in columns 3..7 */
    }
    train_options_t o = {.epochs = 20, .batch = 32, .lr = 1e-2f, .weight_decay = 0, .seed = 3};
    kernels_backend_t *be = kernels_backend_new("cpu", 1, err, sizeof err);
    CHECK_MSG(be != NULL, "%s", err);
    if (!be)
        goto out;
    CHECK_MSG(train_softmax_fit(be, w_s, b_s, E, 3, x, ys, N, &o, NULL, err, sizeof err) == 0, "%s",
              err);
    o.class_balanced = 1;
    CHECK_MSG(train_softmax_fit(be, w_t, b_t, E, T, x, yt, N, &o, NULL, err, sizeof err) == 0, "%s",
              err);
    kernels_backend_free(be);
    model_news_heads_t h = {E, 3, T, w_s, b_s, w_t, b_t, sent_names, topic_names};
    path_of(p, sizeof p, "trained.safetensors");
    CHECK_MSG(model_news_save(p, &h, NULL, enc_sha, NULL, NULL, 0, err, sizeof err) == 0, "%s",
              err);
    model_news_t *m = model_news_load(p, enc_sha, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        double acc_s, f1_s, acc_t, f1_t;
        model_news_classify(m, x, N, ps, NULL, pt, NULL);
        train_class_metrics(ps, ys, N, 3, &acc_s, &f1_s);
        train_class_metrics(pt, yt, N, T, &acc_t, &f1_t);
        CHECK_MSG(acc_s > 0.99 && f1_s > 0.99, "sentiment accuracy %.3f macro-F1 %.3f", acc_s,
                  f1_s);
        CHECK_MSG(acc_t > 0.99 && f1_t > 0.99, "topic accuracy %.3f macro-F1 %.3f", acc_t, f1_t);
        model_news_free(m);
    }
out:
    free(x);
    free(ys);
    free(yt);
    free(ps);
    free(pt);
}

int main(void)
{
    char path[512], cmd[600];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < E * 3; i++)
        sent_w[i] = (float)(uniform() * 4 - 2);
    for (size_t i = 0; i < 3; i++)
        sent_b[i] = (float)(uniform() - 0.5);
    for (size_t i = 0; i < E * T; i++)
        topic_w[i] = (float)(uniform() * 4 - 2);
    for (size_t i = 0; i < T; i++)
        topic_b[i] = (float)(uniform() - 0.5);

    test_round_trip(path, sizeof path);
    test_corruption(path);
    test_save_refusals();
    test_refusals();
    test_ngram();
    test_trained();

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return TEST_DONE();
}
