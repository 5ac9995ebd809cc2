/* Internals shared by kernels.c (validation, dispatch) and the backends: the backend as a table
 * of function pointers. kernels.c checks every shape before calling in, so a backend's op may
 * assume its arguments agree; it still reports its own failures (device errors) through err. */
#ifndef VIGIL_KERNELS_IMPL_H
#define VIGIL_KERNELS_IMPL_H

#include "kernels.h"

#ifdef __cplusplus /* the CUDA backend is compiled as C++ */
extern "C" {
#endif

struct kernels_backend {
    const char *name;
    char reason[256]; /* why this backend: filled by kernels.c and the backend's init */
    void *ctx;        /* backend's own state */
    void (*destroy)(kernels_backend_t *be);
    int (*sync)(kernels_backend_t *be, char *err, size_t errlen); /* NULL: ops are synchronous */
    float *(*alloc)(kernels_backend_t *be, size_t n, char *err, size_t errlen);
    void (*free)(kernels_backend_t *be, float *p);
    int (*copy_to_backend)(kernels_backend_t *be, float *dst, const float *src, size_t n, char *err,
                           size_t errlen);
    int (*copy_to_host)(kernels_backend_t *be, float *dst, const float *src, size_t n, char *err,
                        size_t errlen);
    int (*gemm)(kernels_backend_t *be, int trans_a, int trans_b, float alpha,
                const kernels_tensor_t *a, const kernels_tensor_t *b, float beta,
                kernels_tensor_t *c, char *err, size_t errlen);
    int (*bias_act)(kernels_backend_t *be, const kernels_tensor_t *x, const kernels_tensor_t *bias,
                    kernels_act_t act, kernels_tensor_t *out, char *err, size_t errlen);
    int (*layernorm)(kernels_backend_t *be, const kernels_tensor_t *x,
                     const kernels_tensor_t *gamma, const kernels_tensor_t *beta, float eps,
                     kernels_tensor_t *out, char *err, size_t errlen);
    int (*softmax)(kernels_backend_t *be, const kernels_tensor_t *x, const kernels_tensor_t *mask,
                   kernels_tensor_t *out, char *err, size_t errlen);
    int (*attention)(kernels_backend_t *be, const kernels_tensor_t *q, const kernels_tensor_t *k,
                     const kernels_tensor_t *v, const kernels_tensor_t *mask, int64_t n_seq,
                     int64_t heads, float scale, kernels_tensor_t *scratch, kernels_tensor_t *out,
                     char *err, size_t errlen);
    int (*embed)(kernels_backend_t *be, const int32_t *ids, const int32_t *types, int64_t n_seq,
                 int64_t seq_len, const kernels_tensor_t *tok, const kernels_tensor_t *pos,
                 const kernels_tensor_t *type, kernels_tensor_t *out, char *err, size_t errlen);
    int (*mean_pool)(kernels_backend_t *be, const kernels_tensor_t *x, const kernels_tensor_t *mask,
                     kernels_tensor_t *out, char *err, size_t errlen);
    int (*l2norm)(kernels_backend_t *be, const kernels_tensor_t *x, float eps,
                  kernels_tensor_t *out, char *err, size_t errlen);
    int (*bce_logits)(kernels_backend_t *be, const kernels_tensor_t *z, const kernels_tensor_t *y,
                      float *loss, kernels_tensor_t *dz, char *err, size_t errlen);
    int (*softmax_xent)(kernels_backend_t *be, const kernels_tensor_t *z, const int32_t *labels,
                        float *loss, kernels_tensor_t *dz, char *err, size_t errlen);
    int (*dense_backward)(kernels_backend_t *be, const kernels_tensor_t *x,
                          const kernels_tensor_t *w, const kernels_tensor_t *dy,
                          kernels_tensor_t *dx, kernels_tensor_t *dw, kernels_tensor_t *db,
                          char *err, size_t errlen);
    int (*relu_backward)(kernels_backend_t *be, const kernels_tensor_t *y,
                         const kernels_tensor_t *dy, kernels_tensor_t *dx, char *err,
                         size_t errlen);
    int (*adamw)(kernels_backend_t *be, const kernels_adam_t *opt, kernels_tensor_t *param,
                 const kernels_tensor_t *grad, kernels_tensor_t *m, kernels_tensor_t *v, char *err,
                 size_t errlen);
};

/* Fills be with the CPU backend. threads: BLAS threads, 0 for OpenBLAS's default. */
int kernels_cpu_init(kernels_backend_t *be, int threads, char *err, size_t errlen);

#ifdef VIGIL_KERNELS_CUDA
/* 1 when CUDA device `device` can run this build's code, else 0 with the reason in why; on
 * success why describes the device. Leaves no context behind beyond the runtime's own. */
int kernels_cuda_probe(int device, char *why, size_t whylen);
/* Fills be with the CUDA backend on `device` (a stream, a cuBLAS handle, staging buffers). */
int kernels_cuda_init(kernels_backend_t *be, int device, char *err, size_t errlen);
/* kernels_backend_abi() as the module was built: the loader refuses a module of another build
 * whose backend struct has another layout. */
size_t kernels_cuda_abi(void);
#endif

/* The backend struct's layout as a number: its size, and a revision bumped whenever a member is
 * added, removed or replaced (swapping one op for another leaves the size alone). Revision 2:
 * embedding_bag gave way to relu_backward. */
#define KERNELS_BACKEND_REVISION 2
static inline size_t kernels_backend_abi(void)
{
    return ((size_t)KERNELS_BACKEND_REVISION << 16) |
           sizeof(kernels_backend_t); /* well under 64 KiB */
}

/* Row r (0 .. batch * rows - 1) of t. */
static inline float *kernels_row(const kernels_tensor_t *t, int64_t r)
{
    return t->data + (r / t->rows) * t->stride + (r % t->rows) * t->ld;
}

#ifdef __cplusplus
}
#endif

#endif
