/* `vigil train news`'s option search: a head's learning rate, epochs and class balancing, chosen
 * on its training file alone. One training row in NEWS_VALID_MOD (by a hash of its text, so
 * duplicated sentences stay on one side) validates every candidate of a small grid by macro-F1;
 * the candidates train in parallel, one thread and one kernels backend each. train_news.c then
 * refits the winner on every training row. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "kernels.h"
#include "train.h"
#include "train_news_internal.h"

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

int train_news_choose(const char *head, const news_csv_t *csv, const float *x, size_t d, size_t c,
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
