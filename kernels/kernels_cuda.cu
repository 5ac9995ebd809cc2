/* The CUDA backend: cuBLAS for the GEMMs, kernels of our own for everything else, everything
 * queued on the backend's one stream. Each backend owns its stream, its cuBLAS handle and that
 * handle's workspace, pinned host buffers for copies (two halves, so the host copies one chunk
 * while the device moves the other) and for the small integer inputs of an op (token ids and
 * types, labels), and the device buffers those land in.
 *
 * Row-major GEMMs go to column-major cuBLAS through C^T = op(B)^T op(A)^T: a row-major matrix is
 * its transpose in column-major, so swapping the operands (and m with n) gives the product with
 * no copy. cuBLAS runs in its default math mode: full float32, no TF32.
 *
 * Every CUDA and cuBLAS call is checked; a failure becomes "kernels cuda: <call> failed (<what>)
 * at <file>:<line>" in the caller's err. Kernel launches are checked with cudaGetLastError; a fault
 * while a kernel runs surfaces at the next copy to the host or kernels_sync.
 *
 * Reductions (layer norm moments, norms, softmax sums, losses) accumulate in double, as the CPU
 * backend does, so both keep the same error bounds; and, as there, no a*b+c is contracted into a
 * fused multiply-add (--fmad=false), so both round the same elementwise formulas alike.
 *
 * Every entry point makes the backend's device current on the calling thread and leaves it so. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_impl.h"

#define STAGE_HALF_BYTES ((size_t)4 << 20)      /* each half of the copy staging buffer */
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20) /* what cuBLAS recommends on Hopper */
#define ROW_BLOCK 128                           /* threads per row for the row-wise kernels */
#define ELT_BLOCK 256                           /* threads per block for elementwise kernels */
#define MAX_GRID ((int64_t)1 << 20)             /* grid-stride loops cover the rest */

typedef struct cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;             /* device, BLAS_WORKSPACE_BYTES, owned by this handle */
    char *stage[2];            /* pinned host, STAGE_HALF_BYTES each */
    cudaEvent_t stage_done[2]; /* the last transfer through stage[i] has finished */
    char *up_host;             /* pinned host: an op's integer inputs, packed */
    char *up_dev;              /* device: where they land */
    size_t up_cap;             /* bytes of each */
    cudaEvent_t up_done;       /* the last transfer out of up_host has finished */
    double *part_dev;          /* per-row loss partial sums */
    double *part_host;         /* pinned, where they are read back */
    size_t part_cap;           /* doubles of each */
} cuda_ctx_t;

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int cuda_fail(char *err, size_t errlen, const char *expr, const char *what, const char *file,
                     int line)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "kernels cuda: %s failed (%s) at %s:%d", expr, what, base_name(file),
                 line);
    return -1;
}

/* In an op: return -1 with the message. In init: jump to its cleanup. A failed CUDA call also
 * leaves its error as the thread's "last error"; it is cleared so that the next launch check does
 * not report it again (an error that broke the context stays, and every later call returns it). */
#define CUDA_CHECK(expr)                                                                           \
    do {                                                                                           \
        cudaError_t rc_ = (expr);                                                                  \
        if (rc_ != cudaSuccess) {                                                                  \
            (void)cudaGetLastError();                                                              \
            return cuda_fail(err, errlen, #expr, cudaGetErrorString(rc_), __FILE__, __LINE__);     \
        }                                                                                          \
    } while (0)
#define CUBLAS_CHECK(expr)                                                                         \
    do {                                                                                           \
        cublasStatus_t rc_ = (expr);                                                               \
        if (rc_ != CUBLAS_STATUS_SUCCESS)                                                          \
            return cuda_fail(err, errlen, #expr, cublasGetStatusString(rc_), __FILE__, __LINE__);  \
    } while (0)
#define CUDA_CHECK_GOTO(expr)                                                                      \
    do {                                                                                           \
        cudaError_t rc_ = (expr);                                                                  \
        if (rc_ != cudaSuccess) {                                                                  \
            (void)cudaGetLastError();                                                              \
            cuda_fail(err, errlen, #expr, cudaGetErrorString(rc_), __FILE__, __LINE__);            \
            goto err;                                                                              \
        }                                                                                          \
    } while (0)
#define CUBLAS_CHECK_GOTO(expr)                                                                    \
    do {                                                                                           \
        cublasStatus_t rc_ = (expr);                                                               \
        if (rc_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            cuda_fail(err, errlen, #expr, cublasGetStatusString(rc_), __FILE__, __LINE__);         \
            goto err;                                                                              \
        }                                                                                          \
    } while (0)
/* After a <<<>>> launch: a bad configuration or a missing kernel image shows up here. */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

static cuda_ctx_t *ctx_of(kernels_backend_t *be)
{
    return (cuda_ctx_t *)be->ctx;
}

/* The device is per host thread in the runtime: every entry point selects ours first, so a
 * backend made on one thread can be used from another. */
#define ENTER(be)                                                                                  \
    cuda_ctx_t *ctx = ctx_of(be);                                                                  \
    CUDA_CHECK(cudaSetDevice(ctx->device))

static unsigned grid_for(int64_t n, int block)
{
    int64_t g = (n + block - 1) / block;
    return (unsigned)(g < 1 ? 1 : g > MAX_GRID ? MAX_GRID : g);
}

/* ---- device helpers ---- */

__device__ __forceinline__ float *row_ptr(kernels_tensor_t t, int64_t r)
{
    return t.data + (r / t.rows) * t.stride + (r % t.rows) * t.ld;
}

__device__ __forceinline__ double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block, returned to every thread. blockDim.x must be a multiple of 32. The first
 * barrier keeps a previous call's readers from seeing this call's partial sums. */
__device__ double block_sum(double v)
{
    __shared__ double sh[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? sh[lane] : 0.0;
        v = warp_sum(v);
        if (lane == 0)
            sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

__device__ float block_max(float v)
{
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? sh[lane] : -INFINITY;
        v = warp_max(v);
        if (lane == 0)
            sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

__device__ __forceinline__ float act_apply(int act, float v)
{
    switch (act) {
    case KERNELS_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case KERNELS_ACT_GELU: /* 0.5 v (1 + erf(v / sqrt 2)), as erfc so the negative tail keeps
                              its relative precision */
        return 0.5f * v * erfcf(-v * 0.70710678118654752f);
    case KERNELS_ACT_TANH:
        return tanhf(v);
    case KERNELS_ACT_SIGMOID: {
        float e = expf(-fabsf(v)), s = 1.0f / (1.0f + e);
        return v >= 0.0f ? s : e * s;
    }
    default:
        return v;
    }
}

/* Softmax of one row by the whole block: v = in * scale (+ add) and -INFINITY where keep is 0,
 * written to o (which may be in: each thread reads and writes only its own elements), then
 * exp(v - max) normalised. A row with nothing left becomes zeros. */
__device__ void softmax_row_block(const float *in, float *o, int64_t n, float scale,
                                  const float *add, const float *keep)
{
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        float v = in[j] * scale;
        if (add)
            v += add[j];
        if (keep && keep[j] == 0.0f)
            v = -INFINITY;
        o[j] = v;
        mx = fmaxf(mx, v);
    }
    mx = block_max(mx);
    if (mx == -INFINITY) { /* the same for every thread of the block */
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
            o[j] = 0.0f;
        return;
    }
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        float e = expf(o[j] - mx);
        o[j] = e;
        s += e;
    }
    float inv = (float)(1.0 / block_sum(s));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        o[j] *= inv;
}

/* ---- kernels ---- */

__global__ void k_bias_act(kernels_tensor_t x, const float *bias, int act, kernels_tensor_t out)
{
    int64_t n = x.batch * x.rows * x.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / x.cols, j = i % x.cols;
        float v = row_ptr(x, r)[j];
        if (bias)
            v += bias[j];
        row_ptr(out, r)[j] = act_apply(act, v);
    }
}

/* One block per row; two passes over the row for the moments (mean, then squared deviations). */
__global__ void k_layernorm(kernels_tensor_t x, const float *gamma, const float *beta, float eps,
                            kernels_tensor_t out)
{
    int64_t r = blockIdx.x, n = x.cols;
    const float *in = row_ptr(x, r);
    float *o = row_ptr(out, r);
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        s += in[j];
    double mean = block_sum(s) / (double)n, ss = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        double d = in[j] - mean;
        ss += d * d;
    }
    double var = block_sum(ss) / (double)n;
    float fmean = (float)mean, inv = (float)(1.0 / sqrt(var + (double)eps));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        o[j] = (in[j] - fmean) * inv * gamma[j] + beta[j];
}

__global__ void k_softmax(kernels_tensor_t x, kernels_tensor_t mask, int mask_per_row,
                          kernels_tensor_t out)
{
    int64_t r = blockIdx.x;
    const float *add = mask.data ? row_ptr(mask, mask_per_row ? r : 0) : NULL;
    softmax_row_block(row_ptr(x, r), row_ptr(out, r), x.cols, 1.0f, add, NULL);
}

/* The attention probabilities in place: row r of the n_seq * heads * L score rows belongs to
 * matrix b = r / L, sequence b / heads, whose token mask says which keys count. */
__global__ void k_attention_softmax(kernels_tensor_t scores, kernels_tensor_t mask, int64_t heads)
{
    int64_t r = blockIdx.x, seq_len = scores.rows, b = r / seq_len;
    float *p = scores.data + b * scores.stride + (r % seq_len) * scores.ld;
    const float *keep = mask.data ? row_ptr(mask, b / heads) : NULL;
    softmax_row_block(p, p, seq_len, 1.0f, NULL, keep);
}

__global__ void k_embed(const int32_t *ids, const int32_t *types, int64_t n_tok, int64_t seq_len,
                        kernels_tensor_t tok, kernels_tensor_t pos, kernels_tensor_t type,
                        kernels_tensor_t out)
{
    int64_t dim = tok.cols, n = n_tok * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / dim, j = i % dim, p = t % seq_len;
        float v = tok.data[ids[t] * tok.ld + j] + pos.data[p * pos.ld + j];
        row_ptr(out, t)[j] = v + type.data[(types ? types[t] : 0) * type.ld + j];
    }
}

/* One block per sequence, threads over the columns; padding rows (weight 0) are skipped. */
__global__ void k_mean_pool(kernels_tensor_t x, kernels_tensor_t mask, kernels_tensor_t out)
{
    int64_t s = blockIdx.x, seq_len = x.rows;
    const float *mk = row_ptr(mask, s);
    float *o = row_ptr(out, s);
    double wsum = 0.0;
    for (int64_t p = 0; p < seq_len; p++)
        wsum += mk[p];
    float inv = wsum != 0.0 ? (float)(1.0 / wsum) : 0.0f;
    for (int64_t j = threadIdx.x; j < x.cols; j += blockDim.x) {
        float acc = 0.0f;
        for (int64_t p = 0; p < seq_len; p++)
            if (mk[p] != 0.0f)
                acc += mk[p] * x.data[s * x.stride + p * x.ld + j];
        o[j] = acc * inv;
    }
}

__global__ void k_l2norm(kernels_tensor_t x, float eps, kernels_tensor_t out)
{
    int64_t r = blockIdx.x, n = x.cols;
    const float *in = row_ptr(x, r);
    float *o = row_ptr(out, r);
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        ss += (double)in[j] * in[j];
    double norm = sqrt(block_sum(ss));
    float inv = (float)(1.0 / (norm > eps ? norm : (double)eps));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        o[j] = in[j] * inv;
}

/* One block per row: the row's loss sum into part[r], the gradient into dz (which may be z). */
__global__ void k_bce_logits(kernels_tensor_t z, kernels_tensor_t y, float scale, double *part,
                             kernels_tensor_t dz)
{
    int64_t r = blockIdx.x;
    const float *zr = row_ptr(z, r), *yr = row_ptr(y, r);
    float *d = dz.data ? row_ptr(dz, r) : NULL;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < z.cols; j += blockDim.x) {
        float v = zr[j], t = yr[j];
        s += (double)((v > 0.0f ? v : 0.0f) - v * t + log1pf(expf(-fabsf(v))));
        if (d)
            d[j] = (1.0f / (1.0f + expf(-v)) - t) * scale;
    }
    s = block_sum(s);
    if (threadIdx.x == 0 && part)
        part[r] = s;
}

__global__ void k_softmax_xent(kernels_tensor_t z, const int32_t *labels, float scale, double *part,
                               kernels_tensor_t dz)
{
    int64_t r = blockIdx.x, n = z.cols;
    const float *zr = row_ptr(z, r);
    int32_t label = labels[r];
    float z_label = zr[label]; /* read before any thread writes dz, which may be z */
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        mx = fmaxf(mx, zr[j]);
    mx = block_max(mx);
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        s += expf(zr[j] - mx);
    double sum = block_sum(s); /* its barriers also order every read of z before the writes */
    if (threadIdx.x == 0 && part)
        part[r] = log(sum) + (double)mx - (double)z_label;
    if (dz.data) {
        float *d = row_ptr(dz, r), inv = (float)(1.0 / sum);
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
            d[j] = (expf(zr[j] - mx) * inv - (j == label ? 1.0f : 0.0f)) * scale;
    }
}

/* db = column sums of dy, one thread per column, in double. */
__global__ void k_column_sums(kernels_tensor_t dy, float *db)
{
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < dy.cols;
         j += (int64_t)gridDim.x * blockDim.x) {
        double acc = 0.0;
        for (int64_t r = 0; r < dy.rows; r++)
            acc += dy.data[r * dy.ld + j];
        db[j] = (float)acc;
    }
}

/* dx = dy where y > 0, else 0; one thread per element, each reading its own y and dy before
 * writing dx (which may be dy or y). */
__global__ void k_relu_backward(kernels_tensor_t y, kernels_tensor_t dy, kernels_tensor_t dx)
{
    int64_t n = y.batch * y.rows * y.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / y.cols, j = i % y.cols;
        float g = row_ptr(dy, r)[j];
        row_ptr(dx, r)[j] = row_ptr(y, r)[j] > 0.0f ? g : 0.0f;
    }
}

__global__ void k_adamw(kernels_tensor_t param, kernels_tensor_t grad, kernels_tensor_t m,
                        kernels_tensor_t v, float b1, float b2, float lr, float eps, float wd,
                        float c1, float c2)
{
    int64_t n = param.batch * param.rows * param.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / param.cols, j = i % param.cols;
        float *p = row_ptr(param, r) + j, *mr = row_ptr(m, r) + j, *vr = row_ptr(v, r) + j;
        float g = row_ptr(grad, r)[j];
        *mr = b1 * *mr + (1.0f - b1) * g;
        *vr = b2 * *vr + (1.0f - b2) * g * g;
        float upd = *mr * c1 / (sqrtf(*vr * c2) + eps);
        *p -= lr * (upd + wd * *p);
    }
}

/* ---- host side ---- */

/* Copies up to three host arrays (NULL or 0 bytes: skipped, dev[i] = NULL) to device memory in one
 * transfer through the pinned upload buffer. The buffer is refilled only after its previous
 * transfer finished (an event), and the device copy is reused in stream order, after the kernels
 * that read it: so an op's inputs may change as soon as the op returns. */
static int upload(kernels_backend_t *be, const void *const src[3], const size_t bytes[3],
                  void *dev[3], char *err, size_t errlen)
{
    cuda_ctx_t *ctx = ctx_of(be);
    size_t at[3], total = 0;
    for (int i = 0; i < 3; i++) {
        at[i] = total;
        total += src[i] ? (bytes[i] + 15) / 16 * 16 : 0;
    }
    if (total > ctx->up_cap) {
        size_t cap = ctx->up_cap ? ctx->up_cap : 4096;
        while (cap < total)
            cap *= 2;
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream)); /* nothing may still read the old ones */
        if (ctx->up_host)
            CUDA_CHECK(cudaFreeHost(ctx->up_host));
        ctx->up_host = NULL;
        if (ctx->up_dev)
            CUDA_CHECK(cudaFree(ctx->up_dev));
        ctx->up_dev = NULL, ctx->up_cap = 0;
        CUDA_CHECK(cudaHostAlloc((void **)&ctx->up_host, cap, cudaHostAllocDefault));
        CUDA_CHECK(cudaMalloc((void **)&ctx->up_dev, cap));
        ctx->up_cap = cap;
    } else {
        CUDA_CHECK(cudaEventSynchronize(ctx->up_done));
    }
    for (int i = 0; i < 3; i++) {
        dev[i] = src[i] ? ctx->up_dev + at[i] : NULL;
        if (src[i])
            memcpy(ctx->up_host + at[i], src[i], bytes[i]);
    }
    if (total > 0) {
        CUDA_CHECK(
            cudaMemcpyAsync(ctx->up_dev, ctx->up_host, total, cudaMemcpyHostToDevice, ctx->stream));
        CUDA_CHECK(cudaEventRecord(ctx->up_done, ctx->stream));
    }
    return 0;
}

/* Room for n per-row loss partials, device and pinned host. */
static int part_reserve(cuda_ctx_t *ctx, int64_t n, char *err, size_t errlen)
{
    if ((size_t)n <= ctx->part_cap)
        return 0;
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    if (ctx->part_dev)
        CUDA_CHECK(cudaFree(ctx->part_dev));
    ctx->part_dev = NULL;
    if (ctx->part_host)
        CUDA_CHECK(cudaFreeHost(ctx->part_host));
    ctx->part_host = NULL, ctx->part_cap = 0;
    CUDA_CHECK(cudaMalloc((void **)&ctx->part_dev, (size_t)n * sizeof(double)));
    CUDA_CHECK(
        cudaHostAlloc((void **)&ctx->part_host, (size_t)n * sizeof(double), cudaHostAllocDefault));
    ctx->part_cap = (size_t)n;
    return 0;
}

/* Reads back n partials and returns their sum over `count` as the mean loss. */
static int part_mean(cuda_ctx_t *ctx, int64_t n, double count, float *loss, char *err,
                     size_t errlen)
{
    CUDA_CHECK(cudaMemcpyAsync(ctx->part_host, ctx->part_dev, (size_t)n * sizeof(double),
                               cudaMemcpyDeviceToHost, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += ctx->part_host[i];
    *loss = (float)(sum / count);
    return 0;
}

static float *cuda_alloc(kernels_backend_t *be, size_t n, char *err, size_t errlen)
{
    cuda_ctx_t *ctx = ctx_of(be);
    void *p = NULL;
    cudaError_t rc = cudaSetDevice(ctx->device);
    if (rc == cudaSuccess)
        rc = cudaMalloc(&p, n * sizeof(float));
    if (rc != cudaSuccess) {
        (void)cudaGetLastError(); /* an out-of-memory must not fail the next op's launch check */
        if (err && errlen > 0)
            snprintf(err, errlen, "kernels_alloc: cudaMalloc of %zu floats on device %d: %s", n,
                     ctx->device, cudaGetErrorString(rc));
        return NULL;
    }
    return (float *)p;
}

static void cuda_free(kernels_backend_t *be, float *p)
{
    /* cudaFree fails only when the context is already broken; the next op or copy reports that,
     * and there is no caller here to tell. */
    if (cudaSetDevice(ctx_of(be)->device) == cudaSuccess)
        (void)cudaFree(p);
}

static int cuda_sync(kernels_backend_t *be, char *err, size_t errlen)
{
    ENTER(be);
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    return 0;
}

/* Host to device through the two staging halves: while the device takes one chunk, the host
 * copies the next into the other half. Returns once src has been read (the transfer itself may
 * still run; later ops on this stream see its result). */
static int cuda_copy_to_backend(kernels_backend_t *be, float *dst, const float *src, size_t n,
                                char *err, size_t errlen)
{
    ENTER(be);
    size_t bytes = n * sizeof(float), off = 0;
    int half = 0;
    while (off < bytes) {
        size_t len = bytes - off < STAGE_HALF_BYTES ? bytes - off : STAGE_HALF_BYTES;
        CUDA_CHECK(cudaEventSynchronize(ctx->stage_done[half]));
        memcpy(ctx->stage[half], (const char *)src + off, len);
        CUDA_CHECK(cudaMemcpyAsync((char *)dst + off, ctx->stage[half], len, cudaMemcpyHostToDevice,
                                   ctx->stream));
        CUDA_CHECK(cudaEventRecord(ctx->stage_done[half], ctx->stream));
        off += len, half ^= 1;
    }
    return 0;
}

/* Device to host: two chunks in flight, the host copying out of one half while the other fills.
 * Waits for everything queued before it, so a fault of an earlier op is reported here. */
static int cuda_copy_to_host(kernels_backend_t *be, float *dst, const float *src, size_t n,
                             char *err, size_t errlen)
{
    ENTER(be);
    size_t bytes = n * sizeof(float), issued = 0, done = 0, len[2] = {0, 0};
    int next = 0, oldest = 0, in_flight = 0;
    while (done < bytes) {
        while (in_flight < 2 && issued < bytes) {
            size_t l = bytes - issued < STAGE_HALF_BYTES ? bytes - issued : STAGE_HALF_BYTES;
            CUDA_CHECK(cudaMemcpyAsync(ctx->stage[next], (const char *)src + issued, l,
                                       cudaMemcpyDeviceToHost, ctx->stream));
            CUDA_CHECK(cudaEventRecord(ctx->stage_done[next], ctx->stream));
            len[next] = l, issued += l, next ^= 1, in_flight++;
        }
        CUDA_CHECK(cudaEventSynchronize(ctx->stage_done[oldest]));
        memcpy((char *)dst + done, ctx->stage[oldest], len[oldest]);
        done += len[oldest], oldest ^= 1, in_flight--;
    }
    return 0;
}

/* Row-major C = op(A) op(B) as column-major C^T = op(B)^T op(A)^T: operands swapped, m and n
 * swapped, each operand's transpose flag kept. A batch-1 operand shared by the batch has
 * stride 0. */
static int cuda_gemm(kernels_backend_t *be, int trans_a, int trans_b, float alpha,
                     const kernels_tensor_t *a, const kernels_tensor_t *b, float beta,
                     kernels_tensor_t *c, char *err, size_t errlen)
{
    ENTER(be);
    int m = (int)c->rows, n = (int)c->cols, k = (int)(trans_a ? a->rows : a->cols);
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (c->batch == 1) {
        CUBLAS_CHECK(cublasSgemm(ctx->blas, op_b, op_a, n, m, k, &alpha, b->data, (int)b->ld,
                                 a->data, (int)a->ld, &beta, c->data, (int)c->ld));
    } else {
        long long sa = a->batch > 1 ? a->stride : 0, sb = b->batch > 1 ? b->stride : 0;
        CUBLAS_CHECK(cublasSgemmStridedBatched(ctx->blas, op_b, op_a, n, m, k, &alpha, b->data,
                                               (int)b->ld, sb, a->data, (int)a->ld, sa, &beta,
                                               c->data, (int)c->ld, c->stride, (int)c->batch));
    }
    return 0;
}

static int cuda_bias_act(kernels_backend_t *be, const kernels_tensor_t *x,
                         const kernels_tensor_t *bias, kernels_act_t act, kernels_tensor_t *out,
                         char *err, size_t errlen)
{
    ENTER(be);
    int64_t n = x->batch * x->rows * x->cols;
    k_bias_act<<<grid_for(n, ELT_BLOCK), ELT_BLOCK, 0, ctx->stream>>>(*x, bias ? bias->data : NULL,
                                                                      (int)act, *out);
    LAUNCH_CHECK();
    return 0;
}

static int cuda_layernorm(kernels_backend_t *be, const kernels_tensor_t *x,
                          const kernels_tensor_t *gamma, const kernels_tensor_t *beta, float eps,
                          kernels_tensor_t *out, char *err, size_t errlen)
{
    ENTER(be);
    k_layernorm<<<(unsigned)(x->batch * x->rows), ROW_BLOCK, 0, ctx->stream>>>(
        *x, gamma->data, beta->data, eps, *out);
    LAUNCH_CHECK();
    return 0;
}

static int cuda_softmax(kernels_backend_t *be, const kernels_tensor_t *x,
                        const kernels_tensor_t *mask, kernels_tensor_t *out, char *err,
                        size_t errlen)
{
    ENTER(be);
    kernels_tensor_t none = {NULL, 1, 1, 1, 1, 1};
    int per_row = mask && mask->batch * mask->rows > 1;
    k_softmax<<<(unsigned)(x->batch * x->rows), ROW_BLOCK, 0, ctx->stream>>>(
        *x, mask ? *mask : none, per_row, *out);
    LAUNCH_CHECK();
    return 0;
}

/* Per head h, batched over the sequences: scores = scale q_h k_h^T, then one softmax launch over
 * every score row (padding keys excluded), then out_h = P_h v_h. A head is a column block, so the
 * next sequence's block of the same head is seq_len rows further on. */
static int cuda_attention(kernels_backend_t *be, const kernels_tensor_t *q,
                          const kernels_tensor_t *k, const kernels_tensor_t *v,
                          const kernels_tensor_t *mask, int64_t n_seq, int64_t heads, float scale,
                          kernels_tensor_t *scratch, kernels_tensor_t *out, char *err,
                          size_t errlen)
{
    ENTER(be);
    int seq_len = (int)(q->rows / n_seq), hd = (int)(q->cols / heads), ns = (int)n_seq;
    long long sp = (long long)(heads * scratch->stride); /* next sequence, same head */
    float one = 1.0f, zero = 0.0f;
    for (int64_t h = 0; h < heads; h++) {
        float *p = scratch->data + h * scratch->stride;
        CUBLAS_CHECK(cublasSgemmStridedBatched(
            ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, seq_len, seq_len, hd, &scale, k->data + h * hd,
            (int)k->ld, (long long)seq_len * k->ld, q->data + h * hd, (int)q->ld,
            (long long)seq_len * q->ld, &zero, p, (int)scratch->ld, sp, ns));
    }
    kernels_tensor_t none = {NULL, 1, 1, 1, 1, 1};
    k_attention_softmax<<<(unsigned)(n_seq * heads * seq_len), ROW_BLOCK, 0, ctx->stream>>>(
        *scratch, mask ? *mask : none, heads);
    LAUNCH_CHECK();
    for (int64_t h = 0; h < heads; h++) {
        const float *p = scratch->data + h * scratch->stride;
        CUBLAS_CHECK(cublasSgemmStridedBatched(
            ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, seq_len, seq_len, &one, v->data + h * hd,
            (int)v->ld, (long long)seq_len * v->ld, p, (int)scratch->ld, sp, &zero,
            out->data + h * hd, (int)out->ld, (long long)seq_len * out->ld, ns));
    }
    return 0;
}

static int cuda_embed(kernels_backend_t *be, const int32_t *ids, const int32_t *types,
                      int64_t n_seq, int64_t seq_len, const kernels_tensor_t *tok,
                      const kernels_tensor_t *pos, const kernels_tensor_t *type,
                      kernels_tensor_t *out, char *err, size_t errlen)
{
    ENTER(be);
    int64_t n_tok = n_seq * seq_len;
    size_t bytes = (size_t)n_tok * sizeof(int32_t);
    const void *src[3] = {ids, types, NULL};
    size_t sizes[3] = {bytes, bytes, 0};
    void *dev[3];
    if (upload(be, src, sizes, dev, err, errlen) < 0)
        return -1;
    k_embed<<<grid_for(n_tok * tok->cols, ELT_BLOCK), ELT_BLOCK, 0, ctx->stream>>>(
        (const int32_t *)dev[0], (const int32_t *)dev[1], n_tok, seq_len, *tok, *pos, *type, *out);
    LAUNCH_CHECK();
    return 0;
}

static int cuda_mean_pool(kernels_backend_t *be, const kernels_tensor_t *x,
                          const kernels_tensor_t *mask, kernels_tensor_t *out, char *err,
                          size_t errlen)
{
    ENTER(be);
    k_mean_pool<<<(unsigned)x->batch, ROW_BLOCK, 0, ctx->stream>>>(*x, *mask, *out);
    LAUNCH_CHECK();
    return 0;
}

static int cuda_l2norm(kernels_backend_t *be, const kernels_tensor_t *x, float eps,
                       kernels_tensor_t *out, char *err, size_t errlen)
{
    ENTER(be);
    k_l2norm<<<(unsigned)(x->batch * x->rows), ROW_BLOCK, 0, ctx->stream>>>(*x, eps, *out);
    LAUNCH_CHECK();
    return 0;
}

static int cuda_bce_logits(kernels_backend_t *be, const kernels_tensor_t *z,
                           const kernels_tensor_t *y, float *loss, kernels_tensor_t *dz, char *err,
                           size_t errlen)
{
    ENTER(be);
    int64_t rows = z->batch * z->rows;
    double count = (double)(rows * z->cols);
    if (loss && part_reserve(ctx, rows, err, errlen) < 0)
        return -1;
    kernels_tensor_t none = {NULL, 1, 1, 1, 1, 1};
    k_bce_logits<<<(unsigned)rows, ROW_BLOCK, 0, ctx->stream>>>(
        *z, *y, (float)(1.0 / count), loss ? ctx->part_dev : NULL, dz ? *dz : none);
    LAUNCH_CHECK();
    return loss ? part_mean(ctx, rows, count, loss, err, errlen) : 0;
}

static int cuda_softmax_xent(kernels_backend_t *be, const kernels_tensor_t *z,
                             const int32_t *labels, float *loss, kernels_tensor_t *dz, char *err,
                             size_t errlen)
{
    ENTER(be);
    int64_t rows = z->batch * z->rows;
    const void *src[3] = {labels, NULL, NULL};
    size_t sizes[3] = {(size_t)rows * sizeof(int32_t), 0, 0};
    void *dev[3];
    if (upload(be, src, sizes, dev, err, errlen) < 0)
        return -1;
    if (loss && part_reserve(ctx, rows, err, errlen) < 0)
        return -1;
    kernels_tensor_t none = {NULL, 1, 1, 1, 1, 1};
    k_softmax_xent<<<(unsigned)rows, ROW_BLOCK, 0, ctx->stream>>>(
        *z, (const int32_t *)dev[0], (float)(1.0 / (double)rows), loss ? ctx->part_dev : NULL,
        dz ? *dz : none);
    LAUNCH_CHECK();
    return loss ? part_mean(ctx, rows, (double)rows, loss, err, errlen) : 0;
}

static int cuda_dense_backward(kernels_backend_t *be, const kernels_tensor_t *x,
                               const kernels_tensor_t *w, const kernels_tensor_t *dy,
                               kernels_tensor_t *dx, kernels_tensor_t *dw, kernels_tensor_t *db,
                               char *err, size_t errlen)
{
    ENTER(be);
    int n = (int)x->rows, in = (int)x->cols, out = (int)w->cols;
    float one = 1.0f, zero = 0.0f;
    if (dx) /* dx (n x in) = dy w^T */
        CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, in, n, out, &one, w->data,
                                 (int)w->ld, dy->data, (int)dy->ld, &zero, dx->data, (int)dx->ld));
    if (dw) /* dw (in x out) = x^T dy */
        CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, out, in, n, &one, dy->data,
                                 (int)dy->ld, x->data, (int)x->ld, &zero, dw->data, (int)dw->ld));
    if (db) {
        k_column_sums<<<grid_for(out, ELT_BLOCK), ELT_BLOCK, 0, ctx->stream>>>(*dy, db->data);
        LAUNCH_CHECK();
    }
    return 0;
}

static int cuda_relu_backward(kernels_backend_t *be, const kernels_tensor_t *y,
                              const kernels_tensor_t *dy, kernels_tensor_t *dx, char *err,
                              size_t errlen)
{
    ENTER(be);
    int64_t n = y->batch * y->rows * y->cols;
    k_relu_backward<<<grid_for(n, ELT_BLOCK), ELT_BLOCK, 0, ctx->stream>>>(*y, *dy, *dx);
    LAUNCH_CHECK();
    return 0;
}

static int cuda_adamw(kernels_backend_t *be, const kernels_adam_t *opt, kernels_tensor_t *param,
                      const kernels_tensor_t *grad, kernels_tensor_t *m, kernels_tensor_t *v,
                      char *err, size_t errlen)
{
    ENTER(be);
    int64_t n = param->batch * param->rows * param->cols;
    /* Bias corrections on the host, in double, as the CPU backend computes them. */
    float c1 = (float)(1.0 / (1.0 - pow((double)opt->beta1, (double)opt->step)));
    float c2 = (float)(1.0 / (1.0 - pow((double)opt->beta2, (double)opt->step)));
    k_adamw<<<grid_for(n, ELT_BLOCK), ELT_BLOCK, 0, ctx->stream>>>(
        *param, *grad, *m, *v, opt->beta1, opt->beta2, opt->lr, opt->eps, opt->weight_decay, c1,
        c2);
    LAUNCH_CHECK();
    return 0;
}

/* Frees whatever init got to; every handle starts zeroed, so this is safe at any point. */
static void ctx_destroy(cuda_ctx_t *ctx)
{
    if (!ctx)
        return;
    /* Errors here cannot be reported and leave nothing to undo: the process is letting go. */
    if (cudaSetDevice(ctx->device) == cudaSuccess && ctx->stream)
        (void)cudaStreamSynchronize(ctx->stream);
    if (ctx->blas)
        (void)cublasDestroy(ctx->blas);
    if (ctx->blas_ws)
        (void)cudaFree(ctx->blas_ws);
    for (int i = 0; i < 2; i++) {
        if (ctx->stage[i])
            (void)cudaFreeHost(ctx->stage[i]);
        if (ctx->stage_done[i])
            (void)cudaEventDestroy(ctx->stage_done[i]);
    }
    if (ctx->up_host)
        (void)cudaFreeHost(ctx->up_host);
    if (ctx->up_dev)
        (void)cudaFree(ctx->up_dev);
    if (ctx->up_done)
        (void)cudaEventDestroy(ctx->up_done);
    if (ctx->part_dev)
        (void)cudaFree(ctx->part_dev);
    if (ctx->part_host)
        (void)cudaFreeHost(ctx->part_host);
    if (ctx->stream)
        (void)cudaStreamDestroy(ctx->stream);
    free(ctx);
}

static void cuda_destroy(kernels_backend_t *be)
{
    ctx_destroy(ctx_of(be));
    be->ctx = NULL;
}

extern "C" size_t kernels_cuda_abi(void)
{
    return kernels_backend_abi();
}

extern "C" int kernels_cuda_probe(int device, char *why, size_t whylen)
{
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        snprintf(why, whylen, "no usable CUDA device (cudaGetDeviceCount: %s)",
                 cudaGetErrorString(rc));
        (void)cudaGetLastError(); /* clear it: the process goes on without CUDA */
        return 0;
    }
    if (device < 0 || device >= n) {
        snprintf(why, whylen, "CUDA device %d asked for, %d present", device, n);
        return 0;
    }
    cudaDeviceProp prop;
    if ((rc = cudaGetDeviceProperties(&prop, device)) != cudaSuccess ||
        (rc = cudaSetDevice(device)) != cudaSuccess) {
        snprintf(why, whylen, "CUDA device %d: %s", device, cudaGetErrorString(rc));
        (void)cudaGetLastError();
        return 0;
    }
    /* Whether this build carries code the device can run (sm_90 machine code, or PTX it can
     * compile): asking for a kernel's attributes loads it. */
    cudaFuncAttributes attr;
    if ((rc = cudaFuncGetAttributes(&attr, k_bias_act)) != cudaSuccess) {
        snprintf(why, whylen, "CUDA device %d (%s, sm_%d%d) cannot run this build's code: %s",
                 device, prop.name, prop.major, prop.minor, cudaGetErrorString(rc));
        (void)cudaGetLastError();
        return 0;
    }
    snprintf(why, whylen, "cuda: device %d, %s, sm_%d%d, %.1f GiB", device, prop.name, prop.major,
             prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 1;
}

extern "C" int kernels_cuda_init(kernels_backend_t *be, int device, char *err, size_t errlen)
{
    char why[sizeof(be->reason)];
    if (!kernels_cuda_probe(device, why, sizeof(why))) {
        if (err && errlen > 0)
            snprintf(err, errlen, "kernels: backend cuda: %s", why);
        return -1;
    }
    cuda_ctx_t *ctx = (cuda_ctx_t *)calloc(1, sizeof(*ctx));
    if (!ctx) {
        if (err && errlen > 0)
            snprintf(err, errlen, "kernels: out of memory");
        return -1;
    }
    ctx->device = device;
    CUDA_CHECK_GOTO(cudaSetDevice(device));
    CUDA_CHECK_GOTO(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK_GOTO(cublasCreate(&ctx->blas));
    CUBLAS_CHECK_GOTO(cublasSetStream(ctx->blas, ctx->stream));
    CUDA_CHECK_GOTO(cudaMalloc(&ctx->blas_ws, BLAS_WORKSPACE_BYTES));
    CUBLAS_CHECK_GOTO(cublasSetWorkspace(ctx->blas, ctx->blas_ws, BLAS_WORKSPACE_BYTES));
    CUBLAS_CHECK_GOTO(cublasSetMathMode(ctx->blas, CUBLAS_DEFAULT_MATH));
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK_GOTO(
            cudaHostAlloc((void **)&ctx->stage[i], STAGE_HALF_BYTES, cudaHostAllocDefault));
        CUDA_CHECK_GOTO(cudaEventCreateWithFlags(&ctx->stage_done[i], cudaEventDisableTiming));
    }
    CUDA_CHECK_GOTO(cudaEventCreateWithFlags(&ctx->up_done, cudaEventDisableTiming));

    be->name = "cuda";
    snprintf(be->reason, sizeof(be->reason), "%s", why);
    be->ctx = ctx;
    be->destroy = cuda_destroy;
    be->sync = cuda_sync;
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->copy_to_backend = cuda_copy_to_backend;
    be->copy_to_host = cuda_copy_to_host;
    be->gemm = cuda_gemm;
    be->bias_act = cuda_bias_act;
    be->layernorm = cuda_layernorm;
    be->softmax = cuda_softmax;
    be->attention = cuda_attention;
    be->embed = cuda_embed;
    be->mean_pool = cuda_mean_pool;
    be->l2norm = cuda_l2norm;
    be->bce_logits = cuda_bce_logits;
    be->softmax_xent = cuda_softmax_xent;
    be->dense_backward = cuda_dense_backward;
    be->relu_backward = cuda_relu_backward;
    be->adamw = cuda_adamw;
    return 0;
err:
    ctx_destroy(ctx);
    return -1;
}
