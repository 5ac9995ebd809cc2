/* Host training of the risk MLP and the softmax heads, and their metrics (see train.h). */
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

/* One parameter array with its AdamW moments. */
typedef struct adam_param {
    float *p, *g, *m, *v;
    size_t n;
} adam_param_t;

static void adam_step(adam_param_t *a, const train_options_t *o, int64_t t)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (size_t i = 0; i < a->n; i++) {
        a->m[i] = b1 * a->m[i] + (1 - b1) * a->g[i];
        a->v[i] = b2 * a->v[i] + (1 - b2) * a->g[i] * a->g[i];
        a->p[i] -=
            o->lr * ((a->m[i] / c1) / (sqrtf(a->v[i] / c2) + eps) + o->weight_decay * a->p[i]);
    }
}

static int adam_alloc(adam_param_t *a, float *p, size_t n)
{
    a->p = p;
    a->n = n;
    a->g = calloc(n, sizeof(float));
    a->m = calloc(n, sizeof(float));
    a->v = calloc(n, sizeof(float));
    return a->g && a->m && a->v ? 0 : -1;
}

static void adam_free(adam_param_t *a)
{
    free(a->g);
    free(a->m);
    free(a->v);
}

/* ---- the risk MLP ---- */

int train_mlp_fit(model_risk_weights_t *w, const float *x, const uint8_t *y, size_t n,
                  const train_options_t *o, FILE *progress, char *err, size_t errlen)
{
    size_t L = w->n_layers, d = w->dims[0], B = o->batch, wmax = 0, pos = 0;
    adam_param_t pw[MODEL_RISK_HIDDEN_MAX + 1] = {{0}}, pb[MODEL_RISK_HIDDEN_MAX + 1] = {{0}};
    float *act[MODEL_RISK_HIDDEN_MAX + 2] = {0}, *dz = NULL, *dprev = NULL, *xn = NULL;
    size_t *idx = NULL;
    features_norm_t norm = {0};
    uint64_t seed = o->seed;
    int64_t step = 0;
    int rc = -1;

    if (n == 0 || B == 0 || o->epochs < 1) {
        errbuf_printf(err, errlen, "nothing to train on (%zu rows, batch %zu, %d epochs)", n, B,
                      o->epochs);
        return -1;
    }
    for (size_t l = 0; l <= L; l++)
        if (w->dims[l] > wmax)
            wmax = w->dims[l];
    if (features_norm_fit(&norm, x, n, d) != 0)
        goto oom;
    memcpy(w->mean, norm.mean, d * sizeof *w->mean);
    memcpy(w->std, norm.std, d * sizeof *w->std);
    xn = malloc(n * d * sizeof *xn);
    idx = malloc(n * sizeof *idx);
    dz = malloc(B * wmax * sizeof *dz);
    dprev = malloc(B * wmax * sizeof *dprev);
    if (!xn || !idx || !dz || !dprev)
        goto oom;
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < d; i++)
            xn[r * d + i] =
                model_risk_normalise(x[r * d + i], (float)w->mean[i], (float)(1.0 / w->std[i]));
        idx[r] = r;
        pos += y[r] != 0;
    }
    for (size_t l = 0; l <= L; l++)
        if (!(act[l] = malloc(B * w->dims[l] * sizeof(float))))
            goto oom;
    for (size_t l = 0; l < L; l++) {
        size_t in = w->dims[l], out = w->dims[l + 1];
        double sd = sqrt(2.0 / (double)in); /* He: keeps ReLU activations' scale */
        for (size_t i = 0; i < in * out; i++)
            w->w[l][i] = (float)(sd * train_normal(&seed));
        memset(w->b[l], 0, out * sizeof(float));
        if (adam_alloc(&pw[l], w->w[l], in * out) != 0 || adam_alloc(&pb[l], w->b[l], out) != 0)
            goto oom;
    }
    /* Start the output at the base rate, not at 0.5: the first epochs then learn features, not
     * the prior. */
    if (pos > 0 && pos < n)
        w->b[L - 1][0] = (float)log((double)pos / (double)(n - pos));

    for (int ep = 0; ep < o->epochs; ep++) {
        double loss_sum = 0;
        train_shuffle(idx, n, &seed);
        for (size_t s0 = 0; s0 < n; s0 += B) {
            size_t nb = n - s0 < B ? n - s0 : B;
            for (size_t r = 0; r < nb; r++)
                memcpy(act[0] + r * d, xn + idx[s0 + r] * d, d * sizeof(float));
            /* Forward: act[l + 1] = relu(act[l] W + b); the last layer keeps the logit. */
            for (size_t l = 0; l < L; l++) {
                size_t in = w->dims[l], out = w->dims[l + 1];
                for (size_t r = 0; r < nb; r++) {
                    const float *a = act[l] + r * in;
                    float *z = act[l + 1] + r * out;
                    for (size_t j = 0; j < out; j++)
                        z[j] = w->b[l][j];
                    for (size_t i = 0; i < in; i++) {
                        const float ai = a[i], *wr = w->w[l] + i * out;
                        if (ai != 0.0f)
                            for (size_t j = 0; j < out; j++)
                                z[j] += ai * wr[j];
                    }
                    if (l + 1 < L)
                        for (size_t j = 0; j < out; j++)
                            z[j] = z[j] > 0 ? z[j] : 0;
                }
            }
            /* Loss and its gradient at the logit. */
            for (size_t r = 0; r < nb; r++) {
                float z = act[L][r], t = y[idx[s0 + r]] ? 1.0f : 0.0f;
                loss_sum += fmaxf(z, 0) - z * t + log1pf(expf(-fabsf(z)));
                dz[r] = (1.0f / (1.0f + expf(-z)) - t) / (float)nb;
            }
            /* Backward. */
            for (size_t l = L; l-- > 0;) {
                size_t in = w->dims[l], out = w->dims[l + 1];
                float *gw = pw[l].g, *gb = pb[l].g;
                memset(gw, 0, in * out * sizeof(float));
                memset(gb, 0, out * sizeof(float));
                for (size_t r = 0; r < nb; r++) {
                    const float *a = act[l] + r * in, *g = dz + r * out;
                    for (size_t j = 0; j < out; j++)
                        gb[j] += g[j];
                    for (size_t i = 0; i < in; i++) {
                        const float ai = a[i];
                        if (ai != 0.0f)
                            for (size_t j = 0; j < out; j++)
                                gw[i * out + j] += ai * g[j];
                    }
                }
                if (l > 0) {
                    for (size_t r = 0; r < nb; r++) {
                        const float *g = dz + r * out, *a = act[l] + r * in;
                        float *dp = dprev + r * in;
                        for (size_t i = 0; i < in; i++) {
                            float s = 0;
                            if (a[i] > 0) /* ReLU passes the gradient only where it was open */
                                for (size_t j = 0; j < out; j++)
                                    s += g[j] * w->w[l][i * out + j];
                            dp[i] = s;
                        }
                    }
                }
                adam_step(&pw[l], o, step + 1);
                adam_step(&pb[l], o, step + 1);
                if (l > 0) {
                    float *t = dz;
                    dz = dprev;
                    dprev = t;
                }
            }
            step++;
        }
        if (progress)
            fprintf(progress, "epoch %d/%d: training loss %.5f\n", ep + 1, o->epochs,
                    loss_sum / (double)n);
    }
    rc = 0;
    goto out;
oom:
    errbuf_printf(err, errlen, "out of memory training on %zu rows", n);
out:
    for (size_t l = 0; l < MODEL_RISK_HIDDEN_MAX + 1; l++) {
        adam_free(&pw[l]);
        adam_free(&pb[l]);
    }
    for (size_t l = 0; l < MODEL_RISK_HIDDEN_MAX + 2; l++)
        free(act[l]);
    free(dz);
    free(dprev);
    free(xn);
    free(idx);
    features_norm_free(&norm);
    return rc;
}

/* ---- softmax heads ---- */

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

int train_softmax_fit(float *W, float *b, size_t d, size_t c, const float *x, const int32_t *labels,
                      size_t n, const train_options_t *o, FILE *progress, char *err, size_t errlen)
{
    adam_param_t pw = {0}, pb = {0};
    float *p = malloc(c * sizeof *p);
    double *cw = calloc(c, sizeof *cw);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    uint64_t seed = o->seed;
    int64_t step = 0;
    int rc = -1;

    if (!p || !cw || !idx || adam_alloc(&pw, W, d * c) != 0 || adam_alloc(&pb, b, c) != 0) {
        errbuf_printf(err, errlen, "out of memory training a %zu-class head", c);
        goto out;
    }
    if (n == 0 || o->batch == 0 || o->epochs < 1) {
        errbuf_printf(err, errlen, "nothing to train on (%zu rows)", n);
        goto out;
    }
    for (size_t r = 0; r < n; r++) {
        if (labels[r] < 0 || (size_t)labels[r] >= c) {
            errbuf_printf(err, errlen, "label %d of row %zu is outside 0..%zu", (int)labels[r], r,
                          c - 1);
            goto out;
        }
        cw[labels[r]] += 1;
        idx[r] = r;
    }
    for (size_t j = 0; j < c; j++)
        cw[j] = !o->class_balanced ? 1.0 : cw[j] > 0 ? (double)n / ((double)c * cw[j]) : 0.0;
    memset(b, 0, c * sizeof *b);
    for (size_t i = 0; i < d * c; i++)
        W[i] = (float)(0.01 * train_normal(&seed));
    for (int ep = 0; ep < o->epochs; ep++) {
        double loss = 0;
        train_shuffle(idx, n, &seed);
        for (size_t s0 = 0; s0 < n; s0 += o->batch) {
            size_t nb = n - s0 < o->batch ? n - s0 : o->batch;
            double wsum = 0;
            for (size_t r = 0; r < nb; r++)
                wsum += cw[labels[idx[s0 + r]]];
            memset(pw.g, 0, d * c * sizeof(float));
            memset(pb.g, 0, c * sizeof(float));
            for (size_t r = 0; r < nb; r++) {
                const float *xr = x + idx[s0 + r] * d;
                int32_t t = labels[idx[s0 + r]];
                float scale = (float)(cw[t] / wsum);
                softmax_row(W, b, d, c, xr, p);
                loss += -log(fmax(p[t], 1e-30)) * cw[t];
                p[t] -= 1.0f;
                for (size_t j = 0; j < c; j++)
                    p[j] *= scale;
                for (size_t j = 0; j < c; j++)
                    pb.g[j] += p[j];
                for (size_t i = 0; i < d; i++)
                    for (size_t j = 0; j < c; j++)
                        pw.g[i * c + j] += xr[i] * p[j];
            }
            step++;
            adam_step(&pw, o, step);
            adam_step(&pb, o, step);
        }
        if (progress)
            fprintf(progress, "epoch %d/%d: training loss %.5f\n", ep + 1, o->epochs,
                    loss / (double)n);
    }
    rc = 0;
out:
    adam_free(&pw);
    adam_free(&pb);
    free(p);
    free(cw);
    free(idx);
    return rc;
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
