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

int train_risk_main(int argc, char **argv)
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
    const char *data[TRAIN_RISK_FILES_MAX], *out = "models/risk.safetensors", *cfg_path = NULL;
    const char *version = NULL, *backend = "cpu",
               **flags = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_data = 0, n_flags = 0, dims[MODEL_RISK_HIDDEN_MAX + 2] = {0, 64, 32, 1}, n_hidden = 2;
    train_options_t o = {.epochs = 6, .batch = 256, .lr = 2e-3f, .weight_decay = 1e-4f, .seed = 1};
    double valid_fraction = 0.2;
    daemon_config_t cfg;
    int cfg_loaded = 0, rc = 1, opt;
    ingest_avro_t *dec = NULL;
    featurize_t *fz = NULL;
    features_state_t *st = NULL;
    event_file_reader_t *rd = NULL;
    float *x = NULL, *scores = NULL;
    uint8_t *y = NULL;
    size_t n = 0, cap = 0, d, skipped = 0;
    model_risk_weights_t w = {0};
    kernels_backend_t *be = NULL;
    char err[1024], ver[128];
    json_buf_t training = {0}; /* vigil.training */

    if (!flags) {
        fprintf(stderr, "vigil train risk: out of memory\n");
        return 1;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'd':
            if (n_data == TRAIN_RISK_FILES_MAX) {
                fprintf(stderr, "vigil train risk: at most %d --data files\n",
                        TRAIN_RISK_FILES_MAX);
                goto usage;
            }
            data[n_data++] = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'c':
            cfg_path = optarg;
            break;
        case 's':
            flags[n_flags++] = optarg;
            break;
        case 'H':
            if (train_risk_parse_hidden(optarg, dims, &n_hidden) != 0) {
                fprintf(stderr, "vigil train risk: --hidden wants 1..%d widths in 1..4096\n",
                        MODEL_RISK_HIDDEN_MAX);
                goto usage;
            }
            break;
        case 'e':
            o.epochs = (int)strtol(optarg, &end, 10);
            if (*end || o.epochs < 1 || o.epochs > 1000) {
                fprintf(stderr, "vigil train risk: --epochs wants 1..1000\n");
                goto usage;
            }
            break;
        case 'l':
            o.lr = strtof(optarg, &end);
            if (*end || !(o.lr > 0) || o.lr > 1) {
                fprintf(stderr, "vigil train risk: --lr wants a number in (0, 1]\n");
                goto usage;
            }
            break;
        case 'v':
            valid_fraction = strtod(optarg, &end);
            if (*end || valid_fraction < 0 || valid_fraction >= 1) {
                fprintf(stderr, "vigil train risk: --valid-fraction wants 0 <= F < 1\n");
                goto usage;
            }
            break;
        case 'S':
            o.seed = strtoull(optarg, &end, 10);
            if (*end) {
                fprintf(stderr, "vigil train risk: --seed wants a number\n");
                goto usage;
            }
            break;
        case 'V':
            version = optarg;
            break;
        case 'B':
            backend = optarg;
            break;
        case 'h':
            train_risk_usage(stdout);
            rc = 0;
            goto out;
        default:
            goto usage;
        }
    }
    if (n_data == 0 || optind != argc) {
        fprintf(stderr, "vigil train risk: %s\n",
                n_data ? "unexpected argument" : "--data is required");
        goto usage;
    }
    dims[n_hidden + 1] = 1;
    if (daemon_config_load(&cfg, cfg_path, environ, flags, n_flags, err, sizeof err) != 0) {
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
    if (!(be = kernels_backend_new(backend, 1, err, sizeof err))) {
        fprintf(stderr, "vigil train risk: %s\n", err);
        goto out;
    }
    fprintf(stderr, "vigil train risk: kernels: %s\n", kernels_backend_reason(be));
    if (!(dec = daemon_decoder_new(&cfg, INGEST_KIND_EVENT, err, sizeof err)) ||
        !(fz = featurize_new(dec, cfg.features_spec, err, sizeof err)) ||
        !(st = features_state_new(featurize_spec(fz), (uint32_t)cfg.features_max_entities,
                                  (int64_t)cfg.features_ttl_s * 1000, err, sizeof err))) {
        fprintf(stderr, "vigil train risk: %s\n", err);
        goto out;
    }
    d = features_spec_width(featurize_spec(fz));
    dims[0] = d;

    for (size_t f = 0; f < n_data; f++) {
        ingest_event_t ev;
        int label, r;
        if (!(rd = event_file_reader_new(data[f], err, sizeof err))) {
            fprintf(stderr, "vigil train risk: %s\n", err);
            goto out;
        }
        while ((r = event_file_read(rd, &ev, &label, err, sizeof err)) == 1) {
            if (train_risk_grow(&x, &y, &cap, n, d) != 0) {
                fprintf(stderr, "vigil train risk: out of memory at %zu events\n", n);
                goto out;
            }
            /* Every event updates the state, labelled or not: the features of later events
             * depend on it. Only labelled ones become training rows. */
            if (featurize_event(fz, st, &ev, x + n * d) != 0) {
                fprintf(stderr, "vigil train risk: out of memory in the entity state\n");
                goto out;
            }
            if (label < 0) {
                skipped++;
                continue;
            }
            y[n++] = (uint8_t)label;
        }
        if (r < 0) {
            fprintf(stderr, "vigil train risk: %s\n", err);
            goto out;
        }
        event_file_reader_free(rd);
        rd = NULL;
    }
    size_t n_valid = (size_t)((double)n * valid_fraction), n_train = n - n_valid, pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += y[i];
    fprintf(stderr,
            "vigil train risk: %zu labelled events (%zu fraud, %.2f%%), %zu unlabelled; "
            "%zu features; training on %zu, holding out the last %zu\n",
            n, pos, n ? 100.0 * (double)pos / (double)n : 0.0, skipped, d, n_train, n_valid);
    if (n_train < 100) {
        fprintf(stderr, "vigil train risk: too few labelled events to train on (%zu)\n", n_train);
        goto out;
    }
    if (model_risk_weights_alloc(&w, dims, n_hidden + 1) != 0) {
        fprintf(stderr, "vigil train risk: out of memory for the weights\n");
        goto out;
    }
    if (train_mlp_fit(be, &w, x, y, n_train, &o, stderr, err, sizeof err) != 0) {
        fprintf(stderr, "vigil train risk: %s\n", err);
        goto out;
    }

    double auc = NAN, ap = NAN, prec = NAN, rec = NAN;
    if (n_valid > 0) {
        size_t tp = 0, fp = 0, fn = 0;
        scores = malloc(n_valid * sizeof *scores);
        if (!scores) {
            fprintf(stderr, "vigil train risk: out of memory\n");
            goto out;
        }
        model_risk_score_ref(&w, x + n_train * d, n_valid, scores);
        auc = train_roc_auc(scores, y + n_train, n_valid);
        ap = train_average_precision(scores, y + n_train, n_valid);
        for (size_t i = 0; i < n_valid; i++) {
            int p = scores[i] >= 0.5f, t = y[n_train + i];
            tp += p && t;
            fp += p && !t;
            fn += !p && t;
        }
        prec = tp + fp ? (double)tp / (double)(tp + fp) : NAN;
        rec = tp + fn ? (double)tp / (double)(tp + fn) : NAN;
        printf("held-out: events=%zu fraud=%zu roc_auc=%.4f average_precision=%.4f "
               "precision@0.5=%.4f recall@0.5=%.4f\n",
               n_valid, tp + fn, auc, ap, prec, rec);
    }
    json_buf_printf(
        &training,
        "{\"rows\": %zu, \"train_rows\": %zu, \"valid_rows\": %zu, \"fraud_rows\": %zu, "
        "\"epochs\": %d, \"lr\": %g, \"seed\": %" PRIu64,
        n, n_train, n_valid, pos, o.epochs, (double)o.lr, o.seed);
    train_risk_metric(&training, "valid_roc_auc", auc);
    train_risk_metric(&training, "valid_average_precision", ap);
    train_risk_metric(&training, "valid_precision_at_0_5", prec);
    train_risk_metric(&training, "valid_recall_at_0_5", rec);
    json_buf_puts(&training, "}");
    const char **cols = malloc(d * sizeof *cols);
    if (!cols || training.failed) {
        free(cols);
        fprintf(stderr, "vigil train risk: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < d; i++)
        cols[i] = features_spec_column(featurize_spec(fz), i);
    model_risk_info_t info = {version, featurize_spec_text(fz), featurize_spec_hash(fz), cols,
                              training.p};
    int wrc = model_risk_save(out, &w, &info, ver, sizeof ver, err, sizeof err);
    free(cols);
    if (wrc != 0) {
        fprintf(stderr, "vigil train risk: %s\n", err);
        goto out;
    }
    printf("wrote %s version=%s\n", out, ver);
    rc = 0;
    goto out;
usage:
    train_risk_usage(stderr);
    rc = 2;
out:
    json_buf_free(&training);
    event_file_reader_free(rd);
    model_risk_weights_free(&w);
    kernels_backend_free(be);
    features_state_free(st);
    featurize_free(fz);
    ingest_avro_free(dec);
    if (cfg_loaded)
        daemon_config_free(&cfg);
    free(flags);
    free(x);
    free(y);
    free(scores);
    return rc;
}
