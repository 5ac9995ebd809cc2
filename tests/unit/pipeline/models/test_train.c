/* Training on the kernels (pipeline/models/train.c), CPU backend: the gradients each step takes
 * match central differences of the loss computed here in double (the check that fails when
 * backprop is wrong: a missing ReLU mask, a transposed product, a misplaced class weight); a
 * small MLP learns XOR, which no linear model can, and a softmax head learns separable classes,
 * both with their training loss going down; and a seed gives the same weights twice. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_risk.h"
#include "test.h"
#include "train.h"

static uint64_t rng = 7;
static double uniform(void) /* [0, 1) */
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) * 0x1.0p-53;
}

/* Relative error of got against want: max |got - want| / max |want|. */
static double rel_err(const float *got, const double *want, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - want[i]));
        m = fmax(m, fabs(want[i]));
    }
    return isfinite(d) ? d / (m > 0 ? m : 1) : INFINITY;
}

/* Bound for float gradients against double differences: float rounding is ~1e-7 relative; a
 * wrong gradient is off by O(1). */
#define GRAD_BOUND 1e-4
#define FD_H 1e-6

/* Central differences of loss(ctx) with respect to v[0..n) (parameters loss reads) into fd. */
static void central_differences(const void *ctx, double (*loss)(const void *ctx), double *v,
                                size_t n, double *fd)
{
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + FD_H;
        double up = loss(ctx);
        v[i] = keep - FD_H;
        double down = loss(ctx);
        v[i] = keep;
        fd[i] = (up - down) / (2 * FD_H);
    }
}

/* ---- the MLP's gradient ---- */

#define MD 4 /* input width */
#define MN 9 /* rows */
static const size_t mlp_dims[4] = {MD, 5, 3, 1};

/* The MLP's parameters in double, to perturb: p[l] weights, p[L + l] biases. */
typedef struct mlp_ref {
    const model_risk_weights_t *shape;
    double *p[6];
    const float *x;
    const uint8_t *y;
} mlp_ref_t;

/* Mean binary cross-entropy in double of the MLP at r->p, inputs normalised with the model's
 * statistics, ReLU hidden layers, the loss taken from the logit. *closed (may be NULL) counts the
 * hidden units the ReLU closed, over all rows. */
static double mlp_forward(const mlp_ref_t *r, size_t *closed)
{
    const model_risk_weights_t *w = r->shape;
    size_t L = w->n_layers;
    double a[8], z[8], sum = 0;
    for (size_t row = 0; row < MN; row++) {
        for (size_t i = 0; i < MD; i++)
            a[i] = ((double)r->x[row * MD + i] - w->mean[i]) / w->std[i];
        for (size_t l = 0; l < L; l++) {
            size_t in = w->dims[l], out = w->dims[l + 1];
            for (size_t j = 0; j < out; j++) {
                z[j] = r->p[L + l][j];
                for (size_t i = 0; i < in; i++)
                    z[j] += a[i] * r->p[l][i * out + j];
            }
            for (size_t j = 0; j < out; j++) {
                a[j] = l + 1 < L && z[j] < 0 ? 0 : z[j];
                if (closed && l + 1 < L && z[j] < 0)
                    (*closed)++;
            }
        }
        double t = r->y[row];
        sum += fmax(a[0], 0) - a[0] * t + log1p(exp(-fabs(a[0])));
    }
    return sum / MN;
}

static double mlp_loss(const void *r)
{
    return mlp_forward(r, NULL);
}

static void test_mlp_gradient(kernels_backend_t *be)
{
    model_risk_weights_t w, g;
    float x[MN * MD], loss = NAN;
    uint8_t y[MN];
    double fd[64];
    mlp_ref_t r = {&w, {0}, x, y};
    char err[256];
    size_t L = 3;

    CHECK(model_risk_weights_alloc(&w, mlp_dims, L) == 0);
    CHECK(model_risk_weights_alloc(&g, mlp_dims, L) == 0);
    for (size_t i = 0; i < MD; i++) { /* statistics the gradient must normalise with */
        w.mean[i] = 2.0 * (double)i;
        w.std[i] = 0.5 + (double)i;
    }
    for (size_t i = 0; i < MN * MD; i++)
        x[i] = (float)(w.mean[i % MD] + w.std[i % MD] * (uniform() * 4 - 2));
    for (size_t row = 0; row < MN; row++)
        y[row] = row % 3 == 0;
    for (size_t l = 0; l < L; l++) {
        size_t nw = w.dims[l] * w.dims[l + 1];
        r.p[l] = malloc(nw * sizeof(double));
        r.p[L + l] = malloc(w.dims[l + 1] * sizeof(double));
        for (size_t i = 0; i < nw; i++)
            r.p[l][i] = w.w[l][i] = (float)(uniform() * 2 - 1);
        for (size_t j = 0; j < w.dims[l + 1]; j++)
            r.p[L + l][j] = w.b[l][j] = (float)(uniform() * 0.5 - 0.25);
    }
    CHECK_MSG(train_mlp_gradient(be, &w, x, y, MN, &g, &loss, err, sizeof err) == 0, "%s", err);
    size_t closed = 0, hidden = MN * (mlp_dims[1] + mlp_dims[2]);
    double want_loss = mlp_forward(&r, &closed);
    /* The ReLU's mask matters only if it closes some units and not all. */
    CHECK_MSG(closed > 0 && closed < hidden, "%zu of %zu hidden units closed", closed, hidden);
    CHECK_MSG(fabs(loss - want_loss) < 1e-6 * want_loss, "loss %.9g, in double %.9g", loss,
              want_loss);
    for (size_t l = 0; l < L; l++) {
        size_t nw = w.dims[l] * w.dims[l + 1];
        central_differences(&r, mlp_loss, r.p[l], nw, fd);
        double e = rel_err(g.w[l], fd, nw);
        CHECK_MSG(e < GRAD_BOUND, "layer %zu weights: gradient off by %.3g", l, e);
        central_differences(&r, mlp_loss, r.p[L + l], w.dims[l + 1], fd);
        e = rel_err(g.b[l], fd, w.dims[l + 1]);
        CHECK_MSG(e < GRAD_BOUND, "layer %zu biases: gradient off by %.3g", l, e);
    }
    /* The backward pass reaches the first layer through both ReLUs: its gradient is not 0. */
    double first = 0;
    for (size_t i = 0; i < MD * mlp_dims[1]; i++)
        first = fmax(first, fabs(g.w[0][i]));
    CHECK(first > 1e-3);
    for (size_t i = 0; i < 2 * L; i++)
        free(r.p[i]);
    model_risk_weights_free(&w);
    model_risk_weights_free(&g);
}

/* ---- the softmax head's gradient ---- */

#define SD 4
#define SC 3
#define SN 7

typedef struct head_ref {
    double *W, *b;
    const float *x;
    const int32_t *labels;
    const float *rw; /* row weights or NULL */
} head_ref_t;

/* sum_r rw_r CE_r / sum_r rw_r in double. */
static double head_loss(const void *ctx)
{
    const head_ref_t *h = ctx;
    double sum = 0, wsum = 0;
    for (size_t r = 0; r < SN; r++) {
        double z[SC], mx = -INFINITY, s = 0, rw = h->rw ? h->rw[r] : 1.0;
        for (size_t j = 0; j < SC; j++) {
            z[j] = h->b[j];
            for (size_t i = 0; i < SD; i++)
                z[j] += (double)h->x[r * SD + i] * h->W[i * SC + j];
            mx = fmax(mx, z[j]);
        }
        for (size_t j = 0; j < SC; j++)
            s += exp(z[j] - mx);
        sum += rw * (log(s) + mx - z[h->labels[r]]);
        wsum += rw;
    }
    return sum / wsum;
}

static void test_head_gradient(kernels_backend_t *be)
{
    float W[SD * SC], b[SC], x[SN * SD], rw[SN], gW[SD * SC], gb[SC], loss = NAN;
    double Wd[SD * SC], bd[SC], fd[SD * SC];
    int32_t labels[SN];
    char err[256];

    for (size_t i = 0; i < SD * SC; i++)
        Wd[i] = W[i] = (float)(uniform() * 2 - 1);
    for (size_t j = 0; j < SC; j++)
        bd[j] = b[j] = (float)(uniform() - 0.5);
    for (size_t i = 0; i < SN * SD; i++)
        x[i] = (float)(uniform() * 2 - 1);
    for (size_t r = 0; r < SN; r++) {
        labels[r] = (int32_t)(r % SC);
        rw[r] = (float)(0.2 + 3 * uniform()); /* as class balancing makes them: unequal */
    }
    for (int weighted = 0; weighted < 2; weighted++) {
        head_ref_t h = {Wd, bd, x, labels, weighted ? rw : NULL};
        CHECK_MSG(train_softmax_gradient(be, W, b, SD, SC, x, labels, weighted ? rw : NULL, SN, gW,
                                         gb, &loss, err, sizeof err) == 0,
                  "%s", err);
        central_differences(&h, head_loss, Wd, SD * SC, fd);
        double e = rel_err(gW, fd, SD * SC);
        CHECK_MSG(e < GRAD_BOUND, "weighted %d: weight gradient off by %.3g", weighted, e);
        central_differences(&h, head_loss, bd, SC, fd);
        e = rel_err(gb, fd, SC);
        CHECK_MSG(e < GRAD_BOUND, "weighted %d: bias gradient off by %.3g", weighted, e);
        h.rw = NULL; /* the loss reported is the unweighted mean */
        double want = head_loss(&h);
        CHECK_MSG(fabs(loss - want) < 1e-6 * want, "loss %.9g, in double %.9g", loss, want);
    }
    CHECK(train_softmax_gradient(be, W, b, SD, SC, x, (const int32_t[SN]){0, 1, 2, 3, 0, 1, 2},
                                 NULL, SN, gW, gb, NULL, err, sizeof err) != 0 &&
          strstr(err, "label 3 of row 3") != NULL);
}

/* ---- training ---- */

/* The epochs' training losses from the progress lines in text: first and last, and the count. */
static int epoch_losses(const char *text, double *first, double *last)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "training loss ")) != NULL; p++) {
        double v = strtod(p + strlen("training loss "), NULL);
        if (n++ == 0)
            *first = v;
        *last = v;
    }
    return n;
}

/* XOR of the signs of two inputs (a third is noise): beyond any linear model, so beating chance
 * takes the hidden layer and the gradient through its ReLU. */
static void make_xor(float *x, uint8_t *y, size_t n)
{
    for (size_t r = 0; r < n; r++) {
        float a = (float)(uniform() * 2 - 1), b = (float)(uniform() * 2 - 1);
        x[r * 3 + 0] = 50 + 10 * a; /* offsets and scales the normalisation must undo */
        x[r * 3 + 1] = 0.01f * b;
        x[r * 3 + 2] = (float)uniform();
        y[r] = (a > 0) != (b > 0);
    }
}

static void test_mlp_fit(kernels_backend_t *be)
{
    enum { N = 4000, NT = 1000 };
    const size_t dims[4] = {3, 16, 8, 1};
    float *x = malloc((N + NT) * 3 * sizeof *x), *scores = malloc(NT * sizeof *scores);
    uint8_t *y = malloc(N + NT);
    model_risk_weights_t w, w2;
    char err[256], *log = NULL;
    size_t log_len = 0, right = 0;
    double first = NAN, last = NAN;
    FILE *progress = open_memstream(&log, &log_len);

    CHECK(x && scores && y && progress);
    if (!x || !scores || !y || !progress)
        goto out;
    make_xor(x, y, N + NT);
    CHECK(model_risk_weights_alloc(&w, dims, 3) == 0);
    CHECK(model_risk_weights_alloc(&w2, dims, 3) == 0);
    train_options_t o = {.epochs = 20, .batch = 64, .lr = 1e-2f, .weight_decay = 1e-4f, .seed = 5};
    CHECK_MSG(train_mlp_fit(be, &w, x, y, N, &o, progress, err, sizeof err) == 0, "%s", err);
    fclose(progress);
    progress = NULL;
    CHECK_MSG(epoch_losses(log, &first, &last) == 20, "progress: %s", log);
    CHECK_MSG(last < 0.5 * first, "training loss %.4f after the first epoch, %.4f after the last",
              first, last);
    model_risk_score_ref(&w, x + N * 3, NT, scores);
    for (size_t i = 0; i < NT; i++)
        right += (scores[i] >= 0.5f) == y[N + i];
    CHECK_MSG(right > NT * 9 / 10, "held-out accuracy %.3f on XOR (chance 0.5)",
              (double)right / NT);
    /* The same seed gives the same weights, bit for bit. */
    CHECK_MSG(train_mlp_fit(be, &w2, x, y, N, &o, NULL, err, sizeof err) == 0, "%s", err);
    int same = 1;
    for (size_t l = 0; l < 3; l++)
        same = same && memcmp(w.w[l], w2.w[l], dims[l] * dims[l + 1] * sizeof(float)) == 0 &&
               memcmp(w.b[l], w2.b[l], dims[l + 1] * sizeof(float)) == 0;
    CHECK(same);
    model_risk_weights_free(&w);
    model_risk_weights_free(&w2);
out:
    if (progress)
        fclose(progress);
    free(log);
    free(x);
    free(scores);
    free(y);
}

/* Three classes around three centres in 4 dimensions, the third class rarer (one row in six). */
static void make_classes(float *x, int32_t *labels, size_t n)
{
    static const float centre[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, -1}};
    for (size_t r = 0; r < n; r++) {
        int32_t k = r % 6 == 5 ? 2 : (int32_t)(r % 2);
        labels[r] = k;
        for (size_t i = 0; i < 4; i++)
            x[r * 4 + i] = centre[k][i] + (float)(uniform() - 0.5) * 0.6f;
    }
}

static void test_softmax_fit(kernels_backend_t *be)
{
    enum { N = 1200, NT = 600 };
    float *x = malloc((N + NT) * 4 * sizeof *x), W[12], b[3];
    int32_t *labels = malloc((N + NT) * sizeof *labels), *pred = malloc(NT * sizeof *pred);
    char err[256];

    CHECK(x && labels && pred);
    if (!x || !labels || !pred)
        goto out;
    make_classes(x, labels, N + NT);
    for (int balanced = 0; balanced < 2; balanced++) {
        char *log = NULL;
        size_t log_len = 0;
        double first = NAN, last = NAN, acc, f1;
        FILE *progress = open_memstream(&log, &log_len);
        train_options_t o = {
            .epochs = 10, .batch = 32, .lr = 1e-2f, .seed = 2, .class_balanced = balanced};
        CHECK(progress != NULL);
        if (!progress)
            continue;
        CHECK_MSG(train_softmax_fit(be, W, b, 4, 3, x, labels, N, &o, progress, err, sizeof err) ==
                      0,
                  "%s", err);
        fclose(progress);
        CHECK_MSG(epoch_losses(log, &first, &last) == 10, "progress: %s", log);
        CHECK_MSG(last < 0.5 * first, "balanced %d: training loss %.4f, then %.4f", balanced, first,
                  last);
        train_softmax_predict(W, b, 4, 3, x + N * 4, NT, pred, NULL);
        train_class_metrics(pred, labels + N, NT, 3, &acc, &f1);
        CHECK_MSG(acc > 0.95 && f1 > 0.95, "balanced %d: accuracy %.3f macro-F1 %.3f (chance 1/3)",
                  balanced, acc, f1);
        free(log);
    }
out:
    free(x);
    free(labels);
    free(pred);
}

int main(void)
{
    char err[256];
    kernels_backend_t *be = kernels_backend_new("cpu", 1, err, sizeof err);
    CHECK_MSG(be != NULL, "%s", err);
    if (be) {
        test_mlp_gradient(be);
        test_head_gradient(be);
        test_mlp_fit(be);
        test_softmax_fit(be);
    }
    kernels_backend_free(be);
    return TEST_DONE();
}
