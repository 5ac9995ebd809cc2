/* The float64 reference implementation of the kernels ops (see ref.h). Each function follows the
 * definition in kernels.h literally; no blocking, no tricks. */
#include "ref.h"

#include <math.h>
#include <stdlib.h>

void ref_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
              const double *a, const double *b, double beta, double *c)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < k; p++) {
                double av = trans_a ? a[p * m + i] : a[i * k + p];
                double bv = trans_b ? b[j * k + p] : b[p * n + j];
                s += av * bv;
            }
            /* beta == 0 must not read C (it may hold NaN), as in BLAS. */
            c[i * n + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * c[i * n + j]);
        }
    }
}

double ref_act(kernels_act_t act, double v)
{
    switch (act) {
    case KERNELS_ACT_NONE:
        return v;
    case KERNELS_ACT_RELU:
        return v > 0.0 ? v : 0.0;
    case KERNELS_ACT_GELU:
        return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case KERNELS_ACT_TANH:
        return tanh(v);
    case KERNELS_ACT_SIGMOID:
        return 1.0 / (1.0 + exp(-v));
    }
    return NAN;
}

void ref_bias_act(int64_t rows, int64_t cols, const double *x, const double *bias,
                  kernels_act_t act, double *out)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            out[i * cols + j] = ref_act(act, x[i * cols + j] + (bias ? bias[j] : 0.0));
}

void ref_layernorm(int64_t rows, int64_t cols, const double *x, const double *gamma,
                   const double *beta, double eps, double *out)
{
    for (int64_t i = 0; i < rows; i++) {
        const double *r = x + i * cols;
        double mean = 0.0, var = 0.0;
        for (int64_t j = 0; j < cols; j++)
            mean += r[j];
        mean /= (double)cols;
        for (int64_t j = 0; j < cols; j++)
            var += (r[j] - mean) * (r[j] - mean);
        var /= (double)cols;
        for (int64_t j = 0; j < cols; j++)
            out[i * cols + j] = (r[j] - mean) / sqrt(var + eps) * gamma[j] + beta[j];
    }
}

void ref_softmax(int64_t rows, int64_t cols, const double *x, const double *mask, int64_t mask_rows,
                 double *out)
{
    for (int64_t i = 0; i < rows; i++) {
        const double *mk = mask ? mask + (mask_rows == 1 ? 0 : i) * cols : NULL;
        double mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            double v = x[i * cols + j] + (mk ? mk[j] : 0.0);
            mx = v > mx ? v : mx;
        }
        for (int64_t j = 0; j < cols; j++) {
            double v = x[i * cols + j] + (mk ? mk[j] : 0.0);
            out[i * cols + j] = mx == -INFINITY ? 0.0 : exp(v - mx);
            sum += out[i * cols + j];
        }
        for (int64_t j = 0; j < cols; j++)
            out[i * cols + j] = sum > 0.0 ? out[i * cols + j] / sum : 0.0;
    }
}

void ref_attention(int64_t n_seq, int64_t seq_len, int64_t heads, int64_t head_dim, double scale,
                   const double *q, const double *k, const double *v, const double *mask,
                   double *out)
{
    int64_t w = heads * head_dim;
    double *p = malloc((size_t)seq_len * sizeof(double));
    if (!p)
        abort();
    for (int64_t s = 0; s < n_seq; s++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < seq_len; i++) {
                const double *qi = q + (s * seq_len + i) * w + h * head_dim;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t j = 0; j < seq_len; j++) {
                    const double *kj = k + (s * seq_len + j) * w + h * head_dim;
                    double dot = 0.0;
                    for (int64_t d = 0; d < head_dim; d++)
                        dot += qi[d] * kj[d];
                    p[j] = mask && mask[s * seq_len + j] == 0.0 ? -INFINITY : scale * dot;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int64_t j = 0; j < seq_len; j++) {
                    p[j] = mx == -INFINITY ? 0.0 : exp(p[j] - mx);
                    sum += p[j];
                }
                double *o = out + (s * seq_len + i) * w + h * head_dim;
                for (int64_t d = 0; d < head_dim; d++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < seq_len; j++)
                        acc += p[j] * v[(s * seq_len + j) * w + h * head_dim + d];
                    o[d] = sum > 0.0 ? acc / sum : 0.0;
                }
            }
    free(p);
}

void ref_embed(const int32_t *ids, const int32_t *types, int64_t n_seq, int64_t seq_len,
               int64_t dim, const double *tok, const double *pos, const double *type, double *out)
{
    for (int64_t s = 0; s < n_seq; s++)
        for (int64_t p = 0; p < seq_len; p++) {
            int64_t i = s * seq_len + p;
            int64_t ty = types ? types[i] : 0;
            for (int64_t j = 0; j < dim; j++)
                out[i * dim + j] = tok[ids[i] * dim + j] + pos[p * dim + j] + type[ty * dim + j];
        }
}

void ref_mean_pool(int64_t n_seq, int64_t seq_len, int64_t dim, const double *x, const double *mask,
                   double *out)
{
    for (int64_t s = 0; s < n_seq; s++) {
        double w = 0.0;
        for (int64_t p = 0; p < seq_len; p++)
            w += mask[s * seq_len + p];
        for (int64_t j = 0; j < dim; j++) {
            double acc = 0.0;
            for (int64_t p = 0; p < seq_len; p++)
                acc += mask[s * seq_len + p] * x[(s * seq_len + p) * dim + j];
            out[s * dim + j] = w != 0.0 ? acc / w : 0.0;
        }
    }
}

void ref_l2norm(int64_t rows, int64_t cols, const double *x, double eps, double *out)
{
    for (int64_t i = 0; i < rows; i++) {
        double ss = 0.0;
        for (int64_t j = 0; j < cols; j++)
            ss += x[i * cols + j] * x[i * cols + j];
        double norm = sqrt(ss);
        if (norm < eps)
            norm = eps;
        for (int64_t j = 0; j < cols; j++)
            out[i * cols + j] = x[i * cols + j] / norm;
    }
}

double ref_bce_logits(int64_t n, const double *z, const double *y, double *dz)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        /* -(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))), in its overflow-free form. */
        sum += (z[i] > 0.0 ? z[i] : 0.0) - z[i] * y[i] + log1p(exp(-fabs(z[i])));
        if (dz)
            dz[i] = (1.0 / (1.0 + exp(-z[i])) - y[i]) / (double)n;
    }
    return sum / (double)n;
}

double ref_softmax_xent(int64_t rows, int64_t classes, const double *z, const int32_t *labels,
                        double *dz)
{
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const double *zr = z + r * classes;
        double mx = zr[0], sum = 0.0;
        for (int64_t j = 1; j < classes; j++)
            mx = zr[j] > mx ? zr[j] : mx;
        for (int64_t j = 0; j < classes; j++)
            sum += exp(zr[j] - mx);
        total += log(sum) + mx - zr[labels[r]];
        if (dz)
            for (int64_t j = 0; j < classes; j++)
                dz[r * classes + j] =
                    (exp(zr[j] - mx) / sum - (j == labels[r] ? 1.0 : 0.0)) / (double)rows;
    }
    return total / (double)rows;
}

void ref_dense_forward(int64_t n, int64_t in, int64_t out, const double *x, const double *w,
                       const double *b, double *y)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < out; j++) {
            double s = b ? b[j] : 0.0;
            for (int64_t p = 0; p < in; p++)
                s += x[i * in + p] * w[p * out + j];
            y[i * out + j] = s;
        }
}

void ref_dense_backward(int64_t n, int64_t in, int64_t out, const double *x, const double *w,
                        const double *dy, double *dx, double *dw, double *db)
{
    if (dx)
        ref_gemm(0, 1, n, in, out, 1.0, dy, w, 0.0, dx);
    if (dw)
        ref_gemm(1, 0, in, out, n, 1.0, x, dy, 0.0, dw);
    if (db)
        for (int64_t j = 0; j < out; j++) {
            double s = 0.0;
            for (int64_t i = 0; i < n; i++)
                s += dy[i * out + j];
            db[j] = s;
        }
}

void ref_relu_backward(int64_t n, const double *y, const double *dy, double *dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0 ? dy[i] : 0.0;
}

void ref_adamw(int64_t n, const kernels_adam_t *opt, double *param, const double *grad, double *m,
               double *v)
{
    double b1 = opt->beta1, b2 = opt->beta2, t = (double)opt->step;
    for (int64_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
        v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
        double mhat = m[i] / (1.0 - pow(b1, t)), vhat = v[i] / (1.0 - pow(b2, t));
        param[i] -= (double)opt->lr *
                    (mhat / (sqrt(vhat) + (double)opt->eps) + (double)opt->weight_decay * param[i]);
    }
}
