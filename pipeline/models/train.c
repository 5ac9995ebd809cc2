/* Training of the risk MLP and the softmax heads on the kernels, and their metrics (see train.h).
 * The host keeps the data, draws the initial weights and the shuffles (one seeded generator) and
 * stages each mini-batch; everything per step (forward, loss, backward, AdamW) is kernels ops on
 * the caller's backend. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "behavior_features.h"
#include "errbuf.h"

/* splitmix64: the trainer's only randomness, so a seed fixes the result. */
static uint64_t train_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double train_normal(uint64_t *s)
{
    double u1 = ((double)(train_rand(s) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(train_rand(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static void train_shuffle(size_t *idx, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(train_rand(s) % i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* ---- parameters on the backend ---- */

/* One parameter tensor on the backend with its gradient and AdamW moments, rows x cols each. */
typedef struct train_param {
    float *p, *g, *m, *v;
    int64_t rows, cols;
} train_param_t;

/* Allocates the four on be, p from the host array init, m and v zero (zeros: a host array of at
 * least rows * cols zeros). */
static int param_new(kernels_backend_t *be, train_param_t *a, const float *init, int64_t rows,
                     int64_t cols, const float *zeros, char *err, size_t errlen)
{
    size_t n = (size_t)(rows * cols);
    a->rows = rows;
    a->cols = cols;
    if (!(a->p = kernels_alloc(be, n, err, errlen)) ||
        !(a->g = kernels_alloc(be, n, err, errlen)) ||
        !(a->m = kernels_alloc(be, n, err, errlen)) || !(a->v = kernels_alloc(be, n, err, errlen)))
        return -1;
    if (kernels_copy_to_backend(be, a->p, init, n, err, errlen) != 0 ||
        kernels_copy_to_backend(be, a->m, zeros, n, err, errlen) != 0 ||
        kernels_copy_to_backend(be, a->v, zeros, n, err, errlen) != 0)
        return -1;
    return 0;
}

static void param_free(kernels_backend_t *be, train_param_t *a)
{
    kernels_free(be, a->p);
    kernels_free(be, a->g);
    kernels_free(be, a->m);
    kernels_free(be, a->v);
    memset(a, 0, sizeof *a);
}

/* AdamW step t (from 1) with the gradient in a->g. */
static int param_step(kernels_backend_t *be, train_param_t *a, const train_options_t *o, int64_t t,
                      char *err, size_t errlen)
{
    kernels_adam_t opt = {o->lr, 0.9f, 0.999f, 1e-8f, o->weight_decay, t};
    kernels_tensor_t p = kernels_tensor_2d(a->p, a->rows, a->cols);
    kernels_tensor_t g = kernels_tensor_2d(a->g, a->rows, a->cols);
    kernels_tensor_t m = kernels_tensor_2d(a->m, a->rows, a->cols);
    kernels_tensor_t v = kernels_tensor_2d(a->v, a->rows, a->cols);
    return kernels_adamw(be, &opt, &p, &g, &m, &v, err, errlen);
}

/* ---- the risk MLP ---- */

/* The MLP on the backend, for mini-batches of up to cap rows. act[l] holds layer l's input
 * (act[0] the normalised batch, act[L] the logits); dz and dprev take turns holding the gradient
 * at a layer's output and at its input. */
typedef struct train_mlp {
    kernels_backend_t *be;
    size_t n_layers, dims[MODEL_RISK_HIDDEN_MAX + 2], cap;
    train_param_t w[MODEL_RISK_HIDDEN_MAX + 1], b[MODEL_RISK_HIDDEN_MAX + 1];
    float *act[MODEL_RISK_HIDDEN_MAX + 2]; /* backend (cap, dims[l]) */
    float *dz, *dprev;                     /* backend (cap, widest layer) */
    float *y;                              /* backend (cap): the labels as 0/1 */
    float *xh, *yh;                        /* host staging of a batch: (cap, dims[0]), (cap) */
} train_mlp_t;

static void mlp_free(train_mlp_t *t)
{
    for (size_t l = 0; l < t->n_layers; l++) {
        param_free(t->be, &t->w[l]);
        param_free(t->be, &t->b[l]);
    }
    for (size_t l = 0; l <= t->n_layers; l++)
        kernels_free(t->be, t->act[l]);
    kernels_free(t->be, t->dz);
    kernels_free(t->be, t->dprev);
    kernels_free(t->be, t->y);
    free(t->xh);
    free(t->yh);
    memset(t, 0, sizeof *t);
}

/* Uploads w's weights to be. On failure t is freed. */
static int mlp_new(train_mlp_t *t, kernels_backend_t *be, const model_risk_weights_t *w, size_t cap,
                   char *err, size_t errlen)
{
    size_t wmax = 0;
    float *zeros = NULL;

    memset(t, 0, sizeof *t);
    t->be = be;
    t->n_layers = w->n_layers;
    t->cap = cap;
    memcpy(t->dims, w->dims, sizeof t->dims);
    for (size_t l = 0; l <= w->n_layers; l++)
        wmax = w->dims[l] > wmax ? w->dims[l] : wmax;
    for (size_t l = 0; l < w->n_layers; l++)
        if (w->dims[l] * w->dims[l + 1] > wmax)
            wmax = w->dims[l] * w->dims[l + 1];
    zeros = calloc(wmax, sizeof *zeros); /* also covers the widest weight matrix */
    t->xh = malloc(cap * w->dims[0] * sizeof *t->xh);
    t->yh = malloc(cap * sizeof *t->yh);
    if (!zeros || !t->xh || !t->yh) {
        errbuf_printf(err, errlen, "out of memory for a %zu-row batch", cap);
        goto err;
    }
    for (size_t l = 0; l < w->n_layers; l++) {
        int64_t in = (int64_t)w->dims[l], out = (int64_t)w->dims[l + 1];
        if (param_new(be, &t->w[l], w->w[l], in, out, zeros, err, errlen) != 0 ||
            param_new(be, &t->b[l], w->b[l], 1, out, zeros, err, errlen) != 0)
            goto err;
    }
    for (size_t l = 0; l <= w->n_layers; l++)
        if (!(t->act[l] = kernels_alloc(be, cap * w->dims[l], err, errlen)))
            goto err;
    if (!(t->dz = kernels_alloc(be, cap * wmax, err, errlen)) ||
        !(t->dprev = kernels_alloc(be, cap * wmax, err, errlen)) ||
        !(t->y = kernels_alloc(be, cap, err, errlen)))
        goto err;
    free(zeros);
    return 0;
err:
    free(zeros);
    mlp_free(t);
    return -1;
}

/* Forward and backward over the nb rows staged in xh and yh: leaves the gradient of the batch's
 * mean loss in every parameter's g, and the loss in *loss (NULL: not computed, which spares a
 * device a wait). */
static int mlp_gradient(train_mlp_t *t, size_t nb, float *loss, char *err, size_t errlen)
{
    kernels_backend_t *be = t->be;
    size_t L = t->n_layers;
    int64_t rows = (int64_t)nb;

    if (kernels_copy_to_backend(be, t->act[0], t->xh, nb * t->dims[0], err, errlen) != 0 ||
        kernels_copy_to_backend(be, t->y, t->yh, nb, err, errlen) != 0)
        return -1;
    /* Forward as model_risk_score, but the last layer keeps the logit: the loss takes it. */
    for (size_t l = 0; l < L; l++) {
        kernels_tensor_t a = kernels_tensor_2d(t->act[l], rows, (int64_t)t->dims[l]);
        kernels_tensor_t w = kernels_tensor_2d(t->w[l].p, t->w[l].rows, t->w[l].cols);
        kernels_tensor_t b = kernels_tensor_2d(t->b[l].p, 1, t->b[l].cols);
        kernels_tensor_t z = kernels_tensor_2d(t->act[l + 1], rows, (int64_t)t->dims[l + 1]);
        kernels_act_t act = l + 1 == L ? KERNELS_ACT_NONE : KERNELS_ACT_RELU;
        if (kernels_gemm(be, 0, 0, 1.0f, &a, &w, 0.0f, &z, err, errlen) != 0 ||
            kernels_bias_act(be, &z, &b, act, &z, err, errlen) != 0)
            return -1;
    }
    kernels_tensor_t z = kernels_tensor_2d(t->act[L], rows, 1);
    kernels_tensor_t y = kernels_tensor_2d(t->y, rows, 1);
    kernels_tensor_t dz = kernels_tensor_2d(t->dz, rows, 1);
    if (kernels_bce_logits(be, &z, &y, loss, &dz, err, errlen) != 0)
        return -1;
    for (size_t l = L; l-- > 0;) {
        int64_t in = (int64_t)t->dims[l], out = (int64_t)t->dims[l + 1];
        kernels_tensor_t x = kernels_tensor_2d(t->act[l], rows, in);
        kernels_tensor_t w = kernels_tensor_2d(t->w[l].p, in, out);
        kernels_tensor_t dy = kernels_tensor_2d(t->dz, rows, out);
        kernels_tensor_t dx = kernels_tensor_2d(t->dprev, rows, in);
        kernels_tensor_t gw = kernels_tensor_2d(t->w[l].g, in, out);
        kernels_tensor_t gb = kernels_tensor_2d(t->b[l].g, 1, out);
        if (kernels_dense_backward(be, &x, &w, &dy, l > 0 ? &dx : NULL, &gw, &gb, err, errlen) != 0)
            return -1;
        if (l > 0) {
            /* act[l] is the ReLU's output: the gradient passes only where it was open. */
            if (kernels_relu_backward(be, &x, &dx, &dx, err, errlen) != 0)
                return -1;
            float *tmp = t->dz;
            t->dz = t->dprev;
            t->dprev = tmp;
        }
    }
    return 0;
}

static int mlp_step(train_mlp_t *t, const train_options_t *o, int64_t step, char *err,
                    size_t errlen)
{
    for (size_t l = 0; l < t->n_layers; l++)
        if (param_step(t->be, &t->w[l], o, step, err, errlen) != 0 ||
            param_step(t->be, &t->b[l], o, step, err, errlen) != 0)
            return -1;
    return 0;
}

/* Copies the weights (grads 0) or the gradient (grads 1) into out's w and b. */
static int mlp_download(train_mlp_t *t, model_risk_weights_t *out, int grads, char *err,
                        size_t errlen)
{
    for (size_t l = 0; l < t->n_layers; l++) {
        size_t in = t->dims[l], o = t->dims[l + 1];
        if (kernels_copy_to_host(t->be, out->w[l], grads ? t->w[l].g : t->w[l].p, in * o, err,
                                 errlen) != 0 ||
            kernels_copy_to_host(t->be, out->b[l], grads ? t->b[l].g : t->b[l].p, o, err, errlen) !=
                0)
            return -1;
    }
    return 0;
}

/* Row x of raw features, normalised as serving does, into out. */
static void mlp_normalise(const model_risk_weights_t *w, const float *x, float *out)
{
    for (size_t i = 0; i < w->dims[0]; i++)
        out[i] = model_risk_normalise(x[i], (float)w->mean[i], (float)(1.0 / w->std[i]));
}

/* He initialisation (keeps ReLU activations' scale), biases 0; the output bias at the base rate
 * (pos of n rows positive), not at 0.5: the first epochs then learn features, not the prior. */
static void mlp_init(model_risk_weights_t *w, size_t pos, size_t n, uint64_t *seed)
{
    size_t L = w->n_layers;
    for (size_t l = 0; l < L; l++) {
        size_t in = w->dims[l], out = w->dims[l + 1];
        double sd = sqrt(2.0 / (double)in);
        for (size_t i = 0; i < in * out; i++)
            w->w[l][i] = (float)(sd * train_normal(seed));
        memset(w->b[l], 0, out * sizeof(float));
    }
    if (pos > 0 && pos < n)
        w->b[L - 1][0] = (float)log((double)pos / (double)(n - pos));
}

int train_mlp_fit(kernels_backend_t *be, model_risk_weights_t *w, const float *x, const uint8_t *y,
                  size_t n, const train_options_t *o, FILE *progress, char *err, size_t errlen)
{
    size_t d = w->dims[0], B = o->batch, pos = 0;
    float *xn = NULL;
    size_t *idx = NULL;
    features_norm_t norm = {0};
    train_mlp_t t = {0};
    uint64_t seed = o->seed;
    int64_t step = 0;
    int rc = -1;

    if (n == 0 || B == 0 || o->epochs < 1) {
        errbuf_printf(err, errlen, "nothing to train on (%zu rows, batch %zu, %d epochs)", n, B,
                      o->epochs);
        return -1;
    }
    if (B > n)
        B = n;
    if (features_norm_fit(&norm, x, n, d) != 0)
        goto oom;
    memcpy(w->mean, norm.mean, d * sizeof *w->mean);
    memcpy(w->std, norm.std, d * sizeof *w->std);
    xn = malloc(n * d * sizeof *xn);
    idx = malloc(n * sizeof *idx);
    if (!xn || !idx)
        goto oom;
    for (size_t r = 0; r < n; r++) {
        mlp_normalise(w, x + r * d, xn + r * d);
        idx[r] = r;
        pos += y[r] != 0;
    }
    mlp_init(w, pos, n, &seed);
    if (mlp_new(&t, be, w, B, err, errlen) != 0)
        goto out;

    for (int ep = 0; ep < o->epochs; ep++) {
        double loss_sum = 0;
        train_shuffle(idx, n, &seed);
        for (size_t s0 = 0; s0 < n; s0 += B) {
            size_t nb = n - s0 < B ? n - s0 : B;
            float loss;
            for (size_t r = 0; r < nb; r++) {
                memcpy(t.xh + r * d, xn + idx[s0 + r] * d, d * sizeof(float));
                t.yh[r] = y[idx[s0 + r]] ? 1.0f : 0.0f;
            }
            if (mlp_gradient(&t, nb, &loss, err, errlen) != 0 ||
                mlp_step(&t, o, ++step, err, errlen) != 0)
                goto out;
            loss_sum += (double)loss * (double)nb;
        }
        if (progress)
            fprintf(progress, "epoch %d/%d: training loss %.5f\n", ep + 1, o->epochs,
                    loss_sum / (double)n);
    }
    if (mlp_download(&t, w, 0, err, errlen) != 0)
        goto out;
    rc = 0;
    goto out;
oom:
    errbuf_printf(err, errlen, "out of memory training on %zu rows", n);
out:
    mlp_free(&t);
    free(xn);
    free(idx);
    features_norm_free(&norm);
    return rc;
}

int train_mlp_gradient(kernels_backend_t *be, const model_risk_weights_t *w, const float *x,
                       const uint8_t *y, size_t n, model_risk_weights_t *g, float *loss, char *err,
                       size_t errlen)
{
    train_mlp_t t;
    int rc = -1;

    if (n == 0) {
        errbuf_printf(err, errlen, "no rows to take the gradient over");
        return -1;
    }
    if (g->n_layers != w->n_layers || memcmp(g->dims, w->dims, sizeof g->dims) != 0) {
        errbuf_printf(err, errlen, "the gradient's layer widths differ from the model's");
        return -1;
    }
    if (mlp_new(&t, be, w, n, err, errlen) != 0)
        return -1;
    for (size_t r = 0; r < n; r++) {
        mlp_normalise(w, x + r * w->dims[0], t.xh + r * w->dims[0]);
        t.yh[r] = y[r] ? 1.0f : 0.0f;
    }
    if (mlp_gradient(&t, n, loss, err, errlen) == 0 && mlp_download(&t, g, 1, err, errlen) == 0)
        rc = 0;
    mlp_free(&t);
    return rc;
}

/* ---- softmax heads ---- */

/* The head on the backend, for mini-batches of up to cap rows. When rows are weighted (class
 * balancing), row r's gradient is scaled by s_r: dW = (s x)^T dz and db = s^T dz, two GEMMs,
 * with the rows of x scaled on the host as the batch is gathered (the kernels have no row-scaling
 * op, and a diagonal matrix would cost cap^2). */
typedef struct train_head {
    kernels_backend_t *be;
    size_t d, c, cap;
    train_param_t w, b;
    float *x, *xs, *s, *z, *dz; /* backend: (cap, d), (cap, d), (1, cap), (cap, c), (cap, c) */
    float *xh, *xsh, *sh;       /* host staging of the same */
    int32_t *lab;               /* host (cap) */
} train_head_t;

static void head_free(train_head_t *t)
{
    param_free(t->be, &t->w);
    param_free(t->be, &t->b);
    kernels_free(t->be, t->x);
    kernels_free(t->be, t->xs);
    kernels_free(t->be, t->s);
    kernels_free(t->be, t->z);
    kernels_free(t->be, t->dz);
    free(t->xh);
    free(t->xsh);
    free(t->sh);
    free(t->lab);
    memset(t, 0, sizeof *t);
}

/* Uploads W (d x c) and b (c) to be. On failure t is freed. */
static int head_new(train_head_t *t, kernels_backend_t *be, const float *W, const float *b,
                    size_t d, size_t c, size_t cap, char *err, size_t errlen)
{
    float *zeros = calloc(d * c, sizeof *zeros);

    memset(t, 0, sizeof *t);
    t->be = be;
    t->d = d;
    t->c = c;
    t->cap = cap;
    t->xh = malloc(cap * d * sizeof *t->xh);
    t->xsh = malloc(cap * d * sizeof *t->xsh);
    t->sh = malloc(cap * sizeof *t->sh);
    t->lab = malloc(cap * sizeof *t->lab);
    if (!zeros || !t->xh || !t->xsh || !t->sh || !t->lab) {
        errbuf_printf(err, errlen, "out of memory for a %zu-row batch", cap);
        goto err;
    }
    if (param_new(be, &t->w, W, (int64_t)d, (int64_t)c, zeros, err, errlen) != 0 ||
        param_new(be, &t->b, b, 1, (int64_t)c, zeros, err, errlen) != 0 ||
        !(t->x = kernels_alloc(be, cap * d, err, errlen)) ||
        !(t->xs = kernels_alloc(be, cap * d, err, errlen)) ||
        !(t->s = kernels_alloc(be, cap, err, errlen)) ||
        !(t->z = kernels_alloc(be, cap * c, err, errlen)) ||
        !(t->dz = kernels_alloc(be, cap * c, err, errlen)))
        goto err;
    free(zeros);
    return 0;
err:
    free(zeros);
    head_free(t);
    return -1;
}

/* Forward and backward over the nb rows staged in xh and lab (and, when weighted, xsh = s x and
 * sh = s, s_r times row r's share 1 / nb): the gradient in w.g and b.g, the unweighted mean
 * cross-entropy in *loss (NULL: not computed, which spares a device a wait). */
static int head_gradient(train_head_t *t, size_t nb, int weighted, float *loss, char *err,
                         size_t errlen)
{
    kernels_backend_t *be = t->be;
    int64_t rows = (int64_t)nb, d = (int64_t)t->d, c = (int64_t)t->c;
    kernels_tensor_t x = kernels_tensor_2d(t->x, rows, d);
    kernels_tensor_t w = kernels_tensor_2d(t->w.p, d, c), b = kernels_tensor_2d(t->b.p, 1, c);
    kernels_tensor_t z = kernels_tensor_2d(t->z, rows, c), dz = kernels_tensor_2d(t->dz, rows, c);
    kernels_tensor_t gw = kernels_tensor_2d(t->w.g, d, c), gb = kernels_tensor_2d(t->b.g, 1, c);

    if (kernels_copy_to_backend(be, t->x, t->xh, nb * t->d, err, errlen) != 0 ||
        kernels_gemm(be, 0, 0, 1.0f, &x, &w, 0.0f, &z, err, errlen) != 0 ||
        kernels_bias_act(be, &z, &b, KERNELS_ACT_NONE, &z, err, errlen) != 0 ||
        kernels_softmax_xent(be, &z, t->lab, loss, &dz, err, errlen) != 0)
        return -1;
    if (!weighted)
        return kernels_dense_backward(be, &x, &w, &dz, NULL, &gw, &gb, err, errlen);
    kernels_tensor_t xs = kernels_tensor_2d(t->xs, rows, d), s = kernels_tensor_2d(t->s, 1, rows);
    if (kernels_copy_to_backend(be, t->xs, t->xsh, nb * t->d, err, errlen) != 0 ||
        kernels_copy_to_backend(be, t->s, t->sh, nb, err, errlen) != 0 ||
        kernels_gemm(be, 1, 0, 1.0f, &xs, &dz, 0.0f, &gw, err, errlen) != 0 ||
        kernels_gemm(be, 0, 0, 1.0f, &s, &dz, 0.0f, &gb, err, errlen) != 0)
        return -1;
    return 0;
}

/* Stages row r of the batch: the features xr, their label and, when weighted (s not NULL), the
 * row's scale *s. */
static void head_stage(train_head_t *t, size_t r, const float *xr, int32_t label, const float *s)
{
    memcpy(t->xh + r * t->d, xr, t->d * sizeof *xr);
    t->lab[r] = label;
    if (s) {
        t->sh[r] = *s;
        for (size_t i = 0; i < t->d; i++)
            t->xsh[r * t->d + i] = *s * xr[i];
    }
}

static int head_download(train_head_t *t, float *W, float *b, int grads, char *err, size_t errlen)
{
    if (kernels_copy_to_host(t->be, W, grads ? t->w.g : t->w.p, t->d * t->c, err, errlen) != 0 ||
        kernels_copy_to_host(t->be, b, grads ? t->b.g : t->b.p, t->c, err, errlen) != 0)
        return -1;
    return 0;
}

/* Labels in [0, c), each checked. */
static int head_check_labels(const int32_t *labels, size_t n, size_t c, char *err, size_t errlen)
{
    for (size_t r = 0; r < n; r++)
        if (labels[r] < 0 || (size_t)labels[r] >= c) {
            errbuf_printf(err, errlen, "label %d of row %zu is outside 0..%zu", (int)labels[r], r,
                          c - 1);
            return -1;
        }
    return 0;
}

int train_softmax_fit(kernels_backend_t *be, float *W, float *b, size_t d, size_t c, const float *x,
                      const int32_t *labels, size_t n, const train_options_t *o, FILE *progress,
                      char *err, size_t errlen)
{
    double *cw = calloc(c ? c : 1, sizeof *cw);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx), B = o->batch > n ? n : o->batch;
    train_head_t t = {0};
    uint64_t seed = o->seed;
    int64_t step = 0;
    int rc = -1;

    if (!cw || !idx) {
        errbuf_printf(err, errlen, "out of memory training a %zu-class head", c);
        goto out;
    }
    if (n == 0 || o->batch == 0 || o->epochs < 1) {
        errbuf_printf(err, errlen, "nothing to train on (%zu rows)", n);
        goto out;
    }
    if (head_check_labels(labels, n, c, err, errlen) != 0)
        goto out;
    for (size_t r = 0; r < n; r++) {
        cw[labels[r]] += 1;
        idx[r] = r;
    }
    for (size_t j = 0; j < c; j++)
        cw[j] = !o->class_balanced ? 1.0 : cw[j] > 0 ? (double)n / ((double)c * cw[j]) : 0.0;
    memset(b, 0, c * sizeof *b);
    for (size_t i = 0; i < d * c; i++)
        W[i] = (float)(0.01 * train_normal(&seed));
    if (head_new(&t, be, W, b, d, c, B, err, errlen) != 0)
        goto out;
    for (int ep = 0; ep < o->epochs; ep++) {
        double loss_sum = 0;
        train_shuffle(idx, n, &seed);
        for (size_t s0 = 0; s0 < n; s0 += B) {
            size_t nb = n - s0 < B ? n - s0 : B;
            double wsum = 0;
            float loss = 0;
            for (size_t r = 0; r < nb; r++)
                wsum += cw[labels[idx[s0 + r]]];
            for (size_t r = 0; r < nb; r++) {
                int32_t k = labels[idx[s0 + r]];
                /* Row r's gradient weighs cw / wsum; softmax_xent gives it 1 / nb already. */
                float s = (float)(cw[k] * (double)nb / wsum);
                head_stage(&t, r, x + idx[s0 + r] * d, k, o->class_balanced ? &s : NULL);
            }
            if (head_gradient(&t, nb, o->class_balanced, progress ? &loss : NULL, err, errlen) !=
                    0 ||
                param_step(be, &t.w, o, ++step, err, errlen) != 0 ||
                param_step(be, &t.b, o, step, err, errlen) != 0)
                goto out;
            loss_sum += (double)loss * (double)nb;
        }
        if (progress)
            fprintf(progress, "epoch %d/%d: training loss %.5f\n", ep + 1, o->epochs,
                    loss_sum / (double)n);
    }
    if (head_download(&t, W, b, 0, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    head_free(&t);
    free(cw);
    free(idx);
    return rc;
}

int train_softmax_gradient(kernels_backend_t *be, const float *W, const float *b, size_t d,
                           size_t c, const float *x, const int32_t *labels, const float *row_weight,
                           size_t n, float *gW, float *gb, float *loss, char *err, size_t errlen)
{
    train_head_t t;
    double wsum = 0;
    int rc = -1;

    if (n == 0) {
        errbuf_printf(err, errlen, "no rows to take the gradient over");
        return -1;
    }
    for (size_t r = 0; r < n; r++)
        wsum += row_weight ? row_weight[r] : 1.0;
    if (!(wsum > 0)) {
        errbuf_printf(err, errlen, "the row weights must sum to more than 0");
        return -1;
    }
    if (head_check_labels(labels, n, c, err, errlen) != 0 ||
        head_new(&t, be, W, b, d, c, n, err, errlen) != 0)
        return -1;
    for (size_t r = 0; r < n; r++) {
        float s = row_weight ? (float)(row_weight[r] * (double)n / wsum) : 1.0f;
        head_stage(&t, r, x + r * d, labels[r], row_weight ? &s : NULL);
    }
    if (head_gradient(&t, n, row_weight != NULL, loss, err, errlen) == 0 &&
        head_download(&t, gW, gb, 1, err, errlen) == 0)
        rc = 0;
    head_free(&t);
    return rc;
}

/* Host softmax of one row of x W + b into p: the evaluation's arithmetic (model_news_classify
 * matches it bit for bit). */
static void softmax_row(const float *W, const float *b, size_t d, size_t c, const float *x,
                        float *p)
{
    float mx = -INFINITY, sum = 0;
    for (size_t j = 0; j < c; j++)
        p[j] = b[j];
    for (size_t i = 0; i < d; i++) {
        const float xi = x[i], *wr = W + i * c;
        for (size_t j = 0; j < c; j++)
            p[j] += xi * wr[j];
    }
    for (size_t j = 0; j < c; j++)
        mx = p[j] > mx ? p[j] : mx;
    for (size_t j = 0; j < c; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    for (size_t j = 0; j < c; j++)
        p[j] /= sum;
}

void train_softmax_predict(const float *W, const float *b, size_t d, size_t c, const float *x,
                           size_t n, int32_t *pred, float *probs)
{
    float stack[64], *p = c <= 64 ? stack : malloc(c * sizeof *p);
    for (size_t r = 0; r < n; r++) {
        float *pr = probs ? probs + r * c : p;
        if (!pr) {
            pred[r] = -1;
            continue;
        }
        softmax_row(W, b, d, c, x + r * d, pr);
        size_t best = 0;
        for (size_t j = 1; j < c; j++)
            if (pr[j] > pr[best])
                best = j;
        pred[r] = (int32_t)best;
    }
    if (p != stack)
        free(p);
}

/* ---- metrics ---- */

typedef struct scored {
    float s;
    uint8_t y;
} scored_t;

static int scored_desc(const void *a, const void *b)
{
    float x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return x > y ? -1 : x < y;
}

static scored_t *train_sorted(const float *scores, const uint8_t *y, size_t n, size_t *pos)
{
    scored_t *v = malloc((n ? n : 1) * sizeof *v);
    *pos = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        v[i] = (scored_t){scores[i], y[i] != 0};
        *pos += v[i].y;
    }
    qsort(v, n, sizeof *v, scored_desc);
    return v;
}

double train_roc_auc(const float *scores, const uint8_t *y, size_t n)
{
    size_t pos, neg;
    scored_t *v = train_sorted(scores, y, n, &pos);
    double area = 0, tp = 0;
    if (!v)
        return NAN;
    neg = n - pos;
    if (pos == 0 || neg == 0) {
        free(v);
        return NAN;
    }
    /* Walk groups of equal score from the top: each negative counts the positives above it, and
     * half of those tied with it. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double gp = 0, gn = 0;
        while (j < n && v[j].s == v[i].s) {
            gp += v[j].y;
            gn += !v[j].y;
            j++;
        }
        area += gn * (tp + gp / 2);
        tp += gp;
        i = j;
    }
    free(v);
    return area / ((double)pos * (double)neg);
}

double train_average_precision(const float *scores, const uint8_t *y, size_t n)
{
    size_t pos;
    scored_t *v = train_sorted(scores, y, n, &pos);
    double ap = 0, tp = 0;
    if (!v)
        return NAN;
    if (pos == 0) {
        free(v);
        return NAN;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double gp = 0;
        while (j < n && v[j].s == v[i].s)
            gp += v[j++].y;
        tp += gp;
        ap += gp / (double)pos * (tp / (double)j); /* recall step times precision at this cut */
        i = j;
    }
    free(v);
    return ap;
}

void train_class_metrics(const int32_t *pred, const int32_t *labels, size_t n, size_t c,
                         double *accuracy, double *macro_f1)
{
    size_t correct = 0;
    double f1_sum = 0;
    for (size_t k = 0; k < c; k++) {
        size_t tp = 0, fp = 0, fn = 0;
        for (size_t i = 0; i < n; i++) {
            int p = pred[i] == (int32_t)k, t = labels[i] == (int32_t)k;
            tp += p && t;
            fp += p && !t;
            fn += !p && t;
        }
        f1_sum += tp == 0 ? 0.0 : 2.0 * (double)tp / (double)(2 * tp + fp + fn);
    }
    for (size_t i = 0; i < n; i++)
        correct += pred[i] == labels[i];
    *accuracy = n ? (double)correct / (double)n : NAN;
    *macro_f1 = c ? f1_sum / (double)c : NAN;
}
