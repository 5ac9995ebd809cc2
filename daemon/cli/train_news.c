/* `vigil train news`: the news model's heads (pipeline/models/model_news.h) from labelled CSV
 * files.
 *
 * --data DIR holds fpb/{train,dev}.csv (sentiment: negative / neutral / positive) and
 * topics/{train,dev}.csv (topic names), RFC 4180 CSV with the header label,text. Every text is
 * encoded once by the BERT encoder (L2-normalised sentence embeddings, at most 256 tokens) or the
 * n-gram one; each head is then a linear softmax classifier trained with AdamW on its train file.
 * The encoder and the training run on the kernels backend --backend names (default cpu); each
 * candidate of the option search (train_news_choose.c) trains on a backend of its own, one per
 * thread.
 *
 * The learning rate, the number of epochs and (for topics) class balancing are chosen on the
 * training data alone: one training row in ten (by a hash of its text, so duplicated sentences
 * stay on one side) validates each candidate of a small grid by macro-F1, and the winner is then
 * refitted on every training row here. The dev files take no part in any choice: they are the
 * held-out evaluation, whose accuracy and macro-F1 are printed and stored in the file's
 * vigil.training. */
#include "train_news.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv.h"
#include "errbuf.h"
#include "json.h"
#include "kernels.h"
#include "model_bert.h"
#include "model_news.h"
#include "model_ngram.h"
#include "sha256.h"
#include "train.h"
#include "train_news_internal.h"

#define NEWS_MAX_SEQ 256
#define NEWS_ENCODE_BATCH 512
#define NEWS_FILE_MAX ((size_t)1 << 30)
#define NEWS_BATCH 64
#define NEWS_WEIGHT_DECAY 1e-4f

static const char *const news_default_model_dir = ".cache/models/all-MiniLM-L6-v2";

static void train_news_usage(FILE *f)
{
    fprintf(f,
            "usage: vigil train news --data DIR [options]\n"
            "Trains the news model's sentiment and topic heads on the encoder's embeddings and\n"
            "writes a model file. DIR holds fpb/train.csv, fpb/dev.csv (sentiment) and\n"
            "topics/train.csv, topics/dev.csv (topic), CSV with the header label,text. The dev\n"
            "files are only evaluated: held-out accuracy and macro-F1 are printed and recorded.\n"
            "  --data DIR         the labelled data (required)\n"
            "  --model-dir DIR    the encoder's folder (default $VIGIL_MODEL_DIR, else\n"
            "                     %s)\n"
            "  --encoder KIND     bert (default) or ngram: the hashed n-gram fallback encoder,\n"
            "                     which needs no model files (pipeline/models/model_ngram.h)\n"
            "  --out PATH         model file (default models/news-heads.safetensors, or\n"
            "                     models/news-heads-ngram.safetensors with --encoder ngram)\n"
            "  --epochs N         fix the epochs instead of choosing them on the training data\n"
            "  --threads N        encoder and training threads (default: the online CPUs)\n"
            "  --seed N           initialisation, shuffling and the validation split (default 1)\n"
            "  --version NAME     model version (default news-<sha256 prefix>)\n"
            "  --backend NAME     kernels backend for the encoder and the heads' training:\n"
            "                     cpu (default), cuda, cuda:N, or auto (CUDA when usable)\n"
            "Exit status: 0 written, 1 failure, 2 usage.\n",
            news_default_model_dir);
}

static double news_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- CSV (RFC 4180) ---- */

/* news_csv_t, one file's rows, is in train_news_internal.h: the option search reads them too. */

static void news_csv_free(news_csv_t *c)
{
    free(c->buf);
    free(c->label);
    free(c->text);
    free(c->text_len);
    free(c->line);
    free(c->y);
    memset(c, 0, sizeof *c);
}

static int news_csv_push(news_csv_t *c, char *label, char *text, size_t text_len, size_t line)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 1024;
        char **l = realloc(c->label, nc * sizeof *l);
        if (l)
            c->label = l;
        char **t = realloc(c->text, nc * sizeof *t);
        if (t)
            c->text = t;
        size_t *tl = realloc(c->text_len, nc * sizeof *tl);
        if (tl)
            c->text_len = tl;
        size_t *ln = realloc(c->line, nc * sizeof *ln);
        if (ln)
            c->line = ln;
        if (!l || !t || !tl || !ln)
            return -1;
        c->cap = nc;
    }
    c->label[c->n] = label;
    c->text[c->n] = text;
    c->text_len[c->n] = text_len;
    c->line[c->n] = line;
    c->n++;
    return 0;
}

/* Reads dir/name into c: the header label,text, then label,text records (empty lines skipped). */
static int news_csv_read(news_csv_t *c, const char *dir, const char *name, char *err, size_t errlen)
{
    char path[4096];
    FILE *f;
    long size;
    size_t line = 1, len;
    uint8_t digest[32];
    sha256_t s;

    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        errbuf_printf(err, errlen, "%s/%s: path too long", dir, name);
        return -1;
    }
    if (!(f = fopen(path, "rb"))) {
        errbuf_printf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (size_t)size > NEWS_FILE_MAX) {
        errbuf_printf(err, errlen, "%s: cannot size it, or larger than 1 GiB", path);
        fclose(f);
        return -1;
    }
    len = (size_t)size;
    if (!(c->buf = malloc(len + 1))) {
        errbuf_printf(err, errlen, "%s: out of memory for %zu bytes", path, len);
        fclose(f);
        return -1;
    }
    if (fread(c->buf, 1, len, f) != len) {
        errbuf_printf(err, errlen, "%s: read failed", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    c->buf[len] = '\0';
    sha256_init(&s);
    sha256_update(&s, c->buf, len);
    sha256_final(&s, digest);
    sha256_hex(digest, c->sha256);

    char *p = c->buf, *end = c->buf + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3; /* a UTF-8 byte order mark */
    int header = 1;
    while (p < end) {
        csv_field_t fld[3];
        char what[128], *rec = p;
        const char *next;
        size_t rec_len, breaks, first = line;
        if (csv_record(p, end, &rec_len, &next, &breaks) != 0) {
            errbuf_printf(err, errlen, "%s:%zu: a quoted field is never closed", c->name, first);
            return -1;
        }
        p = (char *)next; /* the record is split in place below: it is ours */
        line += breaks;
        if (rec_len == 0)
            continue; /* an empty line */
        int n = csv_split(rec, rec_len, fld, 3, what, sizeof what);
        if (n < 0) {
            errbuf_printf(err, errlen, "%s:%zu: %s", c->name, first, what);
            return -1;
        }
        if (header) {
            if (n != 2 || strcmp(fld[0].s, "label") != 0 || strcmp(fld[1].s, "text") != 0) {
                errbuf_printf(err, errlen, "%s:%zu: the header must be label,text", c->name, first);
                return -1;
            }
            header = 0;
            continue;
        }
        if (n != 2) {
            errbuf_printf(err, errlen, "%s:%zu: %d fields, expected 2 (label,text)", c->name, first,
                          n);
            return -1;
        }
        if (news_csv_push(c, fld[0].s, fld[1].s, fld[1].len, first) != 0) {
            errbuf_printf(err, errlen, "%s: out of memory", c->name);
            return -1;
        }
    }
    if (c->n == 0) {
        errbuf_printf(err, errlen, "%s: %s", c->name,
                      header ? "empty (no header label,text)" : "no rows");
        return -1;
    }
    if (!(c->y = malloc(c->n * sizeof *c->y))) {
        errbuf_printf(err, errlen, "%s: out of memory", c->name);
        return -1;
    }
    return 0;
}

/* ---- labels ---- */

static int news_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted distinct labels of c into *names (pointers into c, malloc'ed array). */
static int news_topic_names(const news_csv_t *c, char ***names, size_t *n)
{
    char **v = malloc(c->n * sizeof *v);
    size_t k = 0;
    if (!v)
        return -1;
    memcpy(v, c->label, c->n * sizeof *v);
    qsort(v, c->n, sizeof *v, news_cmp_str);
    for (size_t i = 0; i < c->n; i++)
        if (k == 0 || strcmp(v[k - 1], v[i]) != 0)
            v[k++] = v[i];
    *names = v;
    *n = k;
    return 0;
}

/* Maps every label of c to its index in names (n sorted names when sorted, else searched in
 * order); -1 with err naming the first row whose label is not there. */
static int news_map_labels(news_csv_t *c, char *const *names, size_t n, int sorted,
                           const char *what, char *err, size_t errlen)
{
    for (size_t r = 0; r < c->n; r++) {
        size_t j = n;
        if (sorted) {
            char *const *hit = bsearch(&c->label[r], names, n, sizeof *names, news_cmp_str);
            j = hit ? (size_t)(hit - names) : n;
        } else {
            for (j = 0; j < n && strcmp(names[j], c->label[r]) != 0; j++)
                ;
        }
        if (j == n) {
            errbuf_printf(err, errlen, "%s:%zu: label \"%.80s\" is not %s", c->name, c->line[r],
                          c->label[r], what);
            return -1;
        }
        c->y[r] = (int32_t)j;
    }
    return 0;
}

/* ---- encoding ---- */

static int news_encode(model_bert_t *m, const news_csv_t *c, float *out, size_t *done, size_t total,
                       double t0, char *err, size_t errlen)
{
    size_t h = model_bert_dim(m);
    char e[512];
    for (size_t s0 = 0; s0 < c->n; s0 += NEWS_ENCODE_BATCH) {
        size_t nb = c->n - s0 < NEWS_ENCODE_BATCH ? c->n - s0 : NEWS_ENCODE_BATCH;
        if (model_bert_encode(m, (const char *const *)c->text + s0, c->text_len + s0, nb, 1,
                              out + s0 * h, e, sizeof e) != 0) {
            errbuf_printf(err, errlen, "%s: encoding rows %zu..%zu: %s", c->name, s0 + 1, s0 + nb,
                          e);
            return -1;
        }
        *done += nb;
        double dt = news_now() - t0;
        fprintf(stderr, "vigil train news: encoded %zu/%zu texts (%s), %.0f texts/s\n", *done,
                total, c->name, dt > 0 ? (double)*done / dt : 0.0);
    }
    return 0;
}

/* The same with the n-gram encoder (one thread: it is a few microseconds per text). */
static int news_encode_ngram(model_ngram_t *m, const news_csv_t *c, float *out, char *err,
                             size_t errlen)
{
    char e[512];
    if (model_ngram_encode(m, (const char *const *)c->text, c->text_len, c->n, out, e, sizeof e) !=
        0) {
        errbuf_printf(err, errlen, "%s: %s", c->name, e);
        return -1;
    }
    return 0;
}

/* ---- one head ---- */

typedef struct news_head_result {
    train_options_t o;
    double select_f1, accuracy, macro_f1;
} news_head_result_t;

/* Chooses the options (each candidate on a backend named `backend` of its own), fits w (d x c)
 * and b (c) on every row of train on be, and evaluates on dev. */
static int news_train_head(const char *head, const news_csv_t *train, const float *x_train,
                           const news_csv_t *dev, const float *x_dev, size_t d, size_t c,
                           char *const *names, int try_balanced, int fixed_epochs, int threads,
                           kernels_backend_t *be, const char *backend, uint64_t seed, float *w,
                           float *b, news_head_result_t *res, char *err, size_t errlen)
{
    int32_t *pred = malloc(dev->n * sizeof *pred);
    int rc = -1;

    memset(res, 0, sizeof *res);
    res->o = (train_options_t){.epochs = fixed_epochs,
                               .batch = NEWS_BATCH,
                               .lr = 0,
                               .weight_decay = NEWS_WEIGHT_DECAY,
                               .seed = seed};
    if (!pred) {
        errbuf_printf(err, errlen, "out of memory");
        return -1;
    }
    if (train_news_choose(head, train, x_train, d, c, try_balanced, fixed_epochs, threads, backend,
                          &res->o, &res->select_f1, err, errlen) != 0)
        goto out;
    if (train_softmax_fit(be, w, b, d, c, x_train, train->y, train->n, &res->o, NULL, err,
                          errlen) != 0)
        goto out;
    train_softmax_predict(w, b, d, c, x_dev, dev->n, pred, NULL);
    train_class_metrics(pred, dev->y, dev->n, c, &res->accuracy, &res->macro_f1);
    /* Per class, for the reader: F1 and how many dev rows the class has. */
    for (size_t k = 0; k < c; k++) {
        size_t tp = 0, fp = 0, fn = 0;
        for (size_t r = 0; r < dev->n; r++) {
            int p = pred[r] == (int32_t)k, t = dev->y[r] == (int32_t)k;
            tp += p && t;
            fp += p && !t;
            fn += !p && t;
        }
        double f1 = tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
        fprintf(stderr, "vigil train news: %s: dev F1 %.4f over %4zu rows: %s\n", head, f1, tp + fn,
                names[k]);
    }
    rc = 0;
out:
    free(pred);
    return rc;
}

/* The head's entry of vigil.training, appended to b. */
static void news_json_head(json_buf_t *b, const news_csv_t *train, const news_csv_t *dev,
                           const news_head_result_t *r)
{
    json_buf_puts(b, "{\"train\": ");
    json_buf_string(b, train->name);
    json_buf_printf(b, ", \"train_sha256\": \"%s\", \"train_rows\": %zu, \"dev\": ", train->sha256,
                    train->n);
    json_buf_string(b, dev->name);
    json_buf_printf(b,
                    ", \"dev_sha256\": \"%s\", \"dev_rows\": %zu, \"epochs\": %d, \"lr\": %g, "
                    "\"batch\": %zu, \"weight_decay\": %g, \"class_balanced\": %s, "
                    "\"selection_macro_f1\": %.4f, \"dev_accuracy\": %.4f, \"dev_macro_f1\": %.4f}",
                    dev->sha256, dev->n, r->o.epochs, (double)r->o.lr, r->o.batch,
                    (double)r->o.weight_decay, r->o.class_balanced ? "true" : "false", r->select_f1,
                    r->accuracy, r->macro_f1);
}

/* Creates the folder of path when it is missing (one level: models/ under the working
 * directory). */
static void news_make_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    struct stat st;
    if (!slash || slash == path || (size_t)(slash - path) >= sizeof dir)
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (stat(dir, &st) != 0 && mkdir(dir, 0755) == 0)
        fprintf(stderr, "vigil train news: created %s/\n", dir);
}

static int news_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The command line. */
typedef struct train_news_args {
    const char *data, *model_dir, *out, *version, *backend;
    int use_ngram;
    long threads, epochs; /* epochs 0: chosen on the training data */
    uint64_t seed;
} train_news_args_t;

enum { TRAIN_NEWS_GO = 0, TRAIN_NEWS_HELP = 1, TRAIN_NEWS_USAGE = -1 };

/* Parses argv into a. TRAIN_NEWS_HELP when --help printed the usage, TRAIN_NEWS_USAGE when a
 * usage error was printed (the caller prints the usage after it). */
static int train_news_parse(int argc, char **argv, train_news_args_t *a)
{
    static const struct option options[] = {
        {"data", required_argument, NULL, 'd'},
        {"model-dir", required_argument, NULL, 'm'},
        {"out", required_argument, NULL, 'o'},
        {"epochs", required_argument, NULL, 'e'},
        {"threads", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 'S'},
        {"version", required_argument, NULL, 'V'},
        {"encoder", required_argument, NULL, 'E'},
        {"backend", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long v;
    int opt;

    *a = (train_news_args_t){.model_dir = getenv("VIGIL_MODEL_DIR"),
                             .backend = "cpu",
                             .threads = sysconf(_SC_NPROCESSORS_ONLN),
                             .seed = 1};
    if (!a->model_dir || !a->model_dir[0])
        a->model_dir = news_default_model_dir;
    if (a->threads < 1)
        a->threads = 1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            a->data = optarg;
            break;
        case 'm':
            a->model_dir = optarg;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'e':
            if (news_parse_int(optarg, 1, 1000, &a->epochs) != 0) {
                fprintf(stderr, "vigil train news: --epochs wants 1..1000\n");
                return TRAIN_NEWS_USAGE;
            }
            break;
        case 't':
            if (news_parse_int(optarg, 1, 64, &a->threads) != 0) {
                fprintf(stderr, "vigil train news: --threads wants 1..64\n");
                return TRAIN_NEWS_USAGE;
            }
            break;
        case 'S':
            if (news_parse_int(optarg, 0, LONG_MAX, &v) != 0) {
                fprintf(stderr, "vigil train news: --seed wants a number >= 0\n");
                return TRAIN_NEWS_USAGE;
            }
            a->seed = (uint64_t)v;
            break;
        case 'V':
            a->version = optarg;
            break;
        case 'E':
            if (strcmp(optarg, "bert") != 0 && strcmp(optarg, "ngram") != 0) {
                fprintf(stderr, "vigil train news: --encoder wants bert or ngram\n");
                return TRAIN_NEWS_USAGE;
            }
            a->use_ngram = strcmp(optarg, "ngram") == 0;
            break;
        case 'B':
            a->backend = optarg;
            break;
        case 'h':
            train_news_usage(stdout);
            return TRAIN_NEWS_HELP;
        default:
            return TRAIN_NEWS_USAGE;
        }
    }
    if (!a->data || optind != argc) {
        fprintf(stderr, "vigil train news: %s\n",
                a->data ? "unexpected argument" : "--data is required");
        return TRAIN_NEWS_USAGE;
    }
    if (!a->out)
        a->out =
            a->use_ngram ? "models/news-heads-ngram.safetensors" : "models/news-heads.safetensors";
    return TRAIN_NEWS_GO;
}

/* The four files of --data DIR, every label mapped to its class. */
typedef struct news_data {
    news_csv_t csv[4];      /* fpb/train.csv, fpb/dev.csv, topics/train.csv, topics/dev.csv */
    char **topics;          /* the sorted topic names of topics/train.csv (pointing into it) */
    size_t n_topics, total; /* total: the rows of the four */
} news_data_t;

static void news_data_free(news_data_t *nd)
{
    for (int i = 0; i < 4; i++)
        news_csv_free(&nd->csv[i]);
    free(nd->topics);
    memset(nd, 0, sizeof *nd);
}

/* Reads the four files of dir into nd (zeroed here; news_data_free it whatever this returns) and
 * checks every label, before the long part starts. */
static int news_data_load(news_data_t *nd, const char *dir, char *err, size_t errlen)
{
    static const char *const files[4] = {"fpb/train.csv", "fpb/dev.csv", "topics/train.csv",
                                         "topics/dev.csv"};
    news_csv_t *csv = nd->csv;

    memset(nd, 0, sizeof *nd);
    for (int i = 0; i < 4; i++) {
        if (news_csv_read(&csv[i], dir, files[i], err, errlen) != 0)
            return -1;
        nd->total += csv[i].n;
    }
    for (int i = 0; i < 2; i++)
        if (news_map_labels(&csv[i], (char *const *)model_news_sentiment_names,
                            MODEL_NEWS_N_SENTIMENT, 0, "negative, neutral or positive", err,
                            errlen) != 0)
            return -1;
    if (news_topic_names(&csv[2], &nd->topics, &nd->n_topics) != 0) {
        errbuf_printf(err, errlen, "out of memory");
        return -1;
    }
    if (nd->n_topics < 2 || nd->n_topics > MODEL_NEWS_TOPICS_MAX) {
        errbuf_printf(err, errlen, "%s: %zu topics; a topic head needs 2..%d", csv[2].name,
                      nd->n_topics, MODEL_NEWS_TOPICS_MAX);
        return -1;
    }
    if (news_map_labels(&csv[2], nd->topics, nd->n_topics, 1, "a topic", err, errlen) != 0 ||
        news_map_labels(&csv[3], nd->topics, nd->n_topics, 1, "a topic of topics/train.csv", err,
                        errlen) != 0)
        return -1;
    return 0;
}

/* The encoder --encoder names: one of the two is set. */
typedef struct news_encoder {
    model_ngram_t *ngram;
    model_bert_t *bert;
    size_t dim;
} news_encoder_t;

/* Makes the encoder of a (the BERT one on be, from a->model_dir) and says which it is. */
static int news_encoder_open(news_encoder_t *enc, const train_news_args_t *a, kernels_backend_t *be,
                             char *err, size_t errlen)
{
    if (a->use_ngram) {
        if (!(enc->ngram = model_ngram_new(MODEL_NGRAM_BUCKETS, MODEL_NGRAM_DIM, MODEL_NGRAM_SEED,
                                           err, errlen)))
            return -1;
        enc->dim = model_ngram_dim(enc->ngram);
        fprintf(stderr, "vigil train news: hashed n-gram encoder (%u buckets, %zu wide)\n",
                model_ngram_buckets(enc->ngram), enc->dim);
    } else {
        if (!(enc->bert = model_bert_load(be, a->model_dir, NEWS_MAX_SEQ, err, errlen)))
            return -1;
        enc->dim = model_bert_dim(enc->bert);
        fprintf(stderr,
                "vigil train news: encoder %s (%zu wide, weights sha256 %.12s...), %ld threads\n",
                a->model_dir, enc->dim, model_bert_weights_sha256(enc->bert), a->threads);
    }
    return 0;
}

/* Encodes every text of the four files into emb[i] (csv[i].n x dim, allocated here; the caller
 * frees them whatever this returns). */
static int news_embed(news_encoder_t *enc, const news_data_t *nd, float *emb[4], char *err,
                      size_t errlen)
{
    size_t done = 0, d = enc->dim;
    double t0 = news_now();

    for (int i = 0; i < 4; i++) {
        const news_csv_t *c = &nd->csv[i];
        if (!(emb[i] = malloc(c->n * d * sizeof *emb[i]))) {
            errbuf_printf(err, errlen, "out of memory for %zu embeddings", c->n);
            return -1;
        }
        if (enc->ngram ? news_encode_ngram(enc->ngram, c, emb[i], err, errlen) != 0
                       : news_encode(enc->bert, c, emb[i], &done, nd->total, t0, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Allocates h's weights for d-wide embeddings and labels it (the caller frees the weights
 * whatever this returns). */
static int news_heads_alloc(model_news_heads_t *h, size_t d, char **topics, size_t n_topics,
                            char *err, size_t errlen)
{
    h->dim = d;
    h->n_sentiment = MODEL_NEWS_N_SENTIMENT;
    h->n_topic = n_topics;
    h->sentiment_labels = (char **)model_news_sentiment_names;
    h->topic_labels = topics;
    h->sent_w = malloc(d * MODEL_NEWS_N_SENTIMENT * sizeof *h->sent_w);
    h->sent_b = malloc(MODEL_NEWS_N_SENTIMENT * sizeof *h->sent_b);
    h->topic_w = malloc(d * n_topics * sizeof *h->topic_w);
    h->topic_b = malloc(n_topics * sizeof *h->topic_b);
    if (!h->sent_w || !h->sent_b || !h->topic_w || !h->topic_b) {
        errbuf_printf(err, errlen, "out of memory for the heads");
        return -1;
    }
    return 0;
}

/* Trains both heads of h on the training files and prints their held-out figures on the dev
 * files. */
static int news_train_heads(const train_news_args_t *a, kernels_backend_t *be,
                            const news_data_t *nd, float *const emb[4], model_news_heads_t *h,
                            news_head_result_t *rs, news_head_result_t *rt, char *err,
                            size_t errlen)
{
    const news_csv_t *csv = nd->csv;
    int epochs = (int)a->epochs, threads = (int)a->threads;

    if (news_train_head("sentiment", &csv[0], emb[0], &csv[1], emb[1], h->dim,
                        MODEL_NEWS_N_SENTIMENT, (char *const *)model_news_sentiment_names, 0,
                        epochs, threads, be, a->backend, a->seed, h->sent_w, h->sent_b, rs, err,
                        errlen) != 0 ||
        news_train_head("topic", &csv[2], emb[2], &csv[3], emb[3], h->dim, nd->n_topics, nd->topics,
                        1, epochs, threads, be, a->backend, a->seed, h->topic_w, h->topic_b, rt,
                        err, errlen) != 0)
        return -1;
    printf("held-out sentiment (%s, %zu rows): accuracy=%.4f macro_f1=%.4f\n", csv[1].name,
           csv[1].n, rs->accuracy, rs->macro_f1);
    printf("held-out topic (%s, %zu rows): accuracy=%.4f macro_f1=%.4f\n", csv[3].name, csv[3].n,
           rt->accuracy, rt->macro_f1);
    return 0;
}

/* Writes h to a->out with its training record (vigil.training) and the encoder's identity, and
 * prints the file and its version. */
static int news_write(const train_news_args_t *a, const news_encoder_t *enc,
                      const model_news_heads_t *h, const news_data_t *nd,
                      const news_head_result_t *rs, const news_head_result_t *rt, char *err,
                      size_t errlen)
{
    json_buf_t training = {0};
    const char *base = a->use_ngram ? "ngram" : strrchr(a->model_dir, '/');
    char ver[128];
    int rc = -1;

    if (!a->use_ngram)
        base = base && base[1] ? base + 1 : a->model_dir;
    json_buf_puts(&training, "{\"encoder\": ");
    json_buf_string(&training, base);
    json_buf_printf(&training,
                    ", \"max_seq\": %d, \"normalize\": true, \"seed\": %" PRIu64
                    ", \"selection\": \"macro-F1 on 1 in %d training rows (by text hash), then "
                    "refitted on all; dev files only evaluate\", \"sentiment\": ",
                    NEWS_MAX_SEQ, a->seed, NEWS_VALID_MOD);
    news_json_head(&training, &nd->csv[0], &nd->csv[1], rs);
    json_buf_puts(&training, ", \"topic\": ");
    news_json_head(&training, &nd->csv[2], &nd->csv[3], rt);
    json_buf_puts(&training, "}");
    if (training.failed) {
        errbuf_printf(err, errlen, "out of memory building the training record");
        goto out;
    }
    news_make_parent(a->out);
    if ((a->use_ngram ? model_news_save_ngram(
                            a->out, h, a->version, model_ngram_buckets(enc->ngram),
                            model_ngram_seed(enc->ngram), training.p, ver, sizeof ver, err, errlen)
                      : model_news_save(a->out, h, a->version, model_bert_weights_sha256(enc->bert),
                                        training.p, ver, sizeof ver, err, errlen)) != 0)
        goto out;
    printf("wrote %s version=%s\n", a->out, ver);
    rc = 0;
out:
    json_buf_free(&training);
    return rc;
}

int train_news_main(int argc, char **argv)
{
    train_news_args_t a;
    news_data_t nd = {0};
    news_encoder_t enc = {0};
    float *emb[4] = {NULL, NULL, NULL, NULL};
    kernels_backend_t *be = NULL;
    model_news_heads_t h = {0};
    news_head_result_t rs, rt;
    double t_start = news_now(), t_enc, t_train;
    char err[1024];
    int rc = 1;

    switch (train_news_parse(argc, argv, &a)) {
    case TRAIN_NEWS_HELP:
        rc = 0;
        goto out;
    case TRAIN_NEWS_USAGE:
        train_news_usage(stderr);
        rc = 2;
        goto out;
    }
    if (news_data_load(&nd, a.data, err, sizeof err) != 0)
        goto fail;
    fprintf(stderr,
            "vigil train news: %s: %zu + %zu sentiment rows, %zu + %zu topic rows (%zu "
            "topics), train + dev\n",
            a.data, nd.csv[0].n, nd.csv[1].n, nd.csv[2].n, nd.csv[3].n, nd.n_topics);

    if (!(be = kernels_backend_new(a.backend, (int)a.threads, err, sizeof err)))
        goto fail;
    fprintf(stderr, "vigil train news: kernels: %s\n", kernels_backend_reason(be));
    if (news_encoder_open(&enc, &a, be, err, sizeof err) != 0)
        goto fail;
    t_enc = news_now();
    if (news_embed(&enc, &nd, emb, err, sizeof err) != 0)
        goto fail;
    t_enc = news_now() - t_enc;

    if (news_heads_alloc(&h, enc.dim, nd.topics, nd.n_topics, err, sizeof err) != 0)
        goto fail;
    t_train = news_now();
    if (news_train_heads(&a, be, &nd, emb, &h, &rs, &rt, err, sizeof err) != 0)
        goto fail;
    t_train = news_now() - t_train;

    if (news_write(&a, &enc, &h, &nd, &rs, &rt, err, sizeof err) != 0)
        goto fail;
    fprintf(stderr,
            "vigil train news: %.1f s in all: encoding %zu texts %.1f s (%.0f texts/s), "
            "training %.1f s\n",
            news_now() - t_start, nd.total, t_enc, t_enc > 0 ? (double)nd.total / t_enc : 0.0,
            t_train);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "vigil train news: %s\n", err);
    rc = 1;
out:
    model_ngram_free(enc.ngram);
    model_bert_free(enc.bert);
    kernels_backend_free(be);
    for (int i = 0; i < 4; i++)
        free(emb[i]);
    news_data_free(&nd);
    free(h.sent_w);
    free(h.sent_b);
    free(h.topic_w);
    free(h.topic_b);
    return rc;
}
