/* A float64 reference for every op of kernels.h: plain loops over dense row-major arrays, written
 * for obviousness rather than speed. The tests compare the backends against it; it is not part of
 * the vigil_kernels library. Shapes are as in kernels.h; every array here is dense (ld = cols). */
#ifndef VIGIL_KERNELS_REF_H
#define VIGIL_KERNELS_REF_H

#include <stdint.h>

#include "kernels.h"

/* C (m x n) = alpha op(A) op(B) + beta C; A is stored m x k (k x m when trans_a), B k x n (n x k
 * when trans_b). */
void ref_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
              const double *a, const double *b, double beta, double *c);
double ref_act(kernels_act_t act, double v);
void ref_bias_act(int64_t rows, int64_t cols, const double *x, const double *bias,
                  kernels_act_t act, double *out);
void ref_layernorm(int64_t rows, int64_t cols, const double *x, const double *gamma,
                   const double *beta, double eps, double *out);
/* mask: NULL, or mask_rows (1 or rows) x cols. */
void ref_softmax(int64_t rows, int64_t cols, const double *x, const double *mask, int64_t mask_rows,
                 double *out);
/* q, k, v, out dense (n_seq * seq_len) x (heads * head_dim); mask NULL or n_seq x seq_len. */
void ref_attention(int64_t n_seq, int64_t seq_len, int64_t heads, int64_t head_dim, double scale,
                   const double *q, const double *k, const double *v, const double *mask,
                   double *out);
void ref_embed(const int32_t *ids, const int32_t *types, int64_t n_seq, int64_t seq_len,
               int64_t dim, const double *tok, const double *pos, const double *type, double *out);
void ref_mean_pool(int64_t n_seq, int64_t seq_len, int64_t dim, const double *x, const double *mask,
                   double *out);
void ref_l2norm(int64_t rows, int64_t cols, const double *x, double eps, double *out);

/* Losses over n elements (rows rows of classes for softmax_xent); each returns the loss and, when
 * dz is not NULL, fills the gradient. */
double ref_bce_logits(int64_t n, const double *z, const double *y, double *dz);
double ref_softmax_xent(int64_t rows, int64_t classes, const double *z, const int32_t *labels,
                        double *dz);
/* y (n x out) = x (n x in) w (in x out) + b, and its backward (each output may be NULL). */
void ref_dense_forward(int64_t n, int64_t in, int64_t out, const double *x, const double *w,
                       const double *b, double *y);
void ref_dense_backward(int64_t n, int64_t in, int64_t out, const double *x, const double *w,
                        const double *dy, double *dx, double *dw, double *db);
/* dx (n) = dy where y > 0, else 0. */
void ref_relu_backward(int64_t n, const double *y, const double *dy, double *dx);
void ref_adamw(int64_t n, const kernels_adam_t *opt, double *param, const double *grad, double *m,
               double *v);

#endif
