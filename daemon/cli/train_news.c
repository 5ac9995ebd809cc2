/* `vigil train news`: the news model's heads (pipeline/models/model_news.h) from labelled CSV
 * files.
 *
 * --data DIR holds fpb/{train,dev}.csv (sentiment: negative / neutral / positive) and
 * topics/{train,dev}.csv (topic names), RFC 4180 CSV with the header label,text. Every text is
 * encoded once by the BERT encoder (L2-normalised sentence embeddings, at most 256 tokens) or the
 * n-gram one; each head is then a linear softmax classifier trained with AdamW on its train file.
 * The encoder and the training run on the kernels backend --backend names (default cpu); each
 * candidate of the option search below trains on a backend of its own, one per thread.
 *
 * The learning rate, the number of epochs and (for topics) class balancing are chosen on the
 * training data alone: one training row in ten (by a hash of its text, so duplicated sentences
 * stay on one side) validates each candidate of a small grid by macro-F1, and the winner is then
 * refitted on every training row. The dev files take no part in any choice: they are the held-out
 * evaluation, whose accuracy and macro-F1 are printed and stored in the file's vigil.training. */
#include "train_news.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
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

#define NEWS_MAX_SEQ 256
#define NEWS_ENCODE_BATCH 512
#define NEWS_VALID_MOD 10 /* one training row in this many validates the choice */
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

/* One file's rows: label and text point into buf, unquoted in place and NUL-terminated. */
typedef struct news_csv {
    char name[64]; /* as the messages and the training record name it: "fpb/train.csv" */
    char *buf;
    size_t n, cap;
    char **label, **text;
    size_t *text_len, *line;
    int32_t *y; /* the class of each row */
    char sha256[65];
} news_csv_t;

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

/* ---- choosing the options on the training data ---- */

/* A text's side of the validation split: FNV-1a of its bytes, mixed with the seed. */
static int news_is_valid_row(const char *text, size_t len, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9E3779B97F4A7C15ULL);
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)text[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h % NEWS_VALID_MOD == 0;
}

typedef struct news_candidate {
    train_options_t o;
    double accuracy, macro_f1;
    int rc;
    char err[256];
} news_candidate_t;

typedef struct news_grid {
    const float *x_fit, *x_val;
    const int32_t *y_fit, *y_val;
    size_t n_fit, n_val, d, c;
    const char *backend; /* each worker trains on a backend of its own by this name */
    news_candidate_t *cand;
    size_t n_cand;
    atomic_size_t next;
} news_grid_t;

static void *news_grid_worker(void *arg)
{
    news_grid_t *g = arg;
    float *w = malloc(g->d * g->c * sizeof *w), *b = malloc(g->c * sizeof *b);
    int32_t *pred = malloc(g->n_val * sizeof *pred);
    char be_err[256] = "out of memory";
    /* One BLAS thread: the workers are the parallelism (and the heads' GEMMs are small). */
    kernels_backend_t *be =
        w && b && pred ? kernels_backend_new(g->backend, 1, be_err, sizeof be_err) : NULL;
    for (;;) {
        size_t j = atomic_fetch_add(&g->next, 1);
        if (j >= g->n_cand)
            break;
        news_candidate_t *k = &g->cand[j];
        if (!be) {
            snprintf(k->err, sizeof k->err, "%s", be_err);
            k->rc = -1;
            continue;
        }
        k->rc = train_softmax_fit(be, w, b, g->d, g->c, g->x_fit, g->y_fit, g->n_fit, &k->o, NULL,
                                  k->err, sizeof k->err);
        if (k->rc == 0) {
            train_softmax_predict(w, b, g->d, g->c, g->x_val, g->n_val, pred, NULL);
            train_class_metrics(pred, g->y_val, g->n_val, g->c, &k->accuracy, &k->macro_f1);
        }
    }
    kernels_backend_free(be);
    free(w);
    free(b);
    free(pred);
    return NULL;
}

/* The candidate options of a head: every learning rate x epoch count (or the fixed one) x class
 * balancing (topics only), in order of preference on a tie. */
static const float news_lrs[] = {3e-3f, 1e-2f, 3e-2f};
static const int news_epochs[] = {10, 30, 60};

/* Chooses o's lr, epochs (unless fixed_epochs) and class balancing for a c-class head on
 * (x, y, n) by macro-F1 on its validation split. *best_f1 receives the winner's. */
static int news_choose(const char *head, const news_csv_t *csv, const float *x, size_t d, size_t c,
                       int try_balanced, int fixed_epochs, int threads, const char *backend,
                       train_options_t *o, double *best_f1, char *err, size_t errlen)
{
    size_t n = csv->n, n_val = 0, n_fit = 0;
    float *x_fit = NULL, *x_val = NULL;
    int32_t *y_fit = NULL, *y_val = NULL;
    pthread_t tid[64];
    int n_threads = 0, rc = -1;
    news_grid_t g;
    news_candidate_t cand[64];
    size_t n_cand = 0;

    for (size_t r = 0; r < n; r++)
        n_val += news_is_valid_row(csv->text[r], csv->text_len[r], o->seed);
    n_fit = n - n_val;
    if (n_val < 10 || n_fit < 10) {
        errbuf_printf(err, errlen, "%s: too few rows (%zu) to choose the options on", csv->name, n);
        return -1;
    }
    x_fit = malloc(n_fit * d * sizeof *x_fit);
    x_val = malloc(n_val * d * sizeof *x_val);
    y_fit = malloc(n_fit * sizeof *y_fit);
    y_val = malloc(n_val * sizeof *y_val);
    if (!x_fit || !x_val || !y_fit || !y_val) {
        errbuf_printf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t r = 0, i = 0, k = 0; r < n; r++) {
        if (news_is_valid_row(csv->text[r], csv->text_len[r], o->seed)) {
            memcpy(x_val + k * d, x + r * d, d * sizeof *x);
            y_val[k++] = csv->y[r];
        } else {
            memcpy(x_fit + i * d, x + r * d, d * sizeof *x);
            y_fit[i++] = csv->y[r];
        }
    }
    for (size_t e = 0; e < sizeof news_epochs / sizeof news_epochs[0]; e++) {
        if (fixed_epochs && e > 0)
            break;
        for (size_t l = 0; l < sizeof news_lrs / sizeof news_lrs[0]; l++)
            for (int bal = 0; bal <= try_balanced; bal++) {
                train_options_t co = *o;
                co.epochs = fixed_epochs ? fixed_epochs : news_epochs[e];
                co.lr = news_lrs[l];
                co.class_balanced = bal;
                cand[n_cand++] = (news_candidate_t){.o = co};
            }
    }
    g.x_fit = x_fit;
    g.x_val = x_val;
    g.y_fit = y_fit;
    g.y_val = y_val;
    g.n_fit = n_fit;
    g.n_val = n_val;
    g.d = d;
    g.c = c;
    g.backend = backend;
    g.cand = cand;
    g.n_cand = n_cand;
    atomic_init(&g.next, 0);
    fprintf(stderr,
            "vigil train news: %s: choosing among %zu option sets on %zu training rows, "
            "validating on %zu (1 in %d by text hash)\n",
            head, n_cand, n_fit, n_val, NEWS_VALID_MOD);
    for (int t = 0; t < threads && t < 64 && (size_t)t < n_cand; t++) {
        if (pthread_create(&tid[n_threads], NULL, news_grid_worker, &g) != 0)
            break;
        n_threads++;
    }
    if (n_threads == 0)
        news_grid_worker(&g);
    for (int t = 0; t < n_threads; t++)
        pthread_join(tid[t], NULL);
    size_t best = n_cand;
    for (size_t j = 0; j < n_cand; j++) {
        if (cand[j].rc != 0) {
            errbuf_printf(err, errlen, "%s head: %s", head, cand[j].err);
            goto out;
        }
        fprintf(stderr,
                "vigil train news: %s: lr=%g epochs=%d class_balanced=%d: validation "
                "accuracy=%.4f macro_f1=%.4f\n",
                head, (double)cand[j].o.lr, cand[j].o.epochs, cand[j].o.class_balanced,
                cand[j].accuracy, cand[j].macro_f1);
        if (best == n_cand || cand[j].macro_f1 > cand[best].macro_f1)
            best = j;
    }
    *o = cand[best].o;
    *best_f1 = cand[best].macro_f1;
    fprintf(stderr, "vigil train news: %s: chose lr=%g epochs=%d class_balanced=%d\n", head,
            (double)o->lr, o->epochs, o->class_balanced);
    rc = 0;
out:
    free(x_fit);
    free(x_val);
    free(y_fit);
    free(y_val);
    return rc;
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
    if (news_choose(head, train, x_train, d, c, try_balanced, fixed_epochs, threads, backend,
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

int train_news_main(int argc, char **argv)
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
    const char *data = NULL, *model_dir = getenv("VIGIL_MODEL_DIR"), *version = NULL;
    const char *out = NULL, *backend = "cpu";
    int use_ngram = 0;
    model_ngram_t *ngram = NULL;
    long v, threads = sysconf(_SC_NPROCESSORS_ONLN), epochs = 0;
    uint64_t seed = 1;
    int rc = 1, opt;
    news_csv_t csv[4];
    static const char *const files[4] = {"fpb/train.csv", "fpb/dev.csv", "topics/train.csv",
                                         "topics/dev.csv"};
    char err[1024], ver[128];
    json_buf_t training = {0}; /* vigil.training */
    char **topics = NULL;
    size_t n_topics = 0, total = 0, done = 0, d = 0;
    float *emb[4] = {NULL, NULL, NULL, NULL};
    kernels_backend_t *be = NULL;
    model_bert_t *bert = NULL;
    model_news_heads_t h = {0};
    news_head_result_t rs, rt;
    double t_start = news_now(), t_enc0, t_enc = 0;

    memset(csv, 0, sizeof csv);
    if (!model_dir || !model_dir[0])
        model_dir = news_default_model_dir;
    if (threads < 1)
        threads = 1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            data = optarg;
            break;
        case 'm':
            model_dir = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'e':
            if (news_parse_int(optarg, 1, 1000, &epochs) != 0) {
                fprintf(stderr, "vigil train news: --epochs wants 1..1000\n");
                goto usage;
            }
            break;
        case 't':
            if (news_parse_int(optarg, 1, 64, &threads) != 0) {
                fprintf(stderr, "vigil train news: --threads wants 1..64\n");
                goto usage;
            }
            break;
        case 'S':
            if (news_parse_int(optarg, 0, LONG_MAX, &v) != 0) {
                fprintf(stderr, "vigil train news: --seed wants a number >= 0\n");
                goto usage;
            }
            seed = (uint64_t)v;
            break;
        case 'V':
            version = optarg;
            break;
        case 'E':
            if (strcmp(optarg, "bert") != 0 && strcmp(optarg, "ngram") != 0) {
                fprintf(stderr, "vigil train news: --encoder wants bert or ngram\n");
                goto usage;
            }
            use_ngram = strcmp(optarg, "ngram") == 0;
            break;
        case 'B':
            backend = optarg;
            break;
        case 'h':
            train_news_usage(stdout);
            rc = 0;
            goto out;
        default:
            goto usage;
        }
    }
    if (!data || optind != argc) {
        fprintf(stderr, "vigil train news: %s\n",
                data ? "unexpected argument" : "--data is required");
        goto usage;
    }

    /* The data, every label checked before the long part starts. */
    for (int i = 0; i < 4; i++) {
        if (news_csv_read(&csv[i], data, files[i], err, sizeof err) != 0)
            goto fail;
        total += csv[i].n;
    }
    for (int i = 0; i < 2; i++)
        if (news_map_labels(&csv[i], (char *const *)model_news_sentiment_names,
                            MODEL_NEWS_N_SENTIMENT, 0, "negative, neutral or positive", err,
                            sizeof err) != 0)
            goto fail;
    if (news_topic_names(&csv[2], &topics, &n_topics) != 0) {
        errbuf_printf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (n_topics < 2 || n_topics > MODEL_NEWS_TOPICS_MAX) {
        errbuf_printf(err, sizeof err, "%s: %zu topics; a topic head needs 2..%d", csv[2].name,
                      n_topics, MODEL_NEWS_TOPICS_MAX);
        goto fail;
    }
    if (news_map_labels(&csv[2], topics, n_topics, 1, "a topic", err, sizeof err) != 0 ||
        news_map_labels(&csv[3], topics, n_topics, 1, "a topic of topics/train.csv", err,
                        sizeof err) != 0)
        goto fail;
    fprintf(stderr,
            "vigil train news: %s: %zu + %zu sentiment rows, %zu + %zu topic rows (%zu "
            "topics), train + dev\n",
            data, csv[0].n, csv[1].n, csv[2].n, csv[3].n, n_topics);

    /* The embeddings. */
    if (!out)
        out = use_ngram ? "models/news-heads-ngram.safetensors" : "models/news-heads.safetensors";
    if (!(be = kernels_backend_new(backend, (int)threads, err, sizeof err)))
        goto fail;
    fprintf(stderr, "vigil train news: kernels: %s\n", kernels_backend_reason(be));
    if (use_ngram) {
        if (!(ngram = model_ngram_new(MODEL_NGRAM_BUCKETS, MODEL_NGRAM_DIM, MODEL_NGRAM_SEED, err,
                                      sizeof err)))
            goto fail;
        d = model_ngram_dim(ngram);
        fprintf(stderr, "vigil train news: hashed n-gram encoder (%u buckets, %zu wide)\n",
                model_ngram_buckets(ngram), d);
    } else {
        if (!(bert = model_bert_load(be, model_dir, NEWS_MAX_SEQ, err, sizeof err)))
            goto fail;
        d = model_bert_dim(bert);
        fprintf(stderr,
                "vigil train news: encoder %s (%zu wide, weights sha256 %.12s...), %ld threads\n",
                model_dir, d, model_bert_weights_sha256(bert), threads);
    }
    t_enc0 = news_now();
    for (int i = 0; i < 4; i++) {
        if (!(emb[i] = malloc(csv[i].n * d * sizeof *emb[i]))) {
            errbuf_printf(err, sizeof err, "out of memory for %zu embeddings", csv[i].n);
            goto fail;
        }
        if (use_ngram
                ? news_encode_ngram(ngram, &csv[i], emb[i], err, sizeof err) != 0
                : news_encode(bert, &csv[i], emb[i], &done, total, t_enc0, err, sizeof err) != 0)
            goto fail;
    }
    t_enc = news_now() - t_enc0;

    /* The heads. */
    h.dim = d;
    h.n_sentiment = MODEL_NEWS_N_SENTIMENT;
    h.n_topic = n_topics;
    h.sentiment_labels = (char **)model_news_sentiment_names;
    h.topic_labels = topics;
    h.sent_w = malloc(d * MODEL_NEWS_N_SENTIMENT * sizeof *h.sent_w);
    h.sent_b = malloc(MODEL_NEWS_N_SENTIMENT * sizeof *h.sent_b);
    h.topic_w = malloc(d * n_topics * sizeof *h.topic_w);
    h.topic_b = malloc(n_topics * sizeof *h.topic_b);
    if (!h.sent_w || !h.sent_b || !h.topic_w || !h.topic_b) {
        errbuf_printf(err, sizeof err, "out of memory for the heads");
        goto fail;
    }
    double t_train0 = news_now();
    if (news_train_head("sentiment", &csv[0], emb[0], &csv[1], emb[1], d, MODEL_NEWS_N_SENTIMENT,
                        (char *const *)model_news_sentiment_names, 0, (int)epochs, (int)threads, be,
                        backend, seed, h.sent_w, h.sent_b, &rs, err, sizeof err) != 0 ||
        news_train_head("topic", &csv[2], emb[2], &csv[3], emb[3], d, n_topics, topics, 1,
                        (int)epochs, (int)threads, be, backend, seed, h.topic_w, h.topic_b, &rt,
                        err, sizeof err) != 0)
        goto fail;
    double t_train = news_now() - t_train0;
    printf("held-out sentiment (%s, %zu rows): accuracy=%.4f macro_f1=%.4f\n", csv[1].name,
           csv[1].n, rs.accuracy, rs.macro_f1);
    printf("held-out topic (%s, %zu rows): accuracy=%.4f macro_f1=%.4f\n", csv[3].name, csv[3].n,
           rt.accuracy, rt.macro_f1);

    /* The file. */
    const char *base = use_ngram ? "ngram" : strrchr(model_dir, '/');
    if (!use_ngram)
        base = base && base[1] ? base + 1 : model_dir;
    json_buf_puts(&training, "{\"encoder\": ");
    json_buf_string(&training, base);
    json_buf_printf(&training,
                    ", \"max_seq\": %d, \"normalize\": true, \"seed\": %" PRIu64
                    ", \"selection\": \"macro-F1 on 1 in %d training rows (by text hash), then "
                    "refitted on all; dev files only evaluate\", \"sentiment\": ",
                    NEWS_MAX_SEQ, seed, NEWS_VALID_MOD);
    news_json_head(&training, &csv[0], &csv[1], &rs);
    json_buf_puts(&training, ", \"topic\": ");
    news_json_head(&training, &csv[2], &csv[3], &rt);
    json_buf_puts(&training, "}");
    if (training.failed) {
        errbuf_printf(err, sizeof err, "out of memory building the training record");
        goto fail;
    }
    news_make_parent(out);
    if ((use_ngram ? model_news_save_ngram(out, &h, version, model_ngram_buckets(ngram),
                                           model_ngram_seed(ngram), training.p, ver, sizeof ver,
                                           err, sizeof err)
                   : model_news_save(out, &h, version, model_bert_weights_sha256(bert), training.p,
                                     ver, sizeof ver, err, sizeof err)) != 0)
        goto fail;
    printf("wrote %s version=%s\n", out, ver);
    fprintf(stderr,
            "vigil train news: %.1f s in all: encoding %zu texts %.1f s (%.0f texts/s), "
            "training %.1f s\n",
            news_now() - t_start, total, t_enc, t_enc > 0 ? (double)total / t_enc : 0.0, t_train);
    rc = 0;
    goto out;
usage:
    train_news_usage(stderr);
    rc = 2;
    goto out;
fail:
    fprintf(stderr, "vigil train news: %s\n", err);
    rc = 1;
out:
    model_ngram_free(ngram);
    model_bert_free(bert);
    kernels_backend_free(be);
    for (int i = 0; i < 4; i++) {
        free(emb[i]);
        news_csv_free(&csv[i]);
    }
    free(topics);
    free(h.sent_w);
    free(h.sent_b);
    free(h.topic_w);
    free(h.topic_b);
    json_buf_free(&training);
    return rc;
}
