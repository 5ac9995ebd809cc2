/* The backend-independent half of the kernels API: backend selection, argument checking and
 * dispatch to the backend's function table. Every shape is checked here, once, so that backends
 * stay plain loops and library calls. */
#include "kernels.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef VIGIL_KERNELS_CUDA
#include <dlfcn.h>
#include <pthread.h>
#endif

#include "kernels_impl.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

kernels_tensor_t kernels_tensor_2d(float *data, int64_t rows, int64_t cols)
{
    kernels_tensor_t t = {data, rows, cols, cols, 1, rows * cols};
    return t;
}

kernels_tensor_t kernels_tensor_3d(float *data, int64_t batch, int64_t rows, int64_t cols)
{
    kernels_tensor_t t = {data, rows, cols, cols, batch, rows * cols};
    return t;
}

/* A usable view: data, positive sizes, ld >= cols, and matrices that do not overlap (stride
 * covers a whole matrix) so that a batched write never races with itself. */
static int check_tensor(const kernels_tensor_t *t, const char *op, const char *what, char *err,
                        size_t errlen)
{
    if (!t || !t->data)
        return fail(err, errlen, "%s: %s is NULL", op, what);
    if (t->rows < 1 || t->cols < 1 || t->batch < 1)
        return fail(err, errlen, "%s: %s has shape %lldx%lldx%lld (sizes must be >= 1)", op, what,
                    (long long)t->batch, (long long)t->rows, (long long)t->cols);
    if (t->ld < t->cols)
        return fail(err, errlen, "%s: %s has ld %lld < cols %lld", op, what, (long long)t->ld,
                    (long long)t->cols);
    /* BLAS dimensions and GPU grids are 32-bit: a larger view would wrap silently there. */
    if (t->batch > INT32_MAX / t->rows || t->ld > INT32_MAX)
        return fail(err, errlen, "%s: %s has %lld x %lld rows, ld %lld: over 2^31 - 1", op, what,
                    (long long)t->batch, (long long)t->rows, (long long)t->ld);
    if (t->batch > 1 && t->stride < (t->rows - 1) * t->ld + t->cols)
        return fail(err, errlen, "%s: %s has stride %lld, its matrices overlap", op, what,
                    (long long)t->stride);
    return 0;
}

static int64_t total_rows(const kernels_tensor_t *t)
{
    return t->batch * t->rows;
}

/* in and out of a row-wise op: both valid, same number of rows and columns. */
static int check_rowwise(const kernels_tensor_t *x, const kernels_tensor_t *out, const char *op,
                         char *err, size_t errlen)
{
    if (check_tensor(x, op, "x", err, errlen) < 0 || check_tensor(out, op, "out", err, errlen) < 0)
        return -1;
    if (total_rows(x) != total_rows(out) || x->cols != out->cols)
        return fail(err, errlen, "%s: x has %lld rows x %lld cols, out %lld x %lld", op,
                    (long long)total_rows(x), (long long)x->cols, (long long)total_rows(out),
                    (long long)out->cols);
    return 0;
}

/* A 1 x cols parameter row (bias, gamma, beta). */
static int check_param_row(const kernels_tensor_t *p, int64_t cols, const char *op,
                           const char *what, char *err, size_t errlen)
{
    if (check_tensor(p, op, what, err, errlen) < 0)
        return -1;
    if (total_rows(p) != 1 || p->cols != cols)
        return fail(err, errlen, "%s: %s must be 1 x %lld, is %lld x %lld", op, what,
                    (long long)cols, (long long)total_rows(p), (long long)p->cols);
    return 0;
}

/* "cuda" -> 0, "cuda:N" -> N; -1 when name is not a CUDA backend name. */
static int cuda_device_of(const char *name)
{
    if (strcmp(name, "cuda") == 0)
        return 0;
    if (strncmp(name, "cuda:", 5) != 0 || name[5] < '0' || name[5] > '9')
        return -1;
    char *end;
    long dev = strtol(name + 5, &end, 10);
    return *end == 0 && dev < 1024 ? (int)dev : -1;
}

#ifdef VIGIL_KERNELS_CUDA
/* The CUDA backend lives in a module (libvigil_kernels_cuda.so) loaded the first time a CUDA
 * backend is probed, so a process that never asks for one never maps cuBLAS and the CUDA runtime
 * (about 160 MB resident). Looked for at $VIGIL_KERNELS_CUDA_MODULE, then where the build put
 * it, then where `cmake --install` puts it; a module whose backend struct differs from this
 * build's is skipped. Once in use it is never unloaded: the CUDA runtime does not support that. */
static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static int (*cuda_probe_fn)(int device, char *why, size_t whylen);
static int (*cuda_init_fn)(kernels_backend_t *be, int device, char *err, size_t errlen);
static char cuda_load_error[768];

static void cuda_module_load(void)
{
    const char *paths[3] = {getenv("VIGIL_KERNELS_CUDA_MODULE"), VIGIL_KERNELS_CUDA_BUILT,
                            VIGIL_KERNELS_CUDA_INSTALLED};
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        if (!paths[i] || !paths[i][0])
            continue;
        void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
        const char *e = h ? NULL : dlerror();
        if (h) {
            size_t (*abi)(void);
            /* POSIX's way to turn dlsym's object pointer into a function pointer. */
            *(void **)&abi = dlsym(h, "kernels_cuda_abi");
            *(void **)&cuda_probe_fn = dlsym(h, "kernels_cuda_probe");
            *(void **)&cuda_init_fn = dlsym(h, "kernels_cuda_init");
            /* A module from another build (a stale install) would fill a backend struct of
             * another layout: refused, and the next place is tried. */
            if (abi && cuda_probe_fn && cuda_init_fn && abi() == kernels_backend_abi())
                return;
            e = abi && cuda_probe_fn && cuda_init_fn ? "built from other sources (layout differs)"
                                                     : "its entry points are missing";
            cuda_probe_fn = NULL;
            cuda_init_fn = NULL;
            dlclose(h); /* do not keep cuBLAS mapped for a module that is not used */
        }
        int n = snprintf(cuda_load_error + at, sizeof cuda_load_error - at, "%s%s: %s",
                         at ? "; " : "", paths[i], e ? e : "?");
        if (n > 0 && (size_t)n < sizeof cuda_load_error - at)
            at += (size_t)n;
    }
}

/* 1 when the module is loaded, else 0 with why. */
static int cuda_module(char *why, size_t whylen)
{
    pthread_once(&cuda_once, cuda_module_load);
    if (cuda_probe_fn)
        return 1;
    fail(why, whylen, "the CUDA backend module could not be loaded (%s)", cuda_load_error);
    return 0;
}

static int cuda_probe(int device, char *why, size_t whylen)
{
    return cuda_module(why, whylen) && cuda_probe_fn(device, why, whylen);
}

static int cuda_init(kernels_backend_t *be, int device, char *err, size_t errlen)
{
    return cuda_module(err, errlen) ? cuda_init_fn(be, device, err, errlen) : -1;
}
#endif

int kernels_backend_available(const char *name, char *why, size_t whylen)
{
    if (!name) {
        fail(why, whylen, "no backend name");
        return 0;
    }
    if (strcmp(name, "cpu") == 0 || strcmp(name, "auto") == 0) {
        fail(why, whylen, "the CPU backend is always built");
        return 1;
    }
    int dev = cuda_device_of(name);
    if (dev < 0) {
        fail(why, whylen, "unknown backend \"%s\" (cpu, cuda, cuda:N, auto)", name);
        return 0;
    }
#ifdef VIGIL_KERNELS_CUDA
    return cuda_probe(dev, why, whylen);
#else
    fail(why, whylen,
         "this build has no CUDA backend (nvcc was not found at configure time, or "
         "VIGIL_CUDA=OFF)");
    return 0;
#endif
}

kernels_backend_t *kernels_backend_new(const char *name, int threads, char *err, size_t errlen)
{
    int dev = name ? cuda_device_of(name) : -1;
    if (!name || (strcmp(name, "cpu") != 0 && strcmp(name, "auto") != 0 && dev < 0)) {
        fail(err, errlen, "kernels: unknown backend \"%s\" (cpu, cuda, cuda:N, auto)",
             name ? name : "(null)");
        return NULL;
    }
    if (threads < 0) {
        fail(err, errlen, "kernels: threads must be >= 0, got %d", threads);
        return NULL;
    }
    kernels_backend_t *be = calloc(1, sizeof(*be));
    if (!be) {
        fail(err, errlen, "kernels: out of memory");
        return NULL;
    }
    char why[sizeof(be->reason) - 8]; /* room for the "cpu: " prefix */
    int want_cuda = dev >= 0, is_auto = strcmp(name, "auto") == 0;
    if (is_auto) {
#ifdef VIGIL_KERNELS_CUDA
        want_cuda = cuda_probe(0, why, sizeof(why));
#else
        want_cuda = 0;
        snprintf(why, sizeof(why), "this build has no CUDA backend");
#endif
    }
    if (want_cuda) {
#ifdef VIGIL_KERNELS_CUDA
        if (cuda_init(be, dev >= 0 ? dev : 0, why, sizeof(why)) == 0)
            return be; /* the CUDA init wrote the reason: the device it uses */
        if (!is_auto) {
            fail(err, errlen, "%s", why);
            goto err;
        }
        /* auto: a device that probes well but cannot be set up (out of memory, say) leaves the
         * CPU, with that failure as the reason. */
#else
        fail(err, errlen,
             "kernels: backend \"%s\": this build has no CUDA backend (nvcc was not "
             "found at configure time, or VIGIL_CUDA=OFF)",
             name);
        goto err;
#endif
    }
    if (kernels_cpu_init(be, threads, err, errlen) < 0)
        goto err;
    if (is_auto)
        snprintf(be->reason, sizeof(be->reason), "cpu: %s", why);
    else
        snprintf(be->reason, sizeof(be->reason), "cpu: asked for");
    return be;
err:
    free(be);
    return NULL;
}

void kernels_backend_free(kernels_backend_t *be)
{
    if (!be)
        return;
    if (be->destroy)
        be->destroy(be);
    free(be);
}

const char *kernels_backend_name(const kernels_backend_t *be)
{
    return be ? be->name : "(none)";
}

const char *kernels_backend_reason(const kernels_backend_t *be)
{
    return be ? be->reason : "(none)";
}

int kernels_sync(kernels_backend_t *be, char *err, size_t errlen)
{
    if (!be)
        return fail(err, errlen, "kernels_sync: no backend");
    return be->sync ? be->sync(be, err, errlen) : 0;
}

float *kernels_alloc(kernels_backend_t *be, size_t n, char *err, size_t errlen)
{
    if (!be || n == 0) {
        fail(err, errlen, "kernels_alloc: %s", be ? "zero size" : "no backend");
        return NULL;
    }
    return be->alloc(be, n, err, errlen);
}

void kernels_free(kernels_backend_t *be, float *p)
{
    if (be && p)
        be->free(be, p);
}

int kernels_copy_to_backend(kernels_backend_t *be, float *dst, const float *src, size_t n,
                            char *err, size_t errlen)
{
    if (!be || !dst || !src)
        return fail(err, errlen, "kernels_copy_to_backend: NULL argument");
    return be->copy_to_backend(be, dst, src, n, err, errlen);
}

int kernels_copy_to_host(kernels_backend_t *be, float *dst, const float *src, size_t n, char *err,
                         size_t errlen)
{
    if (!be || !dst || !src)
        return fail(err, errlen, "kernels_copy_to_host: NULL argument");
    return be->copy_to_host(be, dst, src, n, err, errlen);
}

int kernels_gemm(kernels_backend_t *be, int trans_a, int trans_b, float alpha,
                 const kernels_tensor_t *a, const kernels_tensor_t *b, float beta,
                 kernels_tensor_t *c, char *err, size_t errlen)
{
    const char *op = "kernels_gemm";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_tensor(a, op, "A", err, errlen) < 0 || check_tensor(b, op, "B", err, errlen) < 0 ||
        check_tensor(c, op, "C", err, errlen) < 0)
        return -1;
    int64_t m = trans_a ? a->cols : a->rows, ka = trans_a ? a->rows : a->cols;
    int64_t kb = trans_b ? b->cols : b->rows, n = trans_b ? b->rows : b->cols;
    if (ka != kb || c->rows != m || c->cols != n)
        return fail(err, errlen, "%s: op(A) is %lldx%lld, op(B) %lldx%lld, C %lldx%lld", op,
                    (long long)m, (long long)ka, (long long)kb, (long long)n, (long long)c->rows,
                    (long long)c->cols);
    if ((a->batch != 1 && a->batch != c->batch) || (b->batch != 1 && b->batch != c->batch))
        return fail(err, errlen, "%s: batches A %lld, B %lld, C %lld (A and B: 1 or C's)", op,
                    (long long)a->batch, (long long)b->batch, (long long)c->batch);
    return be->gemm(be, trans_a, trans_b, alpha, a, b, beta, c, err, errlen);
}

int kernels_bias_act(kernels_backend_t *be, const kernels_tensor_t *x, const kernels_tensor_t *bias,
                     kernels_act_t act, kernels_tensor_t *out, char *err, size_t errlen)
{
    const char *op = "kernels_bias_act";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_rowwise(x, out, op, err, errlen) < 0)
        return -1;
    if (bias && check_param_row(bias, x->cols, op, "bias", err, errlen) < 0)
        return -1;
    if (act < KERNELS_ACT_NONE || act > KERNELS_ACT_SIGMOID)
        return fail(err, errlen, "%s: unknown activation %d", op, (int)act);
    return be->bias_act(be, x, bias, act, out, err, errlen);
}

int kernels_layernorm(kernels_backend_t *be, const kernels_tensor_t *x,
                      const kernels_tensor_t *gamma, const kernels_tensor_t *beta, float eps,
                      kernels_tensor_t *out, char *err, size_t errlen)
{
    const char *op = "kernels_layernorm";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_rowwise(x, out, op, err, errlen) < 0 ||
        check_param_row(gamma, x->cols, op, "gamma", err, errlen) < 0 ||
        check_param_row(beta, x->cols, op, "beta", err, errlen) < 0)
        return -1;
    if (!(eps > 0.0f))
        return fail(err, errlen, "%s: eps must be > 0", op);
    return be->layernorm(be, x, gamma, beta, eps, out, err, errlen);
}

int kernels_softmax(kernels_backend_t *be, const kernels_tensor_t *x, const kernels_tensor_t *mask,
                    kernels_tensor_t *out, char *err, size_t errlen)
{
    const char *op = "kernels_softmax";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_rowwise(x, out, op, err, errlen) < 0)
        return -1;
    if (mask) {
        if (check_tensor(mask, op, "mask", err, errlen) < 0)
            return -1;
        if (mask->cols != x->cols || (total_rows(mask) != 1 && total_rows(mask) != total_rows(x)))
            return fail(err, errlen, "%s: mask is %lld x %lld, x %lld x %lld", op,
                        (long long)total_rows(mask), (long long)mask->cols,
                        (long long)total_rows(x), (long long)x->cols);
    }
    return be->softmax(be, x, mask, out, err, errlen);
}

int kernels_attention(kernels_backend_t *be, const kernels_tensor_t *q, const kernels_tensor_t *k,
                      const kernels_tensor_t *v, const kernels_tensor_t *mask, int64_t n_seq,
                      int64_t heads, float scale, kernels_tensor_t *scratch, kernels_tensor_t *out,
                      char *err, size_t errlen)
{
    const char *op = "kernels_attention";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (n_seq < 1 || heads < 1)
        return fail(err, errlen, "%s: n_seq and heads must be >= 1", op);
    if (check_tensor(q, op, "q", err, errlen) < 0 || check_tensor(k, op, "k", err, errlen) < 0 ||
        check_tensor(v, op, "v", err, errlen) < 0 ||
        check_tensor(out, op, "out", err, errlen) < 0 ||
        check_tensor(scratch, op, "scratch", err, errlen) < 0 ||
        (mask && check_tensor(mask, op, "mask", err, errlen) < 0))
        return -1;
    int64_t rows = q->rows, width = q->cols;
    if (q->batch != 1 || k->batch != 1 || v->batch != 1 || out->batch != 1)
        return fail(err, errlen, "%s: q, k, v and out must have batch 1", op);
    if (rows % n_seq != 0 || width % heads != 0)
        return fail(err, errlen,
                    "%s: %lld rows x %lld cols do not split into %lld sequences of %lld heads", op,
                    (long long)rows, (long long)width, (long long)n_seq, (long long)heads);
    int64_t seq_len = rows / n_seq;
    const kernels_tensor_t *same[] = {k, v, out};
    for (int i = 0; i < 3; i++)
        if (same[i]->rows != rows || same[i]->cols != width)
            return fail(err, errlen, "%s: q is %lld x %lld, %s %lld x %lld", op, (long long)rows,
                        (long long)width,
                        i == 0   ? "k"
                        : i == 1 ? "v"
                                 : "out",
                        (long long)same[i]->rows, (long long)same[i]->cols);
    if (scratch->batch != n_seq * heads || scratch->rows != seq_len || scratch->cols != seq_len)
        return fail(err, errlen, "%s: scratch must be %lld x %lld x %lld, is %lld x %lld x %lld",
                    op, (long long)(n_seq * heads), (long long)seq_len, (long long)seq_len,
                    (long long)scratch->batch, (long long)scratch->rows, (long long)scratch->cols);
    if (mask && (total_rows(mask) != n_seq || mask->cols != seq_len))
        return fail(err, errlen, "%s: mask must be %lld x %lld, is %lld x %lld", op,
                    (long long)n_seq, (long long)seq_len, (long long)total_rows(mask),
                    (long long)mask->cols);
    return be->attention(be, q, k, v, mask, n_seq, heads, scale, scratch, out, err, errlen);
}

int kernels_embed(kernels_backend_t *be, const int32_t *ids, const int32_t *types, int64_t n_seq,
                  int64_t seq_len, const kernels_tensor_t *tok, const kernels_tensor_t *pos,
                  const kernels_tensor_t *type, kernels_tensor_t *out, char *err, size_t errlen)
{
    const char *op = "kernels_embed";
    if (!be || !ids)
        return fail(err, errlen, "%s: %s", op, be ? "ids is NULL" : "no backend");
    if (n_seq < 1 || seq_len < 1)
        return fail(err, errlen, "%s: n_seq and seq_len must be >= 1", op);
    if (check_tensor(tok, op, "tok", err, errlen) < 0 ||
        check_tensor(pos, op, "pos", err, errlen) < 0 ||
        check_tensor(type, op, "type", err, errlen) < 0 ||
        check_tensor(out, op, "out", err, errlen) < 0)
        return -1;
    int64_t dim = tok->cols;
    if (tok->batch != 1 || pos->batch != 1 || type->batch != 1)
        return fail(err, errlen, "%s: embedding tables must have batch 1", op);
    if (pos->cols != dim || type->cols != dim || out->cols != dim)
        return fail(err, errlen, "%s: widths tok %lld, pos %lld, type %lld, out %lld differ", op,
                    (long long)dim, (long long)pos->cols, (long long)type->cols,
                    (long long)out->cols);
    if (seq_len > pos->rows)
        return fail(err, errlen, "%s: seq_len %lld > %lld positions", op, (long long)seq_len,
                    (long long)pos->rows);
    if (total_rows(out) != n_seq * seq_len)
        return fail(err, errlen, "%s: out has %lld rows, expected %lld", op,
                    (long long)total_rows(out), (long long)(n_seq * seq_len));
    for (int64_t i = 0; i < n_seq * seq_len; i++) {
        if (ids[i] < 0 || ids[i] >= tok->rows)
            return fail(err, errlen, "%s: token id %d at %lld out of range [0, %lld)", op,
                        (int)ids[i], (long long)i, (long long)tok->rows);
        if (types && (types[i] < 0 || types[i] >= type->rows))
            return fail(err, errlen, "%s: token type %d at %lld out of range [0, %lld)", op,
                        (int)types[i], (long long)i, (long long)type->rows);
    }
    return be->embed(be, ids, types, n_seq, seq_len, tok, pos, type, out, err, errlen);
}

int kernels_mean_pool(kernels_backend_t *be, const kernels_tensor_t *x,
                      const kernels_tensor_t *mask, kernels_tensor_t *out, char *err, size_t errlen)
{
    const char *op = "kernels_mean_pool";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_tensor(x, op, "x", err, errlen) < 0 ||
        check_tensor(mask, op, "mask", err, errlen) < 0 ||
        check_tensor(out, op, "out", err, errlen) < 0)
        return -1;
    if (total_rows(mask) != x->batch || mask->cols != x->rows || total_rows(out) != x->batch ||
        out->cols != x->cols)
        return fail(err, errlen,
                    "%s: x is %lld x %lld x %lld, mask must be %lld x %lld (is %lld x %lld), out "
                    "%lld x %lld (is %lld x %lld)",
                    op, (long long)x->batch, (long long)x->rows, (long long)x->cols,
                    (long long)x->batch, (long long)x->rows, (long long)total_rows(mask),
                    (long long)mask->cols, (long long)x->batch, (long long)x->cols,
                    (long long)total_rows(out), (long long)out->cols);
    return be->mean_pool(be, x, mask, out, err, errlen);
}

int kernels_l2norm(kernels_backend_t *be, const kernels_tensor_t *x, float eps,
                   kernels_tensor_t *out, char *err, size_t errlen)
{
    const char *op = "kernels_l2norm";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_rowwise(x, out, op, err, errlen) < 0)
        return -1;
    if (!(eps > 0.0f))
        return fail(err, errlen, "%s: eps must be > 0", op);
    return be->l2norm(be, x, eps, out, err, errlen);
}

/* Same total rows and columns (shapes of y, dz, grad, m, v next to their partner). */
static int check_same(const kernels_tensor_t *a, const kernels_tensor_t *b, const char *op,
                      const char *what, char *err, size_t errlen)
{
    if (check_tensor(b, op, what, err, errlen) < 0)
        return -1;
    if (total_rows(a) != total_rows(b) || a->cols != b->cols)
        return fail(err, errlen, "%s: %s is %lld x %lld, expected %lld x %lld", op, what,
                    (long long)total_rows(b), (long long)b->cols, (long long)total_rows(a),
                    (long long)a->cols);
    return 0;
}

int kernels_bce_logits(kernels_backend_t *be, const kernels_tensor_t *z, const kernels_tensor_t *y,
                       float *loss, kernels_tensor_t *dz, char *err, size_t errlen)
{
    const char *op = "kernels_bce_logits";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_tensor(z, op, "z", err, errlen) < 0 || check_same(z, y, op, "y", err, errlen) < 0 ||
        (dz && check_same(z, dz, op, "dz", err, errlen) < 0))
        return -1;
    return be->bce_logits(be, z, y, loss, dz, err, errlen);
}

int kernels_softmax_xent(kernels_backend_t *be, const kernels_tensor_t *z, const int32_t *labels,
                         float *loss, kernels_tensor_t *dz, char *err, size_t errlen)
{
    const char *op = "kernels_softmax_xent";
    if (!be || !labels)
        return fail(err, errlen, "%s: %s", op, be ? "labels is NULL" : "no backend");
    if (check_tensor(z, op, "z", err, errlen) < 0 ||
        (dz && check_same(z, dz, op, "dz", err, errlen) < 0))
        return -1;
    for (int64_t r = 0; r < total_rows(z); r++)
        if (labels[r] < 0 || labels[r] >= z->cols)
            return fail(err, errlen, "%s: label %d of row %lld out of range [0, %lld)", op,
                        (int)labels[r], (long long)r, (long long)z->cols);
    return be->softmax_xent(be, z, labels, loss, dz, err, errlen);
}

int kernels_dense_backward(kernels_backend_t *be, const kernels_tensor_t *x,
                           const kernels_tensor_t *w, const kernels_tensor_t *dy,
                           kernels_tensor_t *dx, kernels_tensor_t *dw, kernels_tensor_t *db,
                           char *err, size_t errlen)
{
    const char *op = "kernels_dense_backward";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_tensor(x, op, "x", err, errlen) < 0 || check_tensor(w, op, "w", err, errlen) < 0 ||
        check_tensor(dy, op, "dy", err, errlen) < 0)
        return -1;
    if (x->batch != 1 || w->batch != 1 || dy->batch != 1)
        return fail(err, errlen, "%s: x, w and dy must have batch 1", op);
    if (w->rows != x->cols || dy->rows != x->rows || dy->cols != w->cols)
        return fail(err, errlen, "%s: x %lld x %lld, w %lld x %lld, dy %lld x %lld disagree", op,
                    (long long)x->rows, (long long)x->cols, (long long)w->rows, (long long)w->cols,
                    (long long)dy->rows, (long long)dy->cols);
    if ((dx && check_same(x, dx, op, "dx", err, errlen) < 0) ||
        (dw && check_same(w, dw, op, "dw", err, errlen) < 0))
        return -1;
    if (db && check_param_row(db, w->cols, op, "db", err, errlen) < 0)
        return -1;
    if ((dx && dx->batch != 1) || (dw && dw->batch != 1))
        return fail(err, errlen, "%s: dx and dw must have batch 1", op);
    return be->dense_backward(be, x, w, dy, dx, dw, db, err, errlen);
}

int kernels_relu_backward(kernels_backend_t *be, const kernels_tensor_t *y,
                          const kernels_tensor_t *dy, kernels_tensor_t *dx, char *err,
                          size_t errlen)
{
    const char *op = "kernels_relu_backward";
    if (!be)
        return fail(err, errlen, "%s: no backend", op);
    if (check_tensor(y, op, "y", err, errlen) < 0 || check_same(y, dy, op, "dy", err, errlen) < 0 ||
        check_same(y, dx, op, "dx", err, errlen) < 0)
        return -1;
    return be->relu_backward(be, y, dy, dx, err, errlen);
}

int kernels_adamw(kernels_backend_t *be, const kernels_adam_t *opt, kernels_tensor_t *param,
                  const kernels_tensor_t *grad, kernels_tensor_t *m, kernels_tensor_t *v, char *err,
                  size_t errlen)
{
    const char *op = "kernels_adamw";
    if (!be || !opt)
        return fail(err, errlen, "%s: %s", op, be ? "opt is NULL" : "no backend");
    if (check_tensor(param, op, "param", err, errlen) < 0 ||
        check_same(param, grad, op, "grad", err, errlen) < 0 ||
        check_same(param, m, op, "m", err, errlen) < 0 ||
        check_same(param, v, op, "v", err, errlen) < 0)
        return -1;
    if (opt->step < 1)
        return fail(err, errlen, "%s: step must be >= 1", op);
    if (!(opt->beta1 >= 0.0f && opt->beta1 < 1.0f && opt->beta2 >= 0.0f && opt->beta2 < 1.0f))
        return fail(err, errlen, "%s: betas must be in [0, 1)", op);
    return be->adamw(be, opt, param, grad, m, v, err, errlen);
}
