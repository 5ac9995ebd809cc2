/* Tensor operations for vigil's models (MLP scorer, MiniLM-style text encoder), behind a backend
 * chosen at run time: "cpu" (OpenBLAS GEMMs, plain C loops elsewhere) or "cuda" (cuBLAS GEMMs,
 * kernels of our own elsewhere; built when nvcc is found). This header is the whole public API;
 * nothing here includes anything else of vigil.
 *
 * Tensors. A kernels_tensor_t is a float32 view, row-major, of `batch` matrices of rows x cols:
 * element (b, i, j) lives at data[b * stride + i * ld + j]. ld >= cols lets a view address a
 * column block or a padded buffer; stride lets one view cover a strided batch (attention heads).
 * The view does not own its memory: data comes from kernels_alloc on the same backend (device
 * memory for CUDA), and is read/written only through the ops and kernels_copy_*.
 *
 * Sizes: batch * rows and ld are at most 2^31 - 1 (BLAS and GPU grids take 32-bit sizes).
 *
 * Row-wise ops (bias_act, layernorm, softmax, l2norm, ...) treat a tensor as batch * rows rows of
 * cols elements. Ops taking an `out` accept out == in (same view) unless their comment says not.
 * Integer inputs (token ids, labels) are host arrays: they are small, and a device backend copies
 * them itself.
 *
 * Errors. Every op returns 0, or -1 with a message in err (errlen bytes, may be 0): shapes that do
 * not agree, a NULL tensor, a failing backend. Nothing prints or exits. */
#ifndef VIGIL_KERNELS_H
#define VIGIL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus /* the CUDA backend is compiled as C++ */
extern "C" {
#endif

typedef struct kernels_tensor {
    float *data;
    int64_t rows, cols;
    int64_t ld;     /* elements between rows, >= cols */
    int64_t batch;  /* number of matrices, >= 1 */
    int64_t stride; /* elements between matrices (ignored when batch == 1) */
} kernels_tensor_t;

/* A dense rows x cols view (ld = cols, batch 1). */
kernels_tensor_t kernels_tensor_2d(float *data, int64_t rows, int64_t cols);
/* batch dense rows x cols matrices, one after the other. */
kernels_tensor_t kernels_tensor_3d(float *data, int64_t batch, int64_t rows, int64_t cols);

typedef struct kernels_backend kernels_backend_t;

/* name: "cpu"; "cuda" (device 0) or "cuda:N"; or "auto": CUDA when this build has it and a device
 * is usable, else CPU (kernels_backend_reason says which and why, for the caller to log).
 * threads: the CPU backend's BLAS thread count (0: leave OpenBLAS's default). NULL with err.
 *
 * A CUDA backend is one stream with its own cuBLAS handle and workspace: its ops are queued in
 * order and return before the device has run them. Copies to the host wait for everything queued
 * before them; kernels_sync waits explicitly. A fault while the device runs an op (an illegal
 * address, say) is reported by the next copy to the host or sync. Two backends on one device are
 * two streams and may overlap; memory from kernels_alloc is usable by both. */
kernels_backend_t *kernels_backend_new(const char *name, int threads, char *err, size_t errlen);
void kernels_backend_free(kernels_backend_t *be);
const char *kernels_backend_name(const kernels_backend_t *be);
/* One line on why this backend runs: the device it uses, or why "auto" fell back to the CPU. */
const char *kernels_backend_reason(const kernels_backend_t *be);
/* 1 when kernels_backend_new(name) would find what it needs (for "cuda": built in and a usable
 * device), else 0 with the reason in why. Creates nothing. */
int kernels_backend_available(const char *name, char *why, size_t whylen);
/* Waits until every op queued on be has run; reports a fault that happened meanwhile. */
int kernels_sync(kernels_backend_t *be, char *err, size_t errlen);

/* Memory on the backend, in floats. kernels_alloc returns NULL with err; kernels_free(NULL) is a
 * no-op. Copies move n floats between host and backend memory. */
float *kernels_alloc(kernels_backend_t *be, size_t n, char *err, size_t errlen);
void kernels_free(kernels_backend_t *be, float *p);
int kernels_copy_to_backend(kernels_backend_t *be, float *dst, const float *src, size_t n,
                            char *err, size_t errlen);
int kernels_copy_to_host(kernels_backend_t *be, float *dst, const float *src, size_t n, char *err,
                         size_t errlen);

/* C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T (trans_*). With batch > 1 every matrix
 * of C gets its own product; A or B may have batch 1 to be shared by all. C must not overlap A or
 * B. beta == 0 overwrites C (its old contents, even NaN, are not read). */
int kernels_gemm(kernels_backend_t *be, int trans_a, int trans_b, float alpha,
                 const kernels_tensor_t *a, const kernels_tensor_t *b, float beta,
                 kernels_tensor_t *c, char *err, size_t errlen);

typedef enum kernels_act {
    KERNELS_ACT_NONE,
    KERNELS_ACT_RELU,
    KERNELS_ACT_GELU, /* exact: 0.5 x (1 + erf(x / sqrt 2)), as BERT */
    KERNELS_ACT_TANH,
    KERNELS_ACT_SIGMOID,
} kernels_act_t;

/* out = act(x + bias), bias a 1 x cols row added to every row (NULL: no bias). */
int kernels_bias_act(kernels_backend_t *be, const kernels_tensor_t *x, const kernels_tensor_t *bias,
                     kernels_act_t act, kernels_tensor_t *out, char *err, size_t errlen);

/* Per row: out = (x - mean) / sqrt(var + eps) * gamma + beta, var the biased variance; gamma and
 * beta 1 x cols rows. */
int kernels_layernorm(kernels_backend_t *be, const kernels_tensor_t *x,
                      const kernels_tensor_t *gamma, const kernels_tensor_t *beta, float eps,
                      kernels_tensor_t *out, char *err, size_t errlen);

/* Per row: out = softmax(x + mask). mask (NULL: none) has cols columns and either one row, added
 * to every row, or as many rows (batch * rows) as x. -INFINITY in the mask excludes an element; a
 * row excluded entirely comes out all zeros. */
int kernels_softmax(kernels_backend_t *be, const kernels_tensor_t *x, const kernels_tensor_t *mask,
                    kernels_tensor_t *out, char *err, size_t errlen);

/* Multi-head scaled dot-product attention as in BERT, over n_seq sequences of seq_len tokens.
 * q, k, v and out are (n_seq * seq_len) x (heads * head_dim), batch 1; ld may exceed the width,
 * so q, k and v can be column blocks of one fused QKV projection. For sequence s and head h
 * (columns h * head_dim to (h + 1) * head_dim - 1):
 *   out_sh = softmax(scale * q_sh k_sh^T, keys with mask 0 excluded) v_sh
 * mask (NULL: every key) is n_seq x seq_len, the 0/1 token mask also given to mean_pool: keys with
 * weight 0 (padding) get no attention; a query whose keys are all masked gets zeros. scratch
 * receives the attention probabilities: batch n_seq * heads (sequence-major) matrices of
 * seq_len x seq_len. out must not overlap q, k, v or scratch. */
int kernels_attention(kernels_backend_t *be, const kernels_tensor_t *q, const kernels_tensor_t *k,
                      const kernels_tensor_t *v, const kernels_tensor_t *mask, int64_t n_seq,
                      int64_t heads, float scale, kernels_tensor_t *scratch, kernels_tensor_t *out,
                      char *err, size_t errlen);

/* BERT's input embedding: for sequence s and position p, row s * seq_len + p of out is
 * tok[ids[s][p]] + pos[p] + type[types[s][p]]. ids and types (NULL: all type 0) are host arrays of
 * n_seq * seq_len; ids must be < tok->rows, types < type->rows, seq_len <= pos->rows. out is
 * (n_seq * seq_len) x dim. */
int kernels_embed(kernels_backend_t *be, const int32_t *ids, const int32_t *types, int64_t n_seq,
                  int64_t seq_len, const kernels_tensor_t *tok, const kernels_tensor_t *pos,
                  const kernels_tensor_t *type, kernels_tensor_t *out, char *err, size_t errlen);

/* Masked mean over tokens: x holds n_seq matrices (batch) of seq_len x dim, mask is n_seq x
 * seq_len (weights, usually 0/1), out is n_seq x dim: out[s] = sum_p mask[s][p] x[s][p] /
 * sum_p mask[s][p]; zeros when the mask sums to 0. */
int kernels_mean_pool(kernels_backend_t *be, const kernels_tensor_t *x,
                      const kernels_tensor_t *mask, kernels_tensor_t *out, char *err,
                      size_t errlen);

/* Per row: out = x / max(||x||_2, eps). */
int kernels_l2norm(kernels_backend_t *be, const kernels_tensor_t *x, float eps,
                   kernels_tensor_t *out, char *err, size_t errlen);

/* Binary cross-entropy with logits, averaged over all N elements of z:
 *   loss = mean(max(z, 0) - z y + log(1 + exp(-|z|))),   dz = (sigmoid(z) - y) / N.
 * y has z's shape (targets in [0, 1]). loss (host, may be NULL) and dz (may be NULL, may be z)
 * are outputs. */
int kernels_bce_logits(kernels_backend_t *be, const kernels_tensor_t *z, const kernels_tensor_t *y,
                       float *loss, kernels_tensor_t *dz, char *err, size_t errlen);

/* Softmax cross-entropy, averaged over the R rows of z (R x C logits), labels a host array of R
 * classes in [0, C):  loss = mean(-log softmax(z)[label]),  dz = (softmax(z) - onehot) / R. */
int kernels_softmax_xent(kernels_backend_t *be, const kernels_tensor_t *z, const int32_t *labels,
                         float *loss, kernels_tensor_t *dz, char *err, size_t errlen);

/* Backward of the dense layer y = x w + b (x n x in, w in x out, dy n x out):
 *   dx = dy w^T (n x in),  dw = x^T dy (in x out),  db = column sums of dy (1 x out).
 * Each output may be NULL (not computed); they are overwritten, not accumulated. All batch 1. */
int kernels_dense_backward(kernels_backend_t *be, const kernels_tensor_t *x,
                           const kernels_tensor_t *w, const kernels_tensor_t *dy,
                           kernels_tensor_t *dx, kernels_tensor_t *dw, kernels_tensor_t *db,
                           char *err, size_t errlen);

/* Backward of y = relu(x): dx = dy where y > 0, else 0. A select, not a product: where y <= 0 the
 * gradient is 0 whatever dy holds there (even NaN or infinity). y may be the ReLU's output or its
 * input (they agree on the sign that matters). y, dy and dx have the same shape; dx may be dy or
 * y (same view). */
int kernels_relu_backward(kernels_backend_t *be, const kernels_tensor_t *y,
                          const kernels_tensor_t *dy, kernels_tensor_t *dx, char *err,
                          size_t errlen);

/* One Adam step with decoupled weight decay (AdamW; weight_decay 0 is Adam), as PyTorch:
 *   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
 *   p -= lr (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay p).
 * step is t, counted from 1. param, grad, m, v have the same shape; m and v start at 0. */
typedef struct kernels_adam {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step;
} kernels_adam_t;
int kernels_adamw(kernels_backend_t *be, const kernels_adam_t *opt, kernels_tensor_t *param,
                  const kernels_tensor_t *grad, kernels_tensor_t *m, kernels_tensor_t *v, char *err,
                  size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
