/* `vigil train risk`: the risk model from labelled event files (daemon/data/event_file.h).
 *
 * The events are featurised in file order with one entity state, exactly as the daemon would
 * featurise one partition holding them, under the configured feature spec (features.spec). The
 * last --valid-fraction of the rows (the most recent, when the files are in time order) is held
 * out: the MLP trains on the rest, and the held-out ROC AUC, average precision and
 * precision/recall at 0.5 are printed and stored in the model file's vigil.training. Training
 * runs on the kernels backend --backend names (default cpu). */
#include "train_risk.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "decoder.h"
#include "errbuf.h"
#include "event_file.h"
#include "featurize.h"
#include "json.h"
#include "kernels.h"
#include "model_risk.h"
#include "train.h"

#define TRAIN_RISK_FILES_MAX 64

extern char **environ;

static void train_risk_usage(FILE *f)
{
    fprintf(f, "usage: vigil train risk --data FILE [--data FILE ...] [options]\n"
               "Trains the risk MLP on labelled events (.csv, .jsonl, .avro; see\n"
               "`vigil produce --output`) and writes a model file.\n"
               "  --data FILE            labelled event file, repeatable (read in order)\n"
               "  --out PATH             model file (default models/risk.safetensors)\n"
               "  --config FILE          vigild configuration: features.spec, ingest.schema_dir\n"
               "  --set KEY=VALUE        a configuration key, repeatable\n"
               "  --hidden W[,W...]      hidden layer widths (default 64,32)\n"
               "  --epochs N             passes over the data (default 6)\n"
               "  --lr X                 AdamW learning rate (default 0.002)\n"
               "  --valid-fraction F     newest fraction held out for evaluation (default 0.2)\n"
               "  --seed N               initialisation and shuffling (default 1)\n"
               "  --version NAME         model version (default risk-<sha256 prefix>)\n"
               "  --backend NAME         kernels backend to train on: cpu (default), cuda,\n"
               "                         cuda:N, or auto (CUDA when usable, else cpu)\n"
               "Exit status: 0 written, 1 failure, 2 usage.\n");
}

/* Grows the row arrays to hold one more row of width d. */
static int train_risk_grow(float **x, uint8_t **y, size_t *cap, size_t n, size_t d)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 65536;
    float *nx = realloc(*x, nc * d * sizeof *nx);
    if (!nx)
        return -1;
    *x = nx;
    uint8_t *ny = realloc(*y, nc);
    if (!ny)
        return -1;
    *y = ny;
    *cap = nc;
    return 0;
}

static int train_risk_parse_hidden(const char *s, size_t *dims, size_t *n_hidden)
{
    char *end;
    *n_hidden = 0;
    while (*s) {
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || errno || v < 1 || v > 4096 || *n_hidden == MODEL_RISK_HIDDEN_MAX)
            return -1;
        dims[1 + (*n_hidden)++] = v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return *n_hidden ? 0 : -1;
}

/* ", key: v" into the training record: a held-out metric to 4 places, or null when it could not
 * be computed (NaN is not JSON). */
static void train_risk_metric(json_buf_t *b, const char *key, double v)
{
    json_buf_printf(b, ", \"%s\": ", key);
    if (isnan(v))
        json_buf_puts(b, "null");
    else
        json_buf_printf(b, "%.4f", v);
}

/* The command line. */
typedef struct train_risk_args {
    const char *data[TRAIN_RISK_FILES_MAX];
    size_t n_data;
    const char *out, *cfg_path, *version, *backend;
    const char **flags; /* the --set values: room for argc + 1, n_flags of them used */
    size_t n_flags;
    size_t dims[MODEL_RISK_HIDDEN_MAX + 2], n_hidden; /* dims[0], the input, is the spec's */
    train_options_t o;
    double valid_fraction;
} train_risk_args_t;

/* The labelled rows in file order: n rows of d features in x, their labels in y. */
typedef struct train_risk_rows {
    float *x;
    uint8_t *y;
    size_t n, cap, d;
    size_t fraud, skipped; /* labelled fraud rows; unlabelled events (featurised, not kept) */
} train_risk_rows_t;

/* The held-out figures; NaN when there are none or they cannot be computed. */
typedef struct train_risk_metrics {
    double auc, ap, prec, rec;
} train_risk_metrics_t;

enum { TRAIN_RISK_GO = 0, TRAIN_RISK_HELP = 1, TRAIN_RISK_USAGE = -1 };

/* Parses argv into a (whose flags the caller allocated: argc + 1 of them). TRAIN_RISK_HELP when
 * --help printed the usage, TRAIN_RISK_USAGE when a usage error was printed (the caller prints the
 * usage after it). */
static int train_risk_parse(int argc, char **argv, train_risk_args_t *a)
{
    static const struct option options[] = {
        {"data", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"hidden", required_argument, NULL, 'H'},
        {"epochs", required_argument, NULL, 'e'},
        {"lr", required_argument, NULL, 'l'},
        {"valid-fraction", required_argument, NULL, 'v'},
        {"seed", required_argument, NULL, 'S'},
        {"version", required_argument, NULL, 'V'},
        {"backend", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'd':
            if (a->n_data == TRAIN_RISK_FILES_MAX) {
                fprintf(stderr, "vigil train risk: at most %d --data files\n",
                        TRAIN_RISK_FILES_MAX);
                return TRAIN_RISK_USAGE;
            }
            a->data[a->n_data++] = optarg;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'c':
            a->cfg_path = optarg;
            break;
        case 's':
            a->flags[a->n_flags++] = optarg;
            break;
        case 'H':
            if (train_risk_parse_hidden(optarg, a->dims, &a->n_hidden) != 0) {
                fprintf(stderr, "vigil train risk: --hidden wants 1..%d widths in 1..4096\n",
                        MODEL_RISK_HIDDEN_MAX);
                return TRAIN_RISK_USAGE;
            }
            break;
        case 'e':
            a->o.epochs = (int)strtol(optarg, &end, 10);
            if (*end || a->o.epochs < 1 || a->o.epochs > 1000) {
                fprintf(stderr, "vigil train risk: --epochs wants 1..1000\n");
                return TRAIN_RISK_USAGE;
            }
            break;
        case 'l':
            a->o.lr = strtof(optarg, &end);
            if (*end || !(a->o.lr > 0) || a->o.lr > 1) {
                fprintf(stderr, "vigil train risk: --lr wants a number in (0, 1]\n");
                return TRAIN_RISK_USAGE;
            }
            break;
        case 'v':
            a->valid_fraction = strtod(optarg, &end);
            if (*end || a->valid_fraction < 0 || a->valid_fraction >= 1) {
                fprintf(stderr, "vigil train risk: --valid-fraction wants 0 <= F < 1\n");
                return TRAIN_RISK_USAGE;
            }
            break;
        case 'S':
            a->o.seed = strtoull(optarg, &end, 10);
            if (*end) {
                fprintf(stderr, "vigil train risk: --seed wants a number\n");
                return TRAIN_RISK_USAGE;
            }
            break;
        case 'V':
            a->version = optarg;
            break;
        case 'B':
            a->backend = optarg;
            break;
        case 'h':
            train_risk_usage(stdout);
            return TRAIN_RISK_HELP;
        default:
            return TRAIN_RISK_USAGE;
        }
    }
    if (a->n_data == 0 || optind != argc) {
        fprintf(stderr, "vigil train risk: %s\n",
                a->n_data ? "unexpected argument" : "--data is required");
        return TRAIN_RISK_USAGE;
    }
    a->dims[a->n_hidden + 1] = 1;
    return TRAIN_RISK_GO;
}

/* Featurises the events of the files in order into rows, with one entity state st. */
static int train_risk_featurize(const featurize_t *fz, features_state_t *st,
                                const char *const *data, size_t n_data, train_risk_rows_t *rows,
                                char *err, size_t errlen)
{
    event_file_reader_t *rd = NULL;
    size_t d = rows->d;

    for (size_t f = 0; f < n_data; f++) {
        ingest_event_t ev;
        int label, r;
        if (!(rd = event_file_reader_new(data[f], err, errlen)))
            return -1;
        while ((r = event_file_read(rd, &ev, &label, err, errlen)) == 1) {
            if (train_risk_grow(&rows->x, &rows->y, &rows->cap, rows->n, d) != 0) {
                errbuf_printf(err, errlen, "out of memory at %zu events", rows->n);
                goto err;
            }
            /* Every event updates the state, labelled or not: the features of later events
             * depend on it. Only labelled ones become training rows. */
            if (featurize_event(fz, st, &ev, rows->x + rows->n * d) != 0) {
                errbuf_printf(err, errlen, "out of memory in the entity state");
                goto err;
            }
            if (label < 0) {
                rows->skipped++;
                continue;
            }
            rows->y[rows->n] = (uint8_t)label;
            rows->fraud += rows->y[rows->n++];
        }
        if (r < 0)
            goto err;
        event_file_reader_free(rd);
        rd = NULL;
    }
    return 0;
err:
    event_file_reader_free(rd);
    return -1;
}

/* Scores the n_valid rows after the first n_train with w, prints the held-out line and fills m
 * (all NaN when nothing is held out). */
static int train_risk_held_out(const model_risk_weights_t *w, const train_risk_rows_t *rows,
                               size_t n_train, train_risk_metrics_t *m, char *err, size_t errlen)
{
    size_t n_valid = rows->n - n_train, tp = 0, fp = 0, fn = 0;
    const uint8_t *y = rows->y + n_train;
    float *scores;

    *m = (train_risk_metrics_t){NAN, NAN, NAN, NAN};
    if (n_valid == 0)
        return 0;
    if (!(scores = malloc(n_valid * sizeof *scores))) {
        errbuf_printf(err, errlen, "out of memory");
        return -1;
    }
    model_risk_score_ref(w, rows->x + n_train * rows->d, n_valid, scores);
    m->auc = train_roc_auc(scores, y, n_valid);
    m->ap = train_average_precision(scores, y, n_valid);
    for (size_t i = 0; i < n_valid; i++) {
        int p = scores[i] >= 0.5f, t = y[i];
        tp += p && t;
        fp += p && !t;
        fn += !p && t;
    }
    free(scores);
    m->prec = tp + fp ? (double)tp / (double)(tp + fp) : NAN;
    m->rec = tp + fn ? (double)tp / (double)(tp + fn) : NAN;
    printf("held-out: events=%zu fraud=%zu roc_auc=%.4f average_precision=%.4f "
           "precision@0.5=%.4f recall@0.5=%.4f\n",
           n_valid, tp + fn, m->auc, m->ap, m->prec, m->rec);
    return 0;
}

/* Writes w to a->out with its training record (vigil.training) and the spec's columns, and prints
 * the file and its version. */
static int train_risk_save(const train_risk_args_t *a, const featurize_t *fz,
                           const model_risk_weights_t *w, const train_risk_rows_t *rows,
                           size_t n_train, const train_risk_metrics_t *m, char *err, size_t errlen)
{
    json_buf_t training = {0};
    const char **cols = NULL;
    char ver[128];
    int rc = -1;

    json_buf_printf(
        &training,
        "{\"rows\": %zu, \"train_rows\": %zu, \"valid_rows\": %zu, \"fraud_rows\": %zu, "
        "\"epochs\": %d, \"lr\": %g, \"seed\": %" PRIu64,
        rows->n, n_train, rows->n - n_train, rows->fraud, a->o.epochs, (double)a->o.lr, a->o.seed);
    train_risk_metric(&training, "valid_roc_auc", m->auc);
    train_risk_metric(&training, "valid_average_precision", m->ap);
    train_risk_metric(&training, "valid_precision_at_0_5", m->prec);
    train_risk_metric(&training, "valid_recall_at_0_5", m->rec);
    json_buf_puts(&training, "}");
    if (!(cols = malloc(rows->d * sizeof *cols)) || training.failed) {
        errbuf_printf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < rows->d; i++)
        cols[i] = features_spec_column(featurize_spec(fz), i);
    model_risk_info_t info = {a->version, featurize_spec_text(fz), featurize_spec_hash(fz), cols,
                              training.p};
    if (model_risk_save(a->out, w, &info, ver, sizeof ver, err, errlen) != 0)
        goto out;
    printf("wrote %s version=%s\n", a->out, ver);
    rc = 0;
out:
    free(cols);
    json_buf_free(&training);
    return rc;
}

int train_risk_main(int argc, char **argv)
{
    train_risk_args_t a = {
        .out = "models/risk.safetensors",
        .backend = "cpu",
        .flags = calloc((size_t)argc + 1, sizeof(char *)),
        .dims = {0, 64, 32, 1},
        .n_hidden = 2,
        .o = {.epochs = 6, .batch = 256, .lr = 2e-3f, .weight_decay = 1e-4f, .seed = 1},
        .valid_fraction = 0.2,
    };
    daemon_config_t cfg;
    int cfg_loaded = 0, rc = 1;
    ingest_avro_t *dec = NULL;
    featurize_t *fz = NULL;
    features_state_t *st = NULL;
    kernels_backend_t *be = NULL;
    train_risk_rows_t rows = {0};
    model_risk_weights_t w = {0};
    train_risk_metrics_t m;
    char err[1024];

    if (!a.flags) {
        fprintf(stderr, "vigil train risk: out of memory\n");
        return 1;
    }
    switch (train_risk_parse(argc, argv, &a)) {
    case TRAIN_RISK_HELP:
        rc = 0;
        goto out;
    case TRAIN_RISK_USAGE:
        train_risk_usage(stderr);
        rc = 2;
        goto out;
    }
    if (daemon_config_load(&cfg, a.cfg_path, environ, a.flags, a.n_flags, err, sizeof err) != 0) {
        fprintf(stderr, "vigil train risk: configuration error: %s\n", err);
        rc = 2;
        goto out;
    }
    cfg_loaded = 1;
    if (strcmp(cfg.features_spec, "off") == 0) {
        fprintf(stderr, "vigil train risk: features.spec is off: the risk model needs features\n");
        goto out;
    }
    /* Before the data, so a backend that is not there fails at once. One thread: the MLP's GEMMs
     * are too small for the CPU backend to gain from more. */
    if (!(be = kernels_backend_new(a.backend, 1, err, sizeof err)))
        goto fail;
    fprintf(stderr, "vigil train risk: kernels: %s\n", kernels_backend_reason(be));
    if (!(dec = daemon_decoder_new(&cfg, INGEST_KIND_EVENT, err, sizeof err)) ||
        !(fz = featurize_new(dec, cfg.features_spec, err, sizeof err)) ||
        !(st = features_state_new(featurize_spec(fz), (uint32_t)cfg.features_max_entities,
                                  (int64_t)cfg.features_ttl_s * 1000, err, sizeof err)))
        goto fail;
    rows.d = a.dims[0] = features_spec_width(featurize_spec(fz));
    if (train_risk_featurize(fz, st, a.data, a.n_data, &rows, err, sizeof err) != 0)
        goto fail;

    size_t n_valid = (size_t)((double)rows.n * a.valid_fraction), n_train = rows.n - n_valid;
    fprintf(stderr,
            "vigil train risk: %zu labelled events (%zu fraud, %.2f%%), %zu unlabelled; "
            "%zu features; training on %zu, holding out the last %zu\n",
            rows.n, rows.fraud, rows.n ? 100.0 * (double)rows.fraud / (double)rows.n : 0.0,
            rows.skipped, rows.d, n_train, n_valid);
    if (n_train < 100) {
        fprintf(stderr, "vigil train risk: too few labelled events to train on (%zu)\n", n_train);
        goto out;
    }
    if (model_risk_weights_alloc(&w, a.dims, a.n_hidden + 1) != 0) {
        fprintf(stderr, "vigil train risk: out of memory for the weights\n");
        goto out;
    }
    if (train_mlp_fit(be, &w, rows.x, rows.y, n_train, &a.o, stderr, err, sizeof err) != 0 ||
        train_risk_held_out(&w, &rows, n_train, &m, err, sizeof err) != 0 ||
        train_risk_save(&a, fz, &w, &rows, n_train, &m, err, sizeof err) != 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "vigil train risk: %s\n", err);
out:
    model_risk_weights_free(&w);
    kernels_backend_free(be);
    features_state_free(st);
    featurize_free(fz);
    ingest_avro_free(dec);
    if (cfg_loaded)
        daemon_config_free(&cfg);
    free(a.flags);
    free(rows.x);
    free(rows.y);
    return rc;
}
